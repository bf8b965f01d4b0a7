"""Pure helpers shared by the sync and async resources (no I/O here)."""

from __future__ import annotations

import json
import os
import re
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vrft.types import FileObject, FineTuningJob

JOBS = "/v1/fine_tuning/jobs"
FILES = "/v1/files"
GRADERS = "/v1/fine_tuning/alpha/graders"


def file_id(value: str | FileObject) -> str:
    return value.id if isinstance(value, FileObject) else str(value)


def job_id(value: str | FineTuningJob) -> str:
    return value.id if isinstance(value, FineTuningJob) else str(value)


def build_job_body(*, model: str, training_file: Any, grader: dict[str, Any] | None, validation_file: Any = None,
                   hyperparameters: dict[str, Any] | None = None, suffix: str | None = None,
                   metadata: dict[str, Any] | None = None, seed: int | None = None, dry_run: bool = False,
                   dry_run_samples: int | None = None, method: dict[str, Any] | None = None,
                   method_type: str = "reinforcement", gpus: int | None = None,
                   extra_body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job request. ``method_type`` "reinforcement" needs a grader; "supervised" takes one only to
    score the validation file at each evaluation. A full ``method`` overrides both."""
    if method is None:
        if method_type not in ("reinforcement", "supervised"):
            raise ValueError(f"method_type must be 'reinforcement' or 'supervised', not {method_type!r}")
        if grader is None and method_type == "reinforcement":
            raise ValueError("a reinforcement job needs a grader (or a full `method`).")
        block: dict[str, Any] = {"grader": grader} if grader is not None else {}
        if hyperparameters:
            block["hyperparameters"] = hyperparameters
        method = {"type": method_type, method_type: block}
    body: dict[str, Any] = {"model": model, "training_file": file_id(training_file), "method": method}
    if validation_file is not None:
        body["validation_file"] = file_id(validation_file)
    if suffix is not None:
        body["suffix"] = suffix
    if metadata is not None:
        body["metadata"] = metadata
    if seed is not None:
        body["seed"] = seed
    if gpus is not None:  # devices the job trains on, data-parallel (the server's default is 1)
        body["resources"] = {"gpus": gpus}
    if dry_run:
        body["dry_run"] = True
        if dry_run_samples is not None:
            body["dry_run_samples"] = dry_run_samples
    if extra_body:
        body.update(extra_body)
    return body


def job_progress_note(job: FineTuningJob) -> str:
    parts = [job.status]
    if job.status == "queued" and job.queue_position is not None:
        parts.append(f"#{job.queue_position} in queue")
    if job.latest_reward is not None:
        parts.append(f"reward {job.latest_reward:.3f}")
    return "  ".join(parts)


def job_step(job: FineTuningJob) -> tuple[int | None, int | None]:
    if job.progress is None:
        return None, None
    return job.progress.step, job.progress.total_steps or None


# -- Server-Sent Events -----------------------------------------------------------------------------
class SSEDecoder:
    """Server-Sent Events, one line at a time (so the sync and async streams share it)."""

    def __init__(self) -> None:
        self.event = "message"
        self.data: list[str] = []
        self.ident: str | None = None

    def feed(self, raw: str) -> tuple[str, str, str | None] | None:
        """The ``(event, data, id)`` that a blank line completes, else ``None``."""
        line = raw.rstrip("\r\n")
        if not line:
            out = None
            if self.data or self.event != "message":
                out = (self.event, "\n".join(self.data), self.ident)
            self.event, self.data, self.ident = "message", [], None
            return out
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id":
            self.ident = value
        return None


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str, str, str | None]]:
    """``(event, data, id)`` per SSE message (``event`` defaults to ``"message"``)."""
    decoder = SSEDecoder()
    for raw in lines:
        message = decoder.feed(raw)
        if message is not None:
            yield message
    if decoder.data:  # a stream cut off before its final blank line still delivers its last message
        yield decoder.event, "\n".join(decoder.data), decoder.ident


def sse_payload(event: str, data: str) -> dict[str, Any] | None:
    if event in ("done", "error") or not data:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) and value.get("id") else None


# -- downloads --------------------------------------------------------------------------------------
_FILENAME = re.compile(r"""filename\*?=(?:UTF-8'')?["']?([^"';]+)""", re.IGNORECASE)


def filename_from_disposition(header: str | None) -> str | None:
    if not header:
        return None
    match = _FILENAME.search(header)
    return os.path.basename(match.group(1).strip()) if match else None


def resolve_dest(dest: str | os.PathLike[str] | None, default_name: str) -> Path:
    """``dest`` may be a file path, an existing folder, or a path ending in ``/`` (a folder to create)."""
    if dest is None:
        return Path.cwd() / default_name
    raw = os.fspath(dest)
    path = Path(raw).expanduser()
    if path.is_dir() or raw.endswith(("/", os.sep)):
        path.mkdir(parents=True, exist_ok=True)
        return path / default_name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def safe_extract(archive: Path, dest: Path) -> Path:
    """Untar ``archive`` into ``dest``, refusing members that escape it or are links/devices."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            target = (root / member.name).resolve()
            if root != target and root not in target.parents:
                raise ValueError(f"Refusing to extract {member.name!r}: it escapes {dest}")
            if not (member.isfile() or member.isdir()):
                raise ValueError(f"Refusing to extract {member.name!r}: not a regular file or folder")
            members.append(member)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(root, members=members, filter="data")
        else:  # Python < 3.12 without the backported filter; members were checked above
            tar.extractall(root, members=members)
    return dest
