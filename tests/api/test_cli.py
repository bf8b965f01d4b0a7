"""`vrft-server` as a user runs it: refusing insecure settings, creating keys, migrating."""

from __future__ import annotations

import os
import subprocess
import sys


def _run(args, env_extra, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VRFT_")}
    env.update(VRFT_DATA_DIR=str(tmp_path / "data"), **env_extra)
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_serve_refuses_default_s3_secret_on_a_public_bind(tmp_path):
    r = _run(["serve", "--host", "0.0.0.0", "--port", "1"],
             {"VRFT_S3_BUCKET": "b", "VRFT_S3_SECRET_ACCESS_KEY": "minioadmin",
              "VRFT_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1/none"}, tmp_path)
    assert r.returncode == 2
    assert "VRFT_S3_SECRET_ACCESS_KEY" in r.stderr and "VRFT_DEV_MODE" in r.stderr


def test_serve_refuses_embedded_sqlite_on_a_public_bind(tmp_path):
    r = _run(["serve", "--host", "0.0.0.0", "--port", "1"], {}, tmp_path)
    assert r.returncode == 2 and "SQLite" in r.stderr


def test_create_key_prints_a_working_key_once(tmp_path):
    r = _run(["create-key", "--project", "alice"], {}, tmp_path)
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    assert key.startswith("vrft_") and len(key) > 30 and "not shown again" in r.stderr
    import sqlalchemy as sa

    from app.auth.service import hash_key

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data' / 'vrft.db'}")
    with engine.connect() as conn:
        stored = conn.execute(sa.text("select key_hash from api_keys")).scalars().all()
    engine.dispose()
    assert stored == [hash_key(key)]
