"""Chat completions: which model answers, what the inference worker is sent, how its answer reads.

A ``model`` is one of
- a base model id (``GET /v1/models``: the operator's ``VRFT_BASE_MODELS`` and the built-in tiny ones),
- the ``fine_tuned_model`` of a succeeded job of the caller's project (its final adapter),
- a checkpoint's ``fine_tuned_model_checkpoint`` (``<ft name>:ckpt-step-<n>``) of the caller's project.
Anything else — another project's model included — is a 404 naming ``model``. A tuned model is
asked with its job's ``min_pixels``/``max_pixels``, so images are resized as in its training.

Images are checked here, in the API (the same checks as dataset uploads: format, pixel limit,
aspect ratio, a full decode), so a broken one is a 400 naming its part — ``messages[0].content[1]
.image_url`` — before any worker is involved.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.orm import Session

from app import catalog
from app.chat.schemas import ChatCompletionCreate
from app.config import Settings
from app.datasets.images import check_image, decode_data_url, is_data_url
from app.datasets.limits import Limits
from app.datasets.report import Invalid
from app.errors import ErrorCode, ServiceError
from app.jobs.tuned import find_tuned

MAX_STOP = 4  # OpenAI's limit on stop sequences
DEFAULT_PIXELS = (3_136, 401_408)  # the processor's defaults, which a base model is asked with


@dataclass(frozen=True)
class Target:
    """What answers a request: a base model, with or without one adapter."""

    base: str
    location: str
    adapter_key: str | None
    min_pixels: int
    max_pixels: int


def _not_found(name: str) -> ServiceError:
    return ServiceError(ErrorCode.MODEL_NOT_FOUND, f"The model '{name}' does not exist or you do not have access "
                        "to it. GET /v1/models lists the models you can call.", "model")


def resolve_model(session: Session, *, project_id: str, name: str, settings: Settings) -> Target:
    bases = catalog.base_models(settings)
    if name in bases:
        return Target(name, bases[name], None, *DEFAULT_PIXELS)
    tuned = find_tuned(session, project_id=project_id, name=name, bases=bases)
    if tuned is None:
        raise _not_found(name)
    hp = tuned.job.resolved_hyperparameters or {}
    pixels = (int(hp.get("min_pixels", DEFAULT_PIXELS[0])), int(hp.get("max_pixels", DEFAULT_PIXELS[1])))
    return Target(tuned.job.base, bases[tuned.job.base], tuned.adapter_key, *pixels)


def _image_bytes(url: str, param: str, settings: Settings) -> bytes:
    if is_data_url(url):
        try:
            return decode_data_url(url, param)
        except Invalid as exc:
            raise ServiceError(ErrorCode.BAD_REQUEST, f"{param}: {exc.message}", param) from None
    if not url.lower().startswith("https://"):
        raise ServiceError(ErrorCode.BAD_REQUEST, f"{param}: expected a data URL ('data:image/png;base64,…') "
                           "or an https URL.", param)
    if not settings.chat_fetch_image_urls:
        raise ServiceError(ErrorCode.BAD_REQUEST, f"{param}: this server takes images as data URLs only "
                           "(the operator has not enabled fetching image URLs: VRFT_CHAT_FETCH_IMAGE_URLS).", param)
    return _fetch(url, param, settings.chat_image_fetch_bytes)


def _fetch(url: str, param: str, limit: int) -> bytes:
    """An https image, at most `limit` bytes, in bounded time; any failure is the caller's 400."""
    try:
        with httpx.stream("GET", url, timeout=10, follow_redirects=False) as response:
            if response.status_code != 200:
                raise ServiceError(ErrorCode.BAD_REQUEST, f"{param}: fetching the image answered "
                                   f"HTTP {response.status_code}.", param)
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise ServiceError(ErrorCode.BAD_REQUEST, f"{param}: the image is over {limit:,} bytes.", param)
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise ServiceError(ErrorCode.BAD_REQUEST, f"{param}: the image could not be fetched ({exc}).", param) from None


