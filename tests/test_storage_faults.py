"""Storage that hangs or refuses: every call fails with STORAGE_UNAVAILABLE in bounded time.

The hung server is a real TCP listener that accepts connections and never answers a byte — what a
wedged S3 gateway or a black-holed load balancer looks like to boto3 — not a mock of boto3.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from app.config import Settings
from app.errors import ErrorCode, ServiceError
from app.storage import LocalStore, S3Store

TIMEOUT_S = 0.5
ATTEMPTS = 2
# Each try waits at most connect + read timeout; standard-mode retries add one jittered back-off of
# at most 1 s for the second try. Anything near this bound is "fails fast"; a hang would be minutes.
BOUND_S = ATTEMPTS * 2 * TIMEOUT_S + 1.0 + 2.0


class HungServer:
    """Accepts TCP connections and holds them open in silence."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted.append(conn)  # never read from, never written to

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def hung_server():
    server = HungServer()
    yield server
    server.close()


def s3_settings(port: int) -> Settings:
    return Settings(s3_endpoint_url=f"http://127.0.0.1:{port}", s3_bucket="vrft-hung", s3_access_key_id="k",
                    s3_secret_access_key="s", s3_connect_timeout_s=TIMEOUT_S, s3_read_timeout_s=TIMEOUT_S,
                    s3_max_attempts=ATTEMPTS)


CALLS = ("put_file", "get_file", "open_read", "size", "delete", "delete_prefix", "ping", "ensure_bucket")


def store_calls(tmp_path: Path):
    src = tmp_path / "src"
    src.write_bytes(b"x" * 1000)
    return {
        "put_file": lambda s: s.put_file("p/files/f/data", src),
        "get_file": lambda s: s.get_file("p/files/f/data", tmp_path / "dst"),
        "open_read": lambda s: s.open_read("p/files/f/data"),
        "size": lambda s: s.size("p/files/f/data"),
        "delete": lambda s: s.delete("p/files/f/data"),
        "delete_prefix": lambda s: s.delete_prefix("p/"),
        "ping": lambda s: s.ping(),
        "ensure_bucket": lambda s: s.ensure_bucket(),
    }


@pytest.mark.parametrize("call", CALLS)
def test_every_call_to_a_hung_s3_fails_fast(hung_server, tmp_path, call):
    store = S3Store(s3_settings(hung_server.port))
    started = time.monotonic()
    with pytest.raises(ServiceError) as raised:
        store_calls(tmp_path)[call](store)
    elapsed = time.monotonic() - started
    assert raised.value.code is ErrorCode.STORAGE_UNAVAILABLE
    assert TIMEOUT_S <= elapsed < BOUND_S, elapsed  # it did wait for the timeout, and no longer
    assert hung_server.accepted, "the call never reached the server"


def test_refused_connection_fails_fast(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = S3Store(s3_settings(port))
    started = time.monotonic()
    with pytest.raises(ServiceError) as raised:
        store_calls(tmp_path)["put_file"](store)
    assert raised.value.code is ErrorCode.STORAGE_UNAVAILABLE and time.monotonic() - started < BOUND_S


def test_timeouts_and_tries_come_from_settings():
    store = S3Store(Settings(s3_endpoint_url="http://127.0.0.1:1", s3_bucket="b", s3_connect_timeout_s=1.5,
                             s3_read_timeout_s=7.0, s3_max_attempts=4))
    config = store.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (1.5, 7.0)
    assert config.retries["total_max_attempts"] == 4 and config.retries["mode"] == "standard"
    assert store.signer.meta.config.read_timeout == 7.0


def test_settings_refuse_timeouts_that_never_fire():
    with pytest.raises(ValueError):
        Settings(s3_read_timeout_s=0)
    with pytest.raises(ValueError):
        Settings(s3_max_attempts=0)


def test_local_store_local_path(tmp_path):
    store = LocalStore(tmp_path / "objects")
    src = tmp_path / "src"
    src.write_bytes(b"abc")
    store.put_file("p/files/f/data", src)
    assert store.local_path("p/files/f/data").read_bytes() == b"abc"
    assert not store.local_path("p/files/other/data").exists()
    with pytest.raises(ValueError):
        store.local_path("../outside")
    assert S3Store(s3_settings(1)).local_path("p/files/f/data") is None
