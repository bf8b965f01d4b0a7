"""The Alembic history builds exactly the tables the models describe, on Postgres and on SQLite."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.migrate import upgrade
from app.models import Base


def _diff(engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)


def test_postgres_schema_matches_models(database):
    engine = sa.create_engine(database)
    try:
        assert _diff(engine) == []
    finally:
        engine.dispose()


def test_sqlite_upgrade_downgrade_upgrade(tmp_path):
    from alembic import command

    from app.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'vrft.db'}"
    upgrade(url)
    engine = sa.create_engine(url)
    assert _diff(engine) == []
    tables = set(sa.inspect(engine).get_table_names())
    assert {"jobs", "files", "job_events", "checkpoints", "api_keys", "projects"} <= tables
    command.downgrade(alembic_config(url), "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(url)
    assert _diff(engine) == []
    engine.dispose()
