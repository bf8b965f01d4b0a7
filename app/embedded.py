"""Embedded mode: with no broker, ``vrft-server serve`` runs jobs itself.

The worker is a child process (``python -m workers.embedded``), not a thread: training holds the GIL
and hundreds of MB of torch state that would slow every API request. It polls the database for
``queued`` jobs and runs the same ``run_job`` a Celery worker runs; the API imports no torch.
A second child answers chat completions (``python -m workers.inference``, see
``start_inference_worker``).
"""

from __future__ import annotations

import subprocess
import sys

from app.config import Settings


class EmbeddedWorker:
    def __init__(self, proc: subprocess.Popen, inference: subprocess.Popen | None = None):
        self.proc = proc
        self.inference = inference

    def stop(self) -> None:
        for proc in (self.proc, self.inference):
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in (self.proc, self.inference):
            if proc is None:
                continue
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def start_embedded_worker(settings: Settings) -> EmbeddedWorker:
    proc = subprocess.Popen([sys.executable, "-m", "workers.embedded"])
    return EmbeddedWorker(proc, start_inference_worker(settings))


def start_inference_worker(settings: Settings) -> subprocess.Popen | None:
    """A second child for chat completions (workers/inference), so a training job and a playground
    request never wait on each other. We bind its listening socket here and hand it over, so there
    is no free port to race for, and point this process's API at it through ``VRFT_INFERENCE_URL``
    (the setting an operator would use for a separate inference server): uvicorn imports the app
    after this, so its settings see the address."""
    if settings.inference_url or not settings.inference_embedded:
        return None  # an operator's inference server, or none wanted
    import os
    import socket

    from app.config import get_settings

    sock = socket.create_server(("127.0.0.1", 0))
    proc = subprocess.Popen([sys.executable, "-m", "workers.inference", "--fd", str(sock.fileno()),
                             "--parent", str(os.getpid())], pass_fds=[sock.fileno()])
    os.environ["VRFT_INFERENCE_URL"] = f"http://127.0.0.1:{sock.getsockname()[1]}"
    get_settings.cache_clear()
    sock.close()  # the child holds its own copy of the socket
    return proc
