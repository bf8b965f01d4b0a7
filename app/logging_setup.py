"""One ``configure_logging`` for every vrft process: the API, the Celery worker, the embedded worker
and the reconciler.

Everything goes through structlog: our own ``structlog.get_logger()`` calls *and* stdlib ``logging``
records from third parties (uvicorn, Celery, botocore, alembic), which pass the same processors via
``ProcessorFormatter``, so one process writes one format. Context comes from contextvars: the API's
middleware binds ``request_id`` per request, ``workers.runner.run_job`` binds ``job_id`` while a job
runs, and every line logged meanwhile — ours or a library's — carries them.

``VRFT_LOG_FORMAT``: ``json`` (one object a line, for log shippers) or ``console`` (aligned,
readable). Unset: ``console`` for the embedded single-user setup and in development mode, ``json``
otherwise.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, TextIO

import structlog

if TYPE_CHECKING:
    from app.config import Settings

LOG_FORMATS = ("json", "console")

# What both our events and foreign (stdlib) records get before rendering: the bound context, the
# level, the logger's name, a UTC timestamp.
_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.PositionalArgumentsFormatter(),  # stdlib-style "%s" arguments still work
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class _VrftHandler(logging.StreamHandler):
    """Our root handler, a class of its own so that configuring again replaces it (and only it: a
    test runner's capture handler stays)."""


def log_format_for(settings: Settings) -> str:
    if settings.log_format:
        return settings.log_format
    return "console" if settings.embedded or settings.dev_mode else "json"


def _renderer(fmt: str, stream: TextIO) -> Any:
    if fmt == "json":
        return structlog.processors.JSONRenderer()
    if fmt == "console":
        isatty = getattr(stream, "isatty", None)
        return structlog.dev.ConsoleRenderer(colors=bool(isatty and isatty()))
    raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")


def configure_logging(settings: Settings | None = None, *, level: str | None = None, fmt: str | None = None,
                      stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to ``stream`` (stderr) in one format. Safe to call again:
    the latest call's level, format and stream win."""
    if settings is None:
        from app.config import get_settings

        settings = get_settings()
    level = (level or settings.log_level).upper()
    fmt = fmt or log_format_for(settings)
    stream = stream or sys.stderr

    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *_SHARED,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if fmt == "json":
        final.append(structlog.processors.format_exc_info)  # a traceback becomes one "exception" string
    final.append(_renderer(fmt, stream))
    handler = _VrftHandler(stream)
    # ExtraAdder: a stdlib call's extra={...} becomes keys of the line, as structlog's keywords do
    foreign = [*_SHARED, structlog.stdlib.ExtraAdder()]
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(foreign_pre_chain=foreign, processors=final))

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _VrftHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
