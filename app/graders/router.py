"""``/v1/fine_tuning/alpha/graders/validate|run`` in OpenAI's shapes. No auth here: the app
includes this router behind its auth dependency."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from app.errors import error_responses
from app.graders import FLAGS, drawn_boxes, score, validate_grader

router = APIRouter(prefix="/v1/fine_tuning/alpha/graders", tags=["graders"])

MAX_SAMPLE_CHARS = 100_000  # the run endpoint is interactive; bound what one call can make us parse


def python_grader_enabled() -> bool:
    """The operator's switch; imported lazily so this module loads before app.config exists."""
    from app.config import get_settings

    return bool(get_settings().python_grader_enabled)


class ValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grader: dict[str, Any]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grader: dict[str, Any]
    model_sample: str = Field(max_length=MAX_SAMPLE_CHARS)
    item: dict[str, Any] = Field(default_factory=dict)
    image_size: list[float] | None = Field(default=None, min_length=2, max_length=2)
    resized_image_size: list[float] | None = Field(default=None, min_length=2, max_length=2)


class ValidateResponse(BaseModel):
    grader: dict[str, Any]  # the normalised grader (defaults filled in), as a job will store it


class RunMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    type: str
    errors: dict[str, Any]  # vrft's flags plus OpenAI's error keys, each False/None when it did not happen
    execution_time: float
    scores: dict[str, Any]
    token_usage: Any = None
    sampled_model_name: str | None = None


class RunResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    reward: float | None
    sub_rewards: dict[str, Any]
    metadata: RunMetadata
    model_grader_token_usage_per_model: dict[str, Any]


@router.post("/validate", response_model=ValidateResponse, responses=error_responses(422))
def validate(body: ValidateRequest, allow_python: bool = Depends(python_grader_enabled)) -> dict[str, Any]:
    return {"grader": validate_grader(body.grader, allow_python=allow_python)}


# A sync route: FastAPI runs it in a worker thread, so a python grader's child process never
# blocks the event loop.
@router.post("/run", response_model=RunResponse, responses=error_responses(422))
def run(body: RunRequest, allow_python: bool = Depends(python_grader_enabled)) -> dict[str, Any]:
    grader = validate_grader(body.grader, allow_python=allow_python)
    sample: dict[str, Any] = {"output_text": body.model_sample}
    if body.image_size is not None:
        sample["image_size"] = body.image_size
    if body.resized_image_size is not None:
        sample["resized_image_size"] = body.resized_image_size
    started = time.perf_counter()
    result = score(grader, [sample], [body.item])
    elapsed = time.perf_counter() - started
    errors: dict[str, Any] = {flag: result.flags[flag][0] for flag in FLAGS}
    # OpenAI's error keys, so openai-python's GraderRunResponse reads them with their meaning.
    errors.update(
        formula_parse_error=False,
        invalid_variable_error=errors["missing_item_field"],
        unresponsive_reward_error=errors["timeout"],
        truncated_observation_error=False,
        other_error=False,
        python_grader_server_error=False,
        python_grader_server_error_type=None,
        python_grader_runtime_error_details=None,
        model_grader_server_error=False,
        model_grader_refusal_error=False,
        model_grader_parse_error=False,
        model_grader_server_error_details=None,
    )
    # vrft: the boxes the grader read (norm1 fractions of the image), so a client draws what was scored
    drawn = drawn_boxes(grader, [sample], [body.item])
    boxes = None if drawn is None else {"prediction": drawn[0][0], "reference": drawn[0][1]}
    return {
        "reward": result.rewards[0],
        "sub_rewards": {name: values[0] for name, values in result.sub_rewards.items()},
        "metadata": {
            "name": grader["name"],
            "type": grader["type"],
            "errors": errors,
            "execution_time": elapsed,
            "scores": {},
            "token_usage": None,
            "sampled_model_name": None,
            "boxes": boxes,
        },
        "model_grader_token_usage_per_model": {},
    }
