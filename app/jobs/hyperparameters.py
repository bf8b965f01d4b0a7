"""Job hyperparameters: the request's (OpenAI's names plus vrft's, many may be ``"auto"``) and the
resolved set a job trains with (no ``"auto"`` left, every cross-field rule checked), for each method:
``method.reinforcement.hyperparameters`` (GRPO) and ``method.supervised.hyperparameters`` (SFT). The
supervised set is the reinforcement set less the GRPO knobs (group_size, beta, sampling, loss_type,
scale_rewards, num_iterations): naming one of those in a supervised job is a 422, never ignored.

``resolve`` runs once, when the job is created; the row stores its result and the worker reads that
back into ``ResolvedHyperparameters`` (``workers.train_config`` maps it onto the trainer's config),
so what ``resolved_hyperparameters`` shows is exactly what trains.

Every value is strict (no ``"4"`` for an int, no ``true`` for a number), floats are finite and every
integer is bounded by what its database column and the trainer can hold, so a job that is created
can always be stored, rendered and trained.

Auto rules (also in the README):
- ``batch_size`` (prompts per optimizer step): min(16, rows) — the paper's 16 prompts × 8 completions.
- ``n_epochs``: enough passes to reach ~200 steps (the paper found 200 "sufficient"), clamped to 1..50;
  with an explicit ``max_steps``, the passes those steps amount to.
- ``max_steps``: ceil(rows / batch_size) × n_epochs.
- ``learning_rate``: 5e-5 × learning_rate_multiplier (LoRA wants far more than the paper's full-weight 1e-6);
  supervised: 1e-4 × learning_rate_multiplier (LoRA SFT's usual range).
- supervised ``n_epochs``: 3, raised so that epochs × rows reaches 100 and lowered so it stays within
  25,000, clamped to 1..25 (OpenAI's documented rule for its own "auto").
- ``checkpoint_interval``: ceil(max_steps / 4); ``eval_interval``: the checkpoint interval.
- ``eval_samples``: min(validation rows, 64); an explicit value is capped at the validation rows.
- ``gradient_checkpointing``: on when the base model has over 1 B parameters (or its size is unknown).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Auto = Literal["auto"]
BASE_LEARNING_RATE = 5e-5
LARGE_MODEL_PARAMETERS = 1_000_000_000
# the language model's attention + MLP projections (= workers.training.lora.DEFAULT_TARGETS; a test
# keeps the two equal — the API cannot import the trainer)
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# A step count far beyond any real job (a million steps) and far inside the Integer step columns.
MAX_STEPS = 1_000_000
Steps = Annotated[int, Field(ge=1, le=MAX_STEPS)]
Epochs = Annotated[int, Field(ge=1, le=1000)]
Batch = Annotated[int, Field(ge=1, le=1024)]
Samples = Annotated[int, Field(ge=1, le=1_000_000)]
LearningRate = Annotated[float, Field(gt=0, le=10)]
Multiplier = Annotated[float, Field(gt=0, le=1000)]
# 16,384 image tokens of 28×28 pixels: the Qwen-VL processors' own ceiling
Pixels = Annotated[int, Field(ge=784, le=12_845_056)]
ModuleName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.]+$")]

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class HyperparameterError(ValueError):
    """A value (or a combination) the trainer cannot run; ``name`` is the field's dotted path."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name, self.message = name, message


class UnknownHyperparameter(HyperparameterError):
    """A name no job takes (a typo must never train with a default)."""


class LoraSettings(BaseModel):
    model_config = _STRICT

    r: Annotated[int, Field(ge=1, le=512)] = 16
    alpha: Annotated[float, Field(gt=0, le=8192)] = 32
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.05
    target_modules: Annotated[list[ModuleName], Field(min_length=1, max_length=64)] | None = None


class _Shared(BaseModel):
    """Fields without ``"auto"`` that both methods take: the request's value is the value trained with."""

    model_config = _STRICT

    # reinforcement: the rollout length; supervised: the length of the graded greedy answers at evaluation
    max_completion_tokens: Annotated[int, Field(ge=1, le=8192)] = 256
    max_pixels: Pixels = 401_408
    min_pixels: Pixels = 3_136
    gradient_accumulation_steps: Annotated[int, Field(ge=1, le=64)] = 1


