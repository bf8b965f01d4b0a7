"""``vrft-server``: serve | migrate | create-key."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vrft-server", description="vrft fine-tuning service")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API (and, with no broker, the embedded worker)")
    serve.add_argument("--host", default=None, help="bind address (default VRFT_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default VRFT_PORT or 8000)")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument("--no-worker", action="store_true", help="embedded mode: do not start the in-process worker")

    sub.add_parser("migrate", help="apply database migrations (alembic upgrade head)")

    key = sub.add_parser("create-key", help="create an API key for a project (printed once)")
    key.add_argument("--project", required=True, help="project name (created if new)")

    args = parser.parse_args(argv)
    from app.config import get_settings

    settings = get_settings()
    if args.command == "migrate":
        from app.migrate import upgrade

        upgrade()
        print("database is at the latest revision")
        return 0
    if args.command == "create-key":
        from app.auth.service import create_key
        from app.db import session_scope

        if settings.database_url is None:  # embedded: make sure the SQLite file has its tables
            from app.migrate import upgrade

            upgrade()
        with session_scope() as session:
            project, plaintext = create_key(session, project_name=args.project)
        print(plaintext)
        print(f"(project {project.name} = {project.id}; store this key now, it is not shown again)", file=sys.stderr)
        return 0
    if args.command == "serve":
        return _serve(args, settings)
    return 2


def _serve(args, settings) -> int:
    import uvicorn

    host = args.host or settings.host
    port = args.port or settings.port
    reasons = settings.insecure_reasons(host)
    if reasons and not settings.dev_mode:
        for reason in reasons:
            print(f"refusing to start: {reason} (set VRFT_DEV_MODE=true to override)", file=sys.stderr)
        return 2
    if settings.database_url is None:
        from app.migrate import upgrade

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade()
    worker = None
    if settings.embedded and settings.embedded_worker and not args.no_worker:
        from app.embedded import start_embedded_worker

        worker = start_embedded_worker(settings)
    try:
        # log_config=None: uvicorn's own records reach the root handler configure_logging installs
        uvicorn.run("app.asgi:app", host=host, port=port, workers=args.workers, log_level="warning",
                    access_log=False, log_config=None)
    finally:
        if worker is not None:
            worker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
