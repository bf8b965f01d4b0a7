"""The inference worker process: a `Batcher` fed by a local HTTP listener or by Redis.

    python -m workers.inference --fd N        # embedded: serve HTTP on an inherited listening socket
    python -m workers.inference --port 8101   # HTTP on 127.0.0.1:8101 (VRFT_INFERENCE_URL points here)
    python -m workers.inference --redis       # production: take requests from VRFT_BROKER_URL

HTTP: `POST /generate` with one request (workers/inference/batcher.py) → 200 with the answer, 4xx
with `{"error": {...}}`, 503 when the queue is full or the request's deadline passed. The embedded
server binds the socket itself and hands it over (`--fd`), so there is no port to race for.

Redis (`app/chat/transport.py` is the other end): requests are JSON on the list `REQUESTS`; a
worker takes one only when its own queue has room (so a busy worker leaves work to idle ones) and
pushes the reply to `reply:<id>`, which expires if the API already gave up.

A request with `"stream": true` is answered as events instead, each as soon as it exists: its text
deltas while it decodes (`{"event": "delta", ...}`, batcher.py), then `{"event": "done", "status",
...}` with what a plain request's reply would hold. Over HTTP they are the lines of a 200 NDJSON
body; over Redis, one list item each on the same reply key.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog

from workers.inference.batcher import Batcher, Busy, RequestError
from workers.inference.models import AdapterMissing, ModelCache

log = structlog.get_logger("vrft.inference")

REQUESTS = "vrft:inference:requests"
REPLY_PREFIX = "vrft:inference:reply:"
REPLY_TTL_S = 60


def outcome(future, timeout: float) -> tuple[int, dict]:
    """(HTTP status, body) for a submitted request once it is answered, or 503 past `timeout`."""
    try:
        return 200, future.result(timeout=max(timeout, 0.0))
    except FutureTimeout:
        future.cancel()
        return 503, {"error": {"status": 503, "code": "inference_timeout",
                               "message": "The inference worker did not answer in time.", "param": None}}
    except RequestError as exc:
        return exc.body["status"], {"error": exc.body}
    except AdapterMissing as exc:
        return 404, {"error": {"status": 404, "code": "model_not_found", "param": "model",
                               "message": f"The model's adapter is not in storage ({exc})."}}
    except Exception as exc:  # noqa: BLE001 — a failed decode is the worker's fault: the API answers 503
        return 503, {"error": {"status": 503, "code": "inference_failed", "param": None,
                               "message": f"The inference worker failed: {type(exc).__name__}: {exc}"}}


def submit(batcher: Batcher, req: dict) -> tuple[int, dict]:
    try:
        future = batcher.submit(req)
    except Busy as exc:
        return 503, _busy(exc)
    return outcome(future, float(req.get("deadline", time.time() + 60)) - time.time())


def submit_stream(batcher: Batcher, req: dict) -> tuple[Future, queue.Queue]:
    """Submit a streamed request (Busy when the queue is full): its answer and the queue its events go to."""
    events: queue.Queue = queue.Queue()
    future = batcher.submit(req, events)
    future.add_done_callback(lambda _: events.put(None))  # after every delta: they are queued first
    return future, events


def stream_events(req: dict, future: Future, events: queue.Queue) -> Iterator[dict]:
    """A streamed request's events: deltas as the decode thread queues them, then `done`."""
    deadline = float(req.get("deadline", time.time() + 60))
    while True:
        try:
            event = events.get(timeout=max(deadline - time.time(), 0.0))
        except queue.Empty:
            break  # past the deadline: `outcome` answers 503
        if event is None:
            break
        yield event
    status, body = outcome(future, deadline - time.time())
    yield {"event": "done", "status": status, **body}


def _busy(exc: Busy) -> dict:
    return {"error": {"status": 503, "code": "inference_busy", "message": str(exc), "param": None}}


