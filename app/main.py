"""create_app(): routers, error handlers, middleware, operations endpoints, dashboard."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from botocore.exceptions import BotoCoreError
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import model_listing
from app.auth.deps import current_project
from app.config import get_settings
from app.db import get_engine
from app.deps import DbSession
from app.errors import ErrorCode, ServiceError, error_responses
from app.logging_setup import configure_logging
from app.model_listing import ModelList
from app.observability import ObservabilityMiddleware, metrics_payload

log = structlog.get_logger(__name__)
DASHBOARD_DIR = Path(__file__).parent / "dashboard"


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str  # ready | unavailable
    checks: dict[str, str]  # database / broker / storage -> "ok" or why not


RETRY_AFTER_S = 5  # what a 503 asks clients to wait; the SDK honours Retry-After


def _error_response(err: ServiceError) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if err.code.status == 503 else None
    return JSONResponse(err.body(), status_code=err.code.status, headers=headers)


def _validation_param(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _is_database_outage(exc: Exception) -> bool:
    """The database refused, dropped or timed out a connection — not a query of ours that it rejected
    (a DataError or IntegrityError is our bug and stays a 500)."""
    import sqlalchemy.exc as sa_exc

    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):  # pool exhausted / connection lost
        return True
    return isinstance(exc, sa_exc.DBAPIError) and (
        isinstance(exc, sa_exc.OperationalError) or exc.connection_invalidated)


def _is_storage_outage(exc: Exception) -> bool:
    """boto3 could not reach S3 (refused, timed out, cut). ``S3Store`` already turns most of these into
    ``storage_unavailable``; this catches any call that reaches boto3 another way."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    return isinstance(exc, BotoConnectionError | ConnectTimeoutError | ReadTimeoutError)


def install_error_handlers(app: FastAPI) -> None:
    """The last-resort rule: request input never yields a 5xx. ServiceErrors and validation errors are
    4xx; an unreachable database or object store is a 503 with Retry-After; anything else is a 500
    in the one error shape, logged with its traceback, because it is a bug of ours."""

    @app.exception_handler(ServiceError)
    async def service_error(_request: Request, exc: ServiceError):
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def request_validation(_request: Request, exc: RequestValidationError):
        err = exc.errors()[0]
        param = _validation_param(err.get("loc", ()))
        if err.get("type") == "extra_forbidden":
            return _error_response(ServiceError(ErrorCode.UNKNOWN_FIELD, f"Unknown field '{param}'.", param))
        if err.get("type") == "json_invalid":
            return _error_response(ServiceError(ErrorCode.BAD_REQUEST, "Request body is not valid JSON.", "body"))
        return _error_response(ServiceError(ErrorCode.VALIDATION_ERROR, f"Field '{param}': {err.get('msg')}.", param))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.BAD_REQUEST}.get(exc.status_code, ErrorCode.BAD_REQUEST)
        body = ServiceError(code, str(exc.detail)).body()
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    # Outages are recognised by class, so they are answered here and never reach Starlette's
    # server-error middleware (which re-raises, and the server then drops the connection).
    @app.exception_handler(SQLAlchemyError)
    async def database_error(_request: Request, exc: SQLAlchemyError):
        return last_resort_response(exc)

    @app.exception_handler(BotoCoreError)
    async def storage_error(_request: Request, exc: BotoCoreError):
        return last_resort_response(exc)


def last_resort_response(exc: BaseException) -> JSONResponse:
    """503 + Retry-After for a dependency outage; for anything else a logged 500 in the error shape."""
    if isinstance(exc, Exception) and _is_database_outage(exc):
        log.warning("request.database_unavailable", exc_info=exc)
        return _error_response(ServiceError(ErrorCode.DEPENDENCY_UNAVAILABLE,
                                            "The database is unavailable; retry shortly."))
    if isinstance(exc, Exception) and _is_storage_outage(exc):
        log.warning("request.storage_unavailable", exc_info=exc)
        return _error_response(ServiceError(ErrorCode.STORAGE_UNAVAILABLE,
                                            "Object storage is unavailable; retry shortly."))
    log.error("request.unhandled_error", exc_info=exc)
    return _error_response(ServiceError(ErrorCode.INTERNAL, "Internal server error; it has been logged."))


@asynccontextmanager
async def _lifespan(_app: FastAPI):
    """Pick up uploads whose background validation a previous run of the server left unfinished."""
    import threading

    def resume():
        from app.files.service import resume_pending_validations
        from app.storage import get_store

        try:
            resume_pending_validations(get_settings(), get_store())
        except Exception:  # no tables yet, storage down: the next start tries again
            log.warning("files.resume_validation_failed", exc_info=True)

    threading.Thread(target=resume, name="resume-validations", daemon=True).start()
    yield


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings)
    app = FastAPI(title="vrft", version="0.1.0", description="Visual-RFT fine-tuning service (OpenAI-compatible).",
                  lifespan=_lifespan)
    app.add_middleware(ObservabilityMiddleware, fallback=last_resort_response)
    install_error_handlers(app)

    from app.chat.router import router as chat_router
    from app.files.router import router as files_router
    from app.graders.router import router as graders_router
    from app.jobs.router import router as jobs_router

    app.include_router(files_router)
    app.include_router(chat_router)
    app.include_router(jobs_router)
    app.include_router(graders_router, dependencies=[Depends(current_project)])

    @app.get("/v1/models", tags=["models"], response_model=ModelList, responses=error_responses())
    def list_models(session: DbSession, project_id: str = Depends(current_project)):
        return {"object": "list", "data": model_listing.list_models(session, project_id=project_id,
                                                                    settings=get_settings())}

    @app.get("/healthz", tags=["operations"], response_model=Health)
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], response_model=Readiness,
             responses={503: {"model": Readiness, "description": "A dependency is unavailable"}})
    def readyz():
        from app.queue import ping_broker
        from app.storage import get_store

        checks = {}
        for name, probe in (
            ("database", lambda: get_engine().connect().close()),
            ("broker", lambda: ping_broker(get_settings())),
            ("storage", lambda: get_store().ping()),
        ):
            try:
                probe()
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"unavailable: {exc}"[:300]
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks},
                            status_code=200 if ready else 503,
                            headers=None if ready else {"Retry-After": str(RETRY_AFTER_S)})

    @app.get("/metrics", tags=["operations"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus metrics"}})
    def metrics():
        payload, ctype = metrics_payload()
        return Response(payload, media_type=ctype)

    if DASHBOARD_DIR.is_dir():
        app.mount("/dashboard", StaticFiles(directory=DASHBOARD_DIR), name="dashboard")

        @app.get("/", include_in_schema=False)
        def dashboard_index():
            return FileResponse(DASHBOARD_DIR / "index.html")

    return app
