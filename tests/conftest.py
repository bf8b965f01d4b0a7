"""Test harness: a real Postgres database migrated by Alembic once per session, each test in a
rolled-back transaction; a real S3 server (SeaweedFS); the real app through an httpx TestClient.

The environment is set before anything imports ``app.config`` (Settings are cached per process).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest

from tests import services

SESSION_TAG = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
TEST_DB = f"vrft_test_{SESSION_TAG}"
DATA_DIR = Path(tempfile.mkdtemp(prefix="vrft-test-data-"))

os.environ.update(
    VRFT_DATABASE_URL=services.pg_url(TEST_DB),
    VRFT_S3_ENDPOINT_URL=f"http://127.0.0.1:{services.S3_PORT}",
    VRFT_S3_BUCKET=f"vrft-test-{SESSION_TAG.replace('_', '-')}",
    VRFT_S3_ACCESS_KEY_ID=services.S3_ACCESS_KEY,
    VRFT_S3_SECRET_ACCESS_KEY=services.S3_SECRET_KEY,
    VRFT_DATA_DIR=str(DATA_DIR),
)
os.environ.pop("VRFT_BROKER_URL", None)

OUTPUT_DIR = Path(__file__).resolve().parent.parent / "test-output"


@pytest.fixture(scope="session")
def s3_server():
    server = services.SeaweedFS().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database():
    from app.migrate import upgrade

    url = services.create_database(TEST_DB)
    upgrade(url)
    yield url
    from app.db import get_engine

    get_engine().dispose()
    services.drop_database(TEST_DB)


@pytest.fixture(scope="session")
def app(database, s3_server):
    from app.main import create_app

    return create_app()


@pytest.fixture
def db_session(database):
    """A session whose commits are savepoints inside one transaction that the test rolls back."""
    from sqlalchemy.orm import Session

    from app.db import get_engine

    conn = get_engine().connect()
    trans = conn.begin()
    session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield session
    session.close()
    trans.rollback()
    conn.close()


@pytest.fixture
def make_client(app, db_session):
    """``make_client(project_name=None)`` → an authenticated TestClient for a new project."""
    import contextlib

    from fastapi.testclient import TestClient

    from app.auth.service import create_key
    from app.deps import get_session, get_session_factory

    def override():  # the real dependency's unit of work, on the test's savepoint session
        try:
            yield db_session
            db_session.commit()
        except BaseException:
            db_session.rollback()
            raise

    app.dependency_overrides[get_session] = override
    app.dependency_overrides[get_session_factory] = lambda: (lambda: contextlib.nullcontext(db_session))
    clients = []

    def make(project_name: str | None = None, authenticated: bool = True):
        headers = {}
        if authenticated:
            _, key = create_key(db_session, project_name=project_name or f"proj-{uuid.uuid4().hex[:8]}")
            db_session.commit()
            headers["Authorization"] = f"Bearer {key}"
        client = TestClient(app, headers=headers, raise_server_exceptions=False)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()
    app.dependency_overrides.clear()


@pytest.fixture
def api_client(make_client):
    return make_client()


@pytest.fixture
def other_client(make_client):
    """A client of a second project, for tenancy checks."""
    return make_client()


@pytest.fixture
def anon_client(make_client):
    return make_client(authenticated=False)


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR


class LiveServer:
    """A real ``vrft-server serve`` process (uvicorn) on Postgres + SeaweedFS, with its embedded worker."""

    def __init__(self, base_url: str, env: dict, proc, log_path: Path):
        self.base_url = base_url
        self.env = env
        self.proc = proc
        self.log_path = log_path

    def create_key(self, project: str | None = None) -> str:
        import subprocess
        import sys

        out = subprocess.run(
            [sys.executable, "-m", "app.cli", "create-key", "--project", project or f"live-{uuid.uuid4().hex[:8]}"],
            env=self.env, capture_output=True, text=True, check=True,
        )
        return out.stdout.strip().splitlines()[-1]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_live_server(tag: str, *, extra_env: dict | None = None, worker: bool = True) -> LiveServer:
    import subprocess
    import sys

    from app.migrate import upgrade

    dbname = f"vrft_live_{tag}_{SESSION_TAG}"
    url = services.create_database(dbname)
    upgrade(url)
    port = services.free_port()
    data_dir = Path(tempfile.mkdtemp(prefix=f"vrft-live-{tag}-"))
    env = {**os.environ, "VRFT_DATABASE_URL": url, "VRFT_DATA_DIR": str(data_dir),
           "VRFT_S3_BUCKET": f"vrft-live-{tag}-{SESSION_TAG.replace('_', '-')}", "VRFT_POLL_INTERVAL_MS": "300",
           "VRFT_MODEL_CACHE": str(Path(tempfile.gettempdir()) / "vrft-test-models"), **(extra_env or {})}
    log_path = data_dir / "server.log"
    cmd = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    if not worker:
        cmd.append("--no-worker")
    proc = subprocess.Popen(cmd, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    services.wait_healthy(base, proc, log_path)
    server = LiveServer(base, env, proc, log_path)
    server.dbname = dbname
    return server


def stop_live_server(server: LiveServer) -> None:
    import subprocess

    server.proc.terminate()
    try:
        server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
    services.drop_database(server.dbname)


@pytest.fixture(scope="session")
def live_server(database, s3_server):
    """Shared by the SDK, dashboard and end-to-end tests: one real server process for the session."""
    server = start_live_server("shared")
    yield server
    stop_live_server(server)
