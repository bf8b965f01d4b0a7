"""``vrft-worker``: a Celery worker on the ``gpu`` queue plus the reconciler, or a host agent.

    vrft-worker                 # one Celery worker (CPU, or whatever CUDA_VISIBLE_DEVICES shows)
    vrft-worker --gpus 0,1,2,3  # one host agent owning four GPUs: 1-GPU jobs side by side, or one job on
                                # several (resources.gpus), from the jobs table (workers/agent.py)
    vrft-worker --gpus cpu:2    # the same with two CPU ranks (tests, CI)
    vrft-worker --inference [--gpus 4,5]  # chat-completion workers (workers/inference), one per GPU
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vrft-worker", description="run vrft training workers")
    parser.add_argument("--gpus", default=None, help="comma-separated GPU ids (or cpu:N): a host agent that owns "
                        "them; with --inference, one inference process per GPU")
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--no-reconciler", action="store_true", help="leave recovery to another worker")
    parser.add_argument("--inference", action="store_true",
                        help="serve POST /v1/chat/completions instead of training: take requests from the broker")
    args = parser.parse_args(argv)

    from app.config import get_settings

    settings = get_settings()
    if args.gpus and not args.inference:  # Postgres is the agent's queue: no broker needed
        from workers.agent import main as run_agent

        return run_agent(args.gpus, loglevel=args.loglevel, reconcile=not args.no_reconciler)
    if not settings.broker_url:
        print("vrft-worker needs VRFT_BROKER_URL (a Redis URL); without a broker, `vrft-server serve` runs "
              "jobs itself", file=sys.stderr)
        return 2
    if args.gpus:
        return _fan_out(args)
    if args.inference:  # not a Celery task: the process keeps models loaded between requests and batches them
        from workers.inference.server import main as serve_inference

        return serve_inference(["--redis"])
    return _run_one(args, settings)


def _run_one(args, settings) -> int:
    from workers.celery_app import celery_app

    reconciler = None
    if not args.no_reconciler:  # a process of its own: see workers/reconciler.py for why not a thread
        reconciler = subprocess.Popen([sys.executable, "-m", "workers.reconciler"])
    name = f"gpu{os.environ.get('CUDA_VISIBLE_DEVICES', 'cpu')}-{os.getpid()}@{socket.gethostname()}"
    celery_app.worker_main(["worker", "--loglevel", args.loglevel, "--queues", "gpu", "--concurrency", "1",
                            "--pool", "prefork", "--hostname", name, "--without-gossip", "--without-mingle"])
    if reconciler is not None:
        reconciler.terminate()
        reconciler.wait(timeout=10)
    return 0


def _fan_out(args) -> int:
    procs = []
    for gpu in (g.strip() for g in args.gpus.split(",") if g.strip()):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
        cmd = [sys.executable, "-m", "workers.cli", "--loglevel", args.loglevel, "--inference"]
        procs.append(subprocess.Popen(cmd, env=env))

    def forward(signum, _frame):
        for p in procs:
            p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(p.wait() for p in procs)


if __name__ == "__main__":
    raise SystemExit(main())
