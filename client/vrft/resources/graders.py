"""``client.graders``: validate a grader, or run it on one sample (OpenAI's alpha graders API)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vrft.resources._shared import GRADERS
from vrft.types import GraderRunResult, GraderValidation

if TYPE_CHECKING:
    from vrft._client import AsyncClient, Client


def _run_body(grader: dict[str, Any], model_sample: str, item: dict[str, Any] | None,
              image_size: Sequence[float] | None, resized_image_size: Sequence[float] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"grader": grader, "model_sample": model_sample, "item": item or {}}
    if image_size is not None:
        body["image_size"] = list(image_size)
    if resized_image_size is not None:
        body["resized_image_size"] = list(resized_image_size)
    return body


class Graders:
    def __init__(self, client: Client):
        self._client = client

    def validate(self, grader: dict[str, Any]) -> GraderValidation:
        """The normalised grader (``.grader``), or ``UnprocessableEntityError`` naming the bad field."""
        return self._client.call("POST", f"{GRADERS}/validate", GraderValidation, json={"grader": grader})

    def run(self, grader: dict[str, Any], model_sample: str, item: dict[str, Any] | None = None, *,
            image_size: Sequence[float] | None = None,
            resized_image_size: Sequence[float] | None = None) -> GraderRunResult:
        """Score one completion: ``reward``, ``sub_rewards`` and ``metadata.errors`` flags."""
        return self._client.call("POST", f"{GRADERS}/run", GraderRunResult,
                                 json=_run_body(grader, model_sample, item, image_size, resized_image_size))


class AsyncGraders:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def validate(self, grader: dict[str, Any]) -> GraderValidation:
        return await self._client.call("POST", f"{GRADERS}/validate", GraderValidation, json={"grader": grader})

    async def run(self, grader: dict[str, Any], model_sample: str, item: dict[str, Any] | None = None, *,
                  image_size: Sequence[float] | None = None,
                  resized_image_size: Sequence[float] | None = None) -> GraderRunResult:
        return await self._client.call("POST", f"{GRADERS}/run", GraderRunResult,
                                       json=_run_body(grader, model_sample, item, image_size, resized_image_size))