def http_server(batcher: Batcher, sock: socket.socket) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = {"status": "ok", "queued": batcher.waiting(), "calls": batcher.calls[-20:]}
            self._send(200, body) if self.path == "/healthz" else self._send(404, {"error": "not found"})

        def do_POST(self):
            if self.path != "/generate":
                return self._send(404, {"error": "not found"})
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            req = json.loads(raw)
            if req.get("stream"):
                return self._stream(req)
            status, body = submit(batcher, req)
            self._send(status, body)

        def _stream(self, req: dict):
            try:
                future, events = submit_stream(batcher, req)
            except Busy as exc:
                return self._send(503, _busy(exc))
            # HTTP/1.0 and no Content-Length: the body ends when the connection closes, after `done`.
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.end_headers()
            try:
                for event in stream_events(req, future, events):
                    self.wfile.write((json.dumps(event) + "\n").encode())
            except (BrokenPipeError, ConnectionResetError):  # the API gave up (its client went away)
                log.info("inference.stream_abandoned", request=req.get("id"))

        def _send(self, status: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args):  # per-request lines come from the batcher's log
            pass

    server = ThreadingHTTPServer(sock.getsockname()[:2], Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.daemon_threads = True
    return server


def redis_loop(batcher: Batcher, broker_url: str, stop: threading.Event) -> None:
    import redis

    client = redis.Redis.from_url(broker_url, socket_timeout=10)
    replies: list = []

    def push(req, message: dict) -> None:
        client.rpush(REPLY_PREFIX + req["id"], json.dumps(message))
        client.expire(REPLY_PREFIX + req["id"], REPLY_TTL_S)

    def reply(req, future):
        status, body = outcome(future, float(req.get("deadline", time.time() + 60)) - time.time())
        push(req, {"status": status, **body})

    def reply_stream(req, future, events):
        for event in stream_events(req, future, events):
            push(req, event)

    while not stop.is_set():
        if not batcher.has_room():
            stop.wait(0.05)
            continue
        try:
            item = client.blpop([REQUESTS], timeout=1)
        except redis.RedisError as exc:
            log.warning("inference.redis_unavailable", error=str(exc))
            stop.wait(2.0)
            continue
        if item is None:
            continue
        req = json.loads(item[1])
        try:
            if req.get("stream"):
                future, events = submit_stream(batcher, req)
                thread = threading.Thread(target=reply_stream, args=(req, future, events), daemon=True)
            else:
                future = batcher.submit(req)
                thread = threading.Thread(target=reply, args=(req, future), daemon=True)
        except Busy:  # raced another submitter: hand it back to the front of the line
            client.lpush(REQUESTS, item[1])
            continue
        thread.start()
        replies.append(thread)
        replies[:] = [t for t in replies if t.is_alive()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.inference")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--fd", type=int, help="serve HTTP on this inherited listening socket")
    where.add_argument("--port", type=int, help="serve HTTP on 127.0.0.1:PORT")
    where.add_argument("--redis", action="store_true", help="take requests from VRFT_BROKER_URL")
    parser.add_argument("--parent", type=int, default=None, help="exit when this process (the server) is gone")
    args = parser.parse_args(argv)

    from app.config import get_settings
    from app.logging_setup import configure_logging
    from app.storage import get_store
    from workers.artifacts import download_folder

    settings = get_settings()
    configure_logging(settings)
    models = ModelCache(cache_dir=settings.cache_dir, adapter_cache_size=settings.inference_adapter_cache_size,
                        fetch_adapter=lambda key, dest: download_folder(get_store(), key, dest))
    batcher = Batcher(models, queue_size=settings.inference_queue_size, max_batch=settings.inference_max_batch)
    stop = threading.Event()
    if args.redis:
        if not settings.broker_url:
            log.error("inference.needs_broker", hint="--redis needs VRFT_BROKER_URL")
            return 2
        threading.Thread(target=redis_loop, args=(batcher, settings.broker_url, stop), daemon=True).start()
    else:
        if args.fd is not None:
            sock = socket.socket(fileno=args.fd)
        else:
            sock = socket.create_server(("127.0.0.1", args.port))
        server = http_server(batcher, sock)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def watch_parent():  # embedded: do not outlive the server that started us
        # The pid comes from the server itself: a server killed while we were still importing torch
        # has already left us to init by the time getppid() could first be read.
        while not stop.wait(1.0):
            if os.getppid() != args.parent:
                stop.set()

    if args.parent is not None:
        threading.Thread(target=watch_parent, daemon=True).start()
    log.info("inference.ready", transport="redis" if args.redis else "http")
    batcher.run(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
