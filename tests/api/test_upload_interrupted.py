"""A real uvicorn server, real sockets: clients that cut the body or lie about its length, and a
server SIGKILLed mid-upload and restarted. Nothing half-stored survives; nothing stays 'uploaded'."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests import services
from tests.api.test_upload_faults import BOUNDARY, multipart
from tests.conftest import start_live_server, stop_live_server
from tests.factories import jsonl, visual_rft_rows

CONTENT = jsonl(visual_rft_rows(6))
BODY = multipart(CONTENT)


@pytest.fixture(scope="module")
def server(database, s3_server):
    live = start_live_server("interrupt", worker=False)
    live.key = live.create_key()
    yield live
    stop_live_server(live)


def request_head(server, content_length: int) -> bytes:
    return (
        f"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY.decode()}\r\n"
        f"Content-Length: {content_length}\r\nConnection: close\r\n\r\n"
    ).encode()


def connect(server) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=15)
    return sock


def read_status(sock: socket.socket) -> int | None:
    """The response's status code, or None when the server closed without answering."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None


def scratch_uploads(data_dir: Path) -> list[Path]:
    return list((data_dir / "tmp").glob("proc-*/upload-*"))


def assert_nothing_stored(server) -> None:
    data_dir = Path(server.env["VRFT_DATA_DIR"])
    deadline = time.time() + 10  # the server notices a closed socket asynchronously
    while scratch_uploads(data_dir) and time.time() < deadline:
        time.sleep(0.1)
    assert scratch_uploads(data_dir) == []
    listing = httpx.get(server.base_url + "/v1/files", headers={"Authorization": f"Bearer {server.key}"}).json()
    assert listing["data"] == []


def test_socket_closed_mid_body(server):
    sock = connect(server)
    sock.sendall(request_head(server, len(BODY)) + BODY[: len(BODY) // 2])
    time.sleep(0.3)
    sock.close()
    assert_nothing_stored(server)


def test_content_length_larger_than_what_is_sent(server):
    sock = connect(server)
    sock.sendall(request_head(server, len(BODY) + 1000) + BODY)
    sock.shutdown(socket.SHUT_WR)  # the client is done sending, and still listening
    status = read_status(sock)
    sock.close()
    assert status is None or 400 <= status < 500, status
    assert_nothing_stored(server)


def test_content_length_smaller_than_the_body(server):
    # The server reads exactly Content-Length bytes: the multipart body it sees is cut short.
    cut = BODY.index(CONTENT) + CONTENT.index(b"\n", len(CONTENT) // 2) + 1
    sock = connect(server)
    sock.sendall(request_head(server, cut) + BODY)
    status = read_status(sock)
    sock.close()
    assert status == 400
    assert_nothing_stored(server)


def _restart(server, log_name: str):
    port = services.free_port()
    log_path = Path(server.env["VRFT_DATA_DIR"]) / log_name
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-worker"],
                            env=server.env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    services.wait_healthy(base, proc, log_path)
    return proc, base


def test_killed_mid_upload_leaves_nothing_and_stuck_files_resume_at_restart(database, s3_server):
    """SIGKILL the server with an upload half-received and a file committed but never validated;
    the next start removes the dead process's temp file and validates the file within seconds."""
    from app.auth.service import create_key
    from app.config import Settings
    from app.db import now
    from app.files.models import File
    from app.files.service import storage_key
    from app.ids import new_id
    from app.storage import make_store

    live = start_live_server("killed", worker=False)
    data_dir = Path(live.env["VRFT_DATA_DIR"])
    restarted = None
    try:
        live.key = live.create_key()
        # A file whose process died between commit and validation: committed 'uploaded' a second
        # ago (not an hour: the old start-up pass only took files over a minute old).
        engine = sa.create_engine(live.env["VRFT_DATABASE_URL"])
        store = make_store(Settings(s3_bucket=live.env["VRFT_S3_BUCKET"], database_url=live.env["VRFT_DATABASE_URL"]))
        source = data_dir / "stuck.jsonl"
        source.write_bytes(CONTENT)
        with Session(engine, expire_on_commit=False) as session:
            project, _ = create_key(session, project_name=f"stuck-{uuid.uuid4().hex[:8]}")
            stuck = File(id=new_id("file"), project_id=project.id, filename="stuck.jsonl", purpose="fine-tune",
                         bytes=len(CONTENT), sha256="x", status="uploaded", created_at=now() - 1, storage_key="")
            stuck.storage_key = storage_key(project.id, stuck.id)
            store.put_file(stuck.storage_key, source)
            session.add(stuck)
            session.commit()

        sock = connect(live)
        sock.sendall(request_head(live, len(BODY)) + BODY[: len(BODY) // 2])
        deadline = time.time() + 10
        while not scratch_uploads(data_dir) and time.time() < deadline:
            time.sleep(0.05)
        leftover = scratch_uploads(data_dir)
        assert leftover, "the half-received upload never reached a temp file"
        os.kill(live.proc.pid, signal.SIGKILL)
        live.proc.wait(timeout=10)
        sock.close()
        assert all(p.exists() for p in leftover)  # what a kill leaves behind, before the fix's sweep

        started = time.time()
        restarted, _ = _restart(live, "server-2.log")
        status = "uploaded"
        while time.time() - started < 20:
            with Session(engine) as session:
                status = session.scalar(sa.select(File.status).where(File.id == stuck.id))
            if status != "uploaded" and not leftover[0].parent.exists():
                break
            time.sleep(0.2)
        assert status == "processed"
        assert not leftover[0].parent.exists(), "the dead process's scratch folder was not swept"
        assert time.time() - started < 20
        engine.dispose()
    finally:
        if restarted is not None:
            restarted.terminate()
            restarted.wait(timeout=30)
        if live.proc.poll() is None:
            live.proc.kill()
        services.drop_database(live.dbname)
