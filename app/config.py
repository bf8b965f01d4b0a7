"""One Settings object, read from ``VRFT_*`` environment variables.

With nothing set vrft runs *embedded*: a SQLite file and a local object folder under ``data_dir``,
no broker (the API process runs jobs itself). Every production dependency is one variable away.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Credentials that ship in examples and compose files; refusing them outside development mode keeps
# a copy-pasted config from going live with a guessable secret.
WELL_KNOWN_SECRETS = frozenset({"", "minioadmin", "admin", "secret", "password", "changeme", "vrft", "vrft-secret"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VRFT_", extra="ignore")

    # -- where things live -------------------------------------------------------------------
    data_dir: Path = Field(default=Path(".vrft"), description="Embedded SQLite file, local objects, caches.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite under data_dir.")
    broker_url: str | None = Field(default=None, description="Celery broker (Redis); none = embedded worker.")
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = Field(default=None, description="Objects go to S3 when set, else to data_dir/objects.")
    s3_public_endpoint_url: str | None = Field(
        default=None, description="Endpoint clients reach for presigned downloads, if not the internal one.")
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    presigned_url_ttl_s: int = 600
    # A hung S3 (accepts, never answers) must fail a call in seconds, not hold a request or worker.
    s3_connect_timeout_s: float = Field(default=5.0, gt=0, description="Seconds to open a connection to S3.")
    s3_read_timeout_s: float = Field(default=30.0, gt=0, description="Seconds to wait for each S3 response read.")
    s3_max_attempts: int = Field(default=3, ge=1, le=10, description="Tries per S3 call, the first included.")

    # -- limits (user input) -----------------------------------------------------------------
    max_upload_bytes: int = 2 * 1024**3
    max_image_pixels: int = 40_000_000
    max_rows: int = 100_000
    max_archive_ratio: float = 100.0
    max_archive_bytes: int = 8 * 1024**3
    inline_validation_bytes: int = 16 * 1024**2  # smaller uploads validate before the response

    # -- models ------------------------------------------------------------------------------
    # name -> local folder or hub id, e.g. VRFT_BASE_MODELS='{"Qwen/Qwen2-VL-2B-Instruct": "/models/q2vl"}'
    base_models: dict[str, str] = Field(default_factory=dict)
    model_cache: Path | None = Field(
        default=None, description="Built-in tiny models and downloaded datasets; default data_dir/cache.")

    # -- behaviour ---------------------------------------------------------------------------
    python_grader_enabled: bool = False
    dev_mode: bool = Field(default=False, description="Allows insecure settings (public bind, default secrets).")
    host: str = "127.0.0.1"
    port: int = 8000
    poll_interval_ms: int = 2000
    log_level: str = "INFO"
    log_format: Literal["json", "console"] | None = Field(
        default=None, description="json lines or readable console lines; default console when embedded or in dev mode.")

    # -- worker ------------------------------------------------------------------------------
    heartbeat_interval_s: float = 10.0
    heartbeat_stale_s: float = 120.0
    max_job_attempts: int = 3
    storage_retry_delays_s: list[float] = Field(default_factory=lambda: [1.0, 3.0, 9.0])
    reconcile_interval_s: float = 5.0
    lost_message_after_s: float = 60.0  # a job queued this long is re-sent to the broker (duplicates are no-ops)
    longest_job_s: int = 48 * 3600
    embedded_worker: bool = Field(default=True, description="Run jobs in the API process when no broker is set.")

    # -- inference (POST /v1/chat/completions; workers/inference) -------------------------------
    inference_url: str | None = Field(
        default=None, description="HTTP address of an inference worker; the embedded server sets it for its child. "
        "Unset with a broker: requests go through Redis to `vrft-worker --inference`.")
    inference_embedded: bool = Field(default=True, description="Embedded mode: start a local inference process "
                                     "beside the job worker.")
    inference_timeout_s: float = Field(default=120.0, gt=0, description="Longest a chat request waits for its answer "
                                       "(queue + decode) before a 503 with Retry-After.")
    inference_queue_size: int = Field(default=32, ge=1, description="Requests waiting per inference worker "
                                      "(and in the Redis list); past it a chat request is a 503 at once.")
    inference_max_batch: int = Field(default=16, ge=1, description="Most requests decoded in one engine call.")
    inference_adapter_cache_size: int = Field(default=8, ge=1, description="Adapters an inference worker keeps "
                                              "loaded per base model (least recently used dropped).")
    inference_max_tokens: int = Field(default=1024, ge=1, description="Upper bound (and default) of max_tokens.")
    chat_max_images: int = Field(default=8, ge=1, description="Images one chat request may carry.")
    chat_fetch_image_urls: bool = Field(default=False, description="Let chat requests name https image URLs, "
                                        "fetched by the API (off: data URLs only).")
    chat_image_fetch_bytes: int = Field(default=20 * 1024**2, ge=1, description="Largest image fetched by URL.")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'vrft.db').resolve()}"

    @property
    def cache_dir(self) -> Path:
        return self.model_cache or (self.data_dir / "cache")

    @property
    def embedded(self) -> bool:
        return self.broker_url is None

    def insecure_reasons(self, host: str | None = None) -> list[str]:
        """Why this configuration must not serve outside development mode (empty = fine)."""
        host = host or self.host
        public = host not in ("127.0.0.1", "localhost", "::1")
        reasons = []
        if public and self.s3_bucket and self.s3_secret_access_key in WELL_KNOWN_SECRETS:
            reasons.append("VRFT_S3_SECRET_ACCESS_KEY is a well-known default secret on a public bind")
        if public and self.database_url is None:
            reasons.append("the embedded SQLite database is for a single local user, not a public bind")
        return reasons


@lru_cache
def get_settings() -> Settings:
    return Settings()
