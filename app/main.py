"""create_app(): routers, error handlers, middleware, operations endpoints, dashboard."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import catalog
from app.auth.deps import current_project
from app.config import get_settings
from app.db import get_engine
from app.deps import get_session
from app.errors import ErrorCode, ServiceError
from app.observability import ObservabilityMiddleware, configure_logging, metrics_payload

log = logging.getLogger(__name__)
DASHBOARD_DIR = Path(__file__).parent / "dashboard"


def _error_response(err: ServiceError) -> JSONResponse:
    body = err.body()
    extra = getattr(err, "extra", None)
    if extra:
        body["error"].update(extra)
    return JSONResponse(body, status_code=err.code.status)


def _validation_param(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
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
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception):
        log.exception("request.unhandled_error")
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
    configure_logging(settings.log_level)
    app = FastAPI(title="vrft", version="0.1.0", description="Visual-RFT fine-tuning service (OpenAI-compatible).",
                  lifespan=_lifespan)
    app.add_middleware(ObservabilityMiddleware)
    install_error_handlers(app)

    from app.files.router import router as files_router
    from app.graders.router import router as graders_router
    from app.jobs.router import router as jobs_router

    app.include_router(files_router)
    app.include_router(jobs_router)
    app.include_router(graders_router, dependencies=[Depends(current_project)])

    @app.get("/v1/models", tags=["models"])
    def list_models(project_id: str = Depends(current_project), session: Session = Depends(get_session)):
        from app.jobs.models import Job

        data = [{"id": name, "object": "model", "created": 0, "owned_by": "vrft" if loc.startswith("builtin:") else "operator"}
                for name, loc in sorted(catalog.base_models(get_settings()).items())]
        tuned = session.scalars(sa.select(Job).where(Job.project_id == project_id, Job.fine_tuned_model.is_not(None))
                                .order_by(Job.created_at.desc()))
        data += [{"id": j.fine_tuned_model, "object": "model", "created": int(j.finished_at or j.created_at),
                  "owned_by": project_id, "root": j.model, "parent": j.model, "fine_tuning_job": j.id} for j in tuned]
        return {"object": "list", "data": data}

    @app.get("/healthz", tags=["operations"])
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
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
                            status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"])
    def metrics():
        payload, ctype = metrics_payload()
        return Response(payload, media_type=ctype)

    if DASHBOARD_DIR.is_dir():
        app.mount("/dashboard", StaticFiles(directory=DASHBOARD_DIR), name="dashboard")

        @app.get("/", include_in_schema=False)
        def dashboard_index():
            return FileResponse(DASHBOARD_DIR / "index.html")

    return app