class _Fixed(_Shared):
    """The GRPO knobs (reinforcement only), also without ``"auto"``."""

    group_size: Annotated[int, Field(ge=2, le=64)] = 8
    beta: Annotated[float, Field(ge=0, le=100)] = 0.04
    temperature: Annotated[float, Field(gt=0, le=2)] = 1.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    loss_type: Literal["grpo", "dr_grpo", "dapo"] = "grpo"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    num_iterations: Annotated[int, Field(ge=1, le=16)] = 1


class _Schedule(BaseModel):
    """The request's fields that may be ``"auto"`` (both methods)."""

    model_config = _STRICT

    # OpenAI's
    n_epochs: Epochs | Auto = "auto"
    batch_size: Batch | Auto = "auto"
    learning_rate_multiplier: Multiplier | Auto = "auto"
    eval_interval: Steps | Auto = "auto"
    eval_samples: Samples | Auto = "auto"
    # vrft's
    learning_rate: LearningRate | Auto = "auto"
    max_steps: Steps | Auto = "auto"
    checkpoint_interval: Steps | Auto = "auto"
    gradient_checkpointing: bool | Auto = "auto"
    lora: LoraSettings = Field(default_factory=LoraSettings)


class Hyperparameters(_Fixed, _Schedule):
    """The request's ``method.reinforcement.hyperparameters``."""

    # openai-python may send these (they tune reasoning models); a VLM has neither knob, so only their
    # defaults are accepted — any other value is a 422 naming it, never silently dropped
    reasoning_effort: Literal["default"] | None = None
    compute_multiplier: Auto | None = None


class SupervisedHyperparameters(_Shared, _Schedule):
    """The request's ``method.supervised.hyperparameters``."""


