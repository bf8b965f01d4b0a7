from __future__ import annotations

from alembic import context

from app.db import get_engine, make_engine
from app.models import Base

target_metadata = Base.metadata


def run_migrations() -> None:
    # a caller (tests, `vrft-server migrate`) may hand us a connection or a URL explicitly
    connection = context.config.attributes.get("connection")
    url = context.config.attributes.get("url")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(url) if url else get_engine()
    with engine.connect() as conn:
        _run(conn)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.in_transaction():
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `vrft-server migrate`")
run_migrations()
