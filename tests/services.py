"""Real backing services for the test suite: Postgres databases, a SeaweedFS S3 server, Redis.

`.ci/run` starts Postgres and Redis if they are down; SeaweedFS is started here (or reused when
something already answers on its port), so plain `pytest` works on a developer machine too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("VRFT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("VRFT_TEST_REDIS_URL", "redis://127.0.0.1:6379")
S3_PORT = int(os.environ.get("VRFT_TEST_S3_PORT", "8333"))
S3_ACCESS_KEY = "vrfttest"
S3_SECRET_KEY = "vrft-test-secret-0123456789"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_url(dbname: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname


def create_database(dbname: str) -> str:
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{dbname}"'))
    engine.dispose()
    return pg_url(dbname)


def drop_database(dbname: str) -> None:
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
    engine.dispose()


def weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    return str(candidate) if candidate.exists() else (shutil.which("weed") or "weed")


class SeaweedFS:
    """`weed mini` serving S3 on 127.0.0.1:S3_PORT with one identity that checks signatures."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.dir: Path | None = None
        self.endpoint = f"http://127.0.0.1:{S3_PORT}"

    def start(self) -> SeaweedFS:
        if port_open(S3_PORT):
            return self  # reuse the one .ci/run (or a developer) started
        self.dir = Path(tempfile.mkdtemp(prefix="vrft-seaweed-"))
        identities = {"identities": [{"name": "admin", "credentials": [
            {"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
        (self.dir / "identities.json").write_text(json.dumps(identities))
        self.proc = subprocess.Popen(
            [weed_binary(), "mini", f"-dir={self.dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-s3.port={S3_PORT}", f"-s3.config={self.dir / 'identities.json'}", "-webdav=false", "-admin.ui=false"],
            stdout=open(self.dir / "weed.log", "wb"), stderr=subprocess.STDOUT,
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        import boto3
        from botocore.config import Config

        client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=S3_ACCESS_KEY,
                              aws_secret_access_key=S3_SECRET_KEY, region_name="us-east-1",
                              config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
        deadline = time.time() + timeout
        while True:
            try:
                client.list_buckets()
                return
            except Exception as exc:
                if time.time() > deadline:
                    raise RuntimeError(f"SeaweedFS did not come up on {self.endpoint}") from exc
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_healthy(base_url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    """Until ``/healthz`` answers; raise with the server's log if it dies or never answers."""
    import httpx

    deadline = time.time() + timeout
    while True:
        try:
            if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"vrft-server did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.2)