def _messages(req: ChatCompletionCreate, settings: Settings) -> list[dict[str, Any]]:
    """The messages as the worker takes them: roles normalised, every image checked and base64-encoded."""
    limits = Limits(max_image_pixels=settings.max_image_pixels)
    out, images = [], 0
    for m, message in enumerate(req.messages):
        role = "system" if message.role == "developer" else message.role
        if isinstance(message.content, str):
            out.append({"role": role, "content": message.content})
            continue
        parts: list[dict[str, Any]] = []
        for p, part in enumerate(message.content):
            if part.type == "text":
                parts.append({"type": "text", "text": part.text})
                continue
            param = f"messages[{m}].content[{p}].image_url"
            if role != "user":
                raise ServiceError(ErrorCode.BAD_REQUEST, f"{param}: images are allowed in user messages only.",
                                   param)
            images += 1
            if images > settings.chat_max_images:
                raise ServiceError(ErrorCode.BAD_REQUEST, f"{param}: a request may carry at most "
                                   f"{settings.chat_max_images} images.", param)
            data = _image_bytes(part.image_url.url, param, settings)
            try:
                check_image(data, param, limits)
            except Invalid as exc:
                raise ServiceError(ErrorCode.BAD_REQUEST, f"{param}: {exc.message}", param) from None
            parts.append({"type": "image", "data": base64.b64encode(data).decode()})
        out.append({"role": role, "content": parts})
    if out[-1]["role"] == "assistant":
        raise ServiceError(ErrorCode.BAD_REQUEST, "The last message must not be the assistant's: the model "
                           "answers after it.", f"messages[{len(out) - 1}].role")
    return out


def _stop(req: ChatCompletionCreate) -> list[str]:
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stop) > MAX_STOP:
        raise ServiceError(ErrorCode.BAD_REQUEST, f"stop: at most {MAX_STOP} sequences.", "stop")
    for i, s in enumerate(stop):
        if not s:
            raise ServiceError(ErrorCode.BAD_REQUEST, "stop: sequences must not be empty.", f"stop[{i}]")
    return stop


def max_tokens(req: ChatCompletionCreate, settings: Settings) -> int:
    both = req.max_tokens is not None and req.max_completion_tokens is not None
    if both and req.max_tokens != req.max_completion_tokens:
        raise ServiceError(ErrorCode.BAD_REQUEST, "max_tokens and max_completion_tokens disagree; send one of them.",
                           "max_completion_tokens")
    asked = req.max_completion_tokens or req.max_tokens or settings.inference_max_tokens
    if asked > settings.inference_max_tokens:
        param = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
        raise ServiceError(ErrorCode.BAD_REQUEST, f"{param}: at most {settings.inference_max_tokens} on this server "
                           f"(VRFT_INFERENCE_MAX_TOKENS), got {asked}.", param)
    return asked


def worker_request(req: ChatCompletionCreate, target: Target, settings: Settings) -> dict[str, Any]:
    """The message an inference worker takes (workers/inference/batcher.py documents it)."""
    if req.stream_options is not None and not req.stream:
        raise ServiceError(ErrorCode.BAD_REQUEST, "stream_options is only allowed with stream: true.",
                           "stream_options")
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "model": {"name": target.base, "location": target.location},
        "adapter_key": target.adapter_key, "min_pixels": target.min_pixels, "max_pixels": target.max_pixels,
        "messages": _messages(req, settings),
        "n": req.n, "max_tokens": max_tokens(req, settings), "temperature": req.temperature, "top_p": req.top_p,
        "stop": _stop(req), "seed": req.seed, "deadline": time.time() + settings.inference_timeout_s,
    }


def completion(req: ChatCompletionCreate, request_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    """The worker's answer as OpenAI's ``chat.completion`` object."""
    choices = [{"index": c["index"], "message": {"role": "assistant", "content": c["text"]},
                "finish_reason": c["finish_reason"], "logprobs": None} for c in answer["choices"]]
    generated = sum(int(c["completion_tokens"]) for c in answer["choices"])
    prompt = int(answer["prompt_tokens"])
    return {"id": request_id, "object": "chat.completion", "created": int(time.time()), "model": req.model,
            "choices": choices, "system_fingerprint": None,
            "usage": {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}}
