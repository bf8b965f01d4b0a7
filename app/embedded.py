"""Embedded mode: with no broker, ``vrft-server serve`` runs jobs itself.

The worker is a child process (``python -m workers.embedded``), not a thread: training holds the GIL
and hundreds of MB of torch state that would slow every API request. It polls the database for
``queued`` jobs and runs the same ``run_job`` a Celery worker runs; the API imports no torch.
"""

from __future__ import annotations

import subprocess
import sys

from app.config import Settings


class EmbeddedWorker:
    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_embedded_worker(settings: Settings) -> EmbeddedWorker:
    proc = subprocess.Popen([sys.executable, "-m", "workers.embedded"])
    return EmbeddedWorker(proc)