class ResolvedLora(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    r: int
    alpha: float
    dropout: float
    target_modules: list[str]


class _ResolvedSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    n_epochs: Annotated[int, Field(ge=1, le=MAX_STEPS)]
    batch_size: Batch
    learning_rate_multiplier: Multiplier
    learning_rate: LearningRate
    max_steps: Steps
    checkpoint_interval: Steps
    eval_interval: Steps
    eval_samples: Annotated[int, Field(ge=0, le=1_000_000)]  # 0 only when there is no validation file
    gradient_checkpointing: bool
    lora: ResolvedLora


class ResolvedHyperparameters(_Fixed, _ResolvedSchedule):
    """What a reinforcement job trains with: every value concrete. Stored on the job row as JSON and
    read back by the worker; not strict on read because JSON gives ``32`` for the float ``32.0``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ResolvedSupervised(_Shared, _ResolvedSchedule):
    """What a supervised job trains with (same storage and reading rules)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Resolved = ResolvedHyperparameters | ResolvedSupervised
METHODS = ("reinforcement", "supervised")


def read_resolved(method_type: str, stored: dict[str, Any]) -> Resolved:
    """A job row's ``resolved_hyperparameters`` back as the model its method resolved to."""
    cls = ResolvedSupervised if method_type == "supervised" else ResolvedHyperparameters
    return cls.model_validate(stored)


def field_path(loc: tuple[Any, ...], model: Any = None) -> str:
    """The dotted field name of a validation error's ``loc``, without pydantic's union-member tags
    (``("max_steps", "constrained-int")`` → ``max_steps``)."""
    model = model or Hyperparameters
    parts: list[str] = []
    for part in loc:
        if model is None or part not in model.model_fields:
            break
        parts.append(str(part))
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return ".".join(parts) or ".".join(str(p) for p in loc)


def parse(raw: dict[str, Any] | None, method: str = "reinforcement") -> Hyperparameters | SupervisedHyperparameters:
    """The request's hyperparameters for ``method``, or ``HyperparameterError`` naming the first bad one."""
    model: type[Hyperparameters] | type[SupervisedHyperparameters] = (
        SupervisedHyperparameters if method == "supervised" else Hyperparameters)
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["type"] == "extra_forbidden":
            name = ".".join(str(p) for p in err["loc"])
            rft_only = method == "supervised" and name in _Fixed.model_fields and name not in _Shared.model_fields
            raise UnknownHyperparameter(name, f"Unknown hyperparameter '{name}'" + (
                " for a supervised job (it is a reinforcement setting)" if rft_only else "") + ".") from None
        name = field_path(err["loc"], model)
        auto = any(e["type"] == "literal_error" and e.get("ctx", {}).get("expected") == "'auto'"
                   for e in exc.errors() if field_path(e["loc"], model) == name)
        raise HyperparameterError(name, f"Hyperparameter '{name}': {err['msg']}"
                                  + (' (or "auto")' if auto else "") + ".") from None


SUPERVISED_LEARNING_RATE = 1e-4
# OpenAI's documented "auto" epochs for supervised jobs: 3, so that rows × epochs lands in [100, 25,000]
SFT_EPOCHS, SFT_MIN_EXAMPLES, SFT_MAX_EXAMPLES, SFT_MAX_EPOCHS = 3, 100, 25_000, 25


def _auto_epochs(supervised: bool, train_rows: int, steps_per_epoch: int) -> int:
    if not supervised:  # ~200 steps, the paper's "sufficient"
        return min(50, max(1, math.ceil(200 / steps_per_epoch)))
    rows = max(1, train_rows)
    if rows * SFT_EPOCHS < SFT_MIN_EXAMPLES:
        return min(SFT_MAX_EPOCHS, math.ceil(SFT_MIN_EXAMPLES / rows))
    if rows * SFT_EPOCHS > SFT_MAX_EXAMPLES:
        return max(1, SFT_MAX_EXAMPLES // rows)
    return SFT_EPOCHS


def resolve(hp: Hyperparameters | SupervisedHyperparameters, *, train_rows: int, val_rows: int = 0,
            model_parameters: int | None = None) -> Resolved:
    """Replace every ``"auto"`` and check the rules that span fields; ``model_parameters`` (None:
    unknown) decides ``gradient_checkpointing: "auto"``. The method is the type of ``hp``."""
    supervised = isinstance(hp, SupervisedHyperparameters)
    batch = hp.batch_size if hp.batch_size != "auto" else max(1, min(16, train_rows))
    if batch % hp.gradient_accumulation_steps:
        raise HyperparameterError(
            "gradient_accumulation_steps", f"gradient_accumulation_steps ({hp.gradient_accumulation_steps}) must "
            f"divide batch_size ({batch}{', from auto' if hp.batch_size == 'auto' else ''}): each micro-batch "
            "holds whole " + ("examples." if supervised else "prompts."))
    if hp.min_pixels > hp.max_pixels:
        raise HyperparameterError("min_pixels", f"min_pixels ({hp.min_pixels}) must not exceed max_pixels "
                                  f"({hp.max_pixels}).")
    steps_per_epoch = max(1, math.ceil(train_rows / batch))
    if hp.n_epochs != "auto":
        epochs = hp.n_epochs
    elif hp.max_steps != "auto":  # the step budget decides; show the passes it amounts to
        epochs = max(1, math.ceil(hp.max_steps / steps_per_epoch))
    else:
        epochs = _auto_epochs(supervised, train_rows, steps_per_epoch)
    max_steps = hp.max_steps if hp.max_steps != "auto" else steps_per_epoch * epochs
    if max_steps > MAX_STEPS:
        raise HyperparameterError("n_epochs", f"{epochs} epochs of {steps_per_epoch} steps is {max_steps} steps; "
                                  f"at most {MAX_STEPS} — lower n_epochs or set max_steps.")
    multiplier = hp.learning_rate_multiplier if hp.learning_rate_multiplier != "auto" else 1.0
    base_lr = SUPERVISED_LEARNING_RATE if supervised else BASE_LEARNING_RATE
    lr = hp.learning_rate if hp.learning_rate != "auto" else base_lr * multiplier
    ckpt = hp.checkpoint_interval if hp.checkpoint_interval != "auto" else max(1, math.ceil(max_steps / 4))
    checkpointing = hp.gradient_checkpointing
    if checkpointing == "auto":
        checkpointing = model_parameters is None or model_parameters > LARGE_MODEL_PARAMETERS
    resolved: type[ResolvedHyperparameters] | type[ResolvedSupervised] = (
        ResolvedSupervised if supervised else ResolvedHyperparameters)
    fixed = hp.model_dump(include=set(_Shared.model_fields if supervised else _Fixed.model_fields))
    return resolved(
        **fixed, batch_size=batch, n_epochs=epochs, max_steps=max_steps, learning_rate_multiplier=multiplier,
        learning_rate=lr, checkpoint_interval=ckpt,
        eval_interval=hp.eval_interval if hp.eval_interval != "auto" else ckpt,
        eval_samples=min(val_rows, hp.eval_samples if hp.eval_samples != "auto" else 64),
        gradient_checkpointing=checkpointing,
        lora=ResolvedLora(r=hp.lora.r, alpha=hp.lora.alpha, dropout=hp.lora.dropout,
                          target_modules=list(hp.lora.target_modules or DEFAULT_LORA_TARGETS)),
    )
