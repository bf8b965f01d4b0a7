"""Grader specs: one pydantic model per type, and ``validate_grader`` that names the bad field.

Validation walks the tree itself (rather than one big discriminated union) so every error carries
the exact dotted path users see — ``grader.graders.iou.coords`` — without pydantic's union tags.
Checks that need more than a type (templates, regexes, formulas, python source, JSON schemas, preset
weights) run here too, so a grader that validates can always be compiled.
"""

from __future__ import annotations

import ast
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.errors import ErrorCode, ServiceError
from app.graders import json_schema, templates
from app.graders.boxes import COORDS
from app.graders.formula import FormulaError, compile_formula
from app.graders.text_metrics import METRICS

OUTPUT_TEXT = "{{sample.output_text}}"
SOLUTION = "{{item.solution}}"
# The paper's format reward: the whole completion is <think>…</think> then <answer>…</answer>.
DEFAULT_FORMAT = r"<think>.*?</think>\s*<answer>.*?</answer>"
MAX_SOURCE_BYTES = 64 * 1024
MAX_PATTERN_LENGTH = 1000
MAX_DEPTH = 8  # multi graders nested in multi graders
# JSON nesting of a whole spec (a json_schema's `schema` is the only deep part a sane grader has).
# Pydantic's serialiser gives up near 200 levels with a bare ValueError, and Python's recursion near
# 1000, so this is checked first, by a loop that cannot itself overflow.
MAX_JSON_DEPTH = 64
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

Coords = Literal[COORDS]  # type: ignore[valid-type]
Metric = Literal[METRICS]  # type: ignore[valid-type]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)
    name: str = Field(min_length=1, max_length=128)

    @classmethod
    def reads_model_boxes(cls, raw: dict[str, Any]) -> bool:
        """Whether this grader reads boxes or points the model wrote — then an omitted ``coords``
        means the model family's convention (``validate_grader(..., model_coords=)``)."""
        return False


class StringCheck(_Spec):
    type: Literal["string_check"]
    input: str
    reference: str
    operation: Literal["eq", "ne", "like", "ilike"]


class TextSimilarity(_Spec):
    """Reward = the similarity; ``pass_threshold`` (OpenAI's) marks a pass for evaluations."""

    type: Literal["text_similarity"]
    input: str
    reference: str
    evaluation_metric: Metric
    pass_threshold: float | None = None


class Multi(_Spec):
    type: Literal["multi"]
    graders: dict[str, dict[str, Any]] = Field(min_length=1, max_length=32)
    calculate_output: str


class Python(_Spec):
    type: Literal["python"]
    source: str
    image_tag: str | None = None  # OpenAI's field; vrft runs one interpreter and ignores it


class Format(_Spec):
    type: Literal["format"]
    input: str = OUTPUT_TEXT
    pattern: str = DEFAULT_FORMAT


class Normalize(BaseModel):
    """How labels are normalised before the exact comparison."""

    model_config = ConfigDict(extra="forbid")
    lowercase: bool = True
    remove_spaces: bool = True
    remove_underscores: bool = True
    remove_punctuation: bool = True


class LabelMatch(_Spec):
    type: Literal["label_match"]
    input: str = OUTPUT_TEXT
    reference: str = SOLUTION
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    normalize: Normalize = Field(default_factory=Normalize)
    extract_answer: bool = True


class _Vision(_Spec):
    input: str = OUTPUT_TEXT
    reference: str = SOLUTION
    coords: Coords = "norm1000"
    reference_coords: Coords = "norm1000"
    extract_answer: bool = True

    @classmethod
    def reads_model_boxes(cls, raw: dict[str, Any]) -> bool:
        return True


class BoxIoU(_Vision):
    type: Literal["box_iou"]
    iou_threshold: float = Field(default=0.5, ge=0.0, lt=1.0)


class BoxConfidence(_Vision):
    type: Literal["box_confidence"]
    iou_threshold: float = Field(default=0.5, ge=0.0, lt=1.0)


class GroundingIoU(_Vision):
    """``metric: giou`` rewards GIoU + 1 in [0, 2] (the paper's grounding reward); ``iou`` in [0, 1]."""

    type: Literal["grounding_iou"]
    metric: Literal["giou", "iou"] = "giou"


class PointInBox(_Vision):
    type: Literal["point_in_box"]


class CountMatch(_Spec):
    type: Literal["count_match"]
    input: str = OUTPUT_TEXT
    reference: str = SOLUTION
    tolerance: int = Field(default=0, ge=0)
    extract_answer: bool = True


class JsonSchema(_Spec):
    type: Literal["json_schema"]
    input: str = OUTPUT_TEXT
    schema_: dict[str, Any] = Field(alias="schema")
    extract_answer: bool = True


class VisualRFT(_Spec):
    """The paper's reward sums; fields that do not apply to ``task`` are rejected when given."""

    type: Literal["visual_rft"]
    task: Literal["classification", "detection", "grounding"]
    weights: dict[str, float] | None = None
    input: str = OUTPUT_TEXT
    reference: str = SOLUTION
    format_pattern: str = DEFAULT_FORMAT
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    coords: Coords = "norm1000"
    reference_coords: Coords = "norm1000"
    iou_threshold: float = Field(default=0.5, ge=0.0, lt=1.0)
    grounding_metric: Literal["giou", "iou"] = "giou"

    @classmethod
    def reads_model_boxes(cls, raw: dict[str, Any]) -> bool:
        task = raw.get("task")
        return isinstance(task, str) and "coords" in _PRESET_FIELDS.get(task, ())


MODELS: dict[str, type[_Spec]] = {
    "string_check": StringCheck,
    "text_similarity": TextSimilarity,
    "multi": Multi,
    "python": Python,
    "format": Format,
    "label_match": LabelMatch,
    "box_iou": BoxIoU,
    "box_confidence": BoxConfidence,
    "grounding_iou": GroundingIoU,
    "point_in_box": PointInBox,
    "count_match": CountMatch,
    "json_schema": JsonSchema,
    "visual_rft": VisualRFT,
}
_PRESET_FIELDS = {
    "classification": {"aliases"},
    "detection": {"coords", "reference_coords", "iou_threshold"},
    "grounding": {"coords", "reference_coords", "grounding_metric"},
}
_PRESET_COMMON = {"type", "name", "task", "weights", "input", "reference", "format_pattern"}


def preset_components(spec: dict[str, Any]) -> tuple[str, ...]:
    """Sub-reward names of a ``visual_rft`` preset, in the order they are summed."""
    task = spec["task"]
    if task == "classification":
        return ("accuracy", "format")
    if task == "detection":
        return ("iou", "confidence", "format")
    return (spec.get("grounding_metric", "giou"), "format")


def _invalid(param: str, message: str) -> ServiceError:
    return ServiceError(ErrorCode.INVALID_GRADER, message, param=param)


def _pydantic_error(exc: ValidationError, path: str) -> ServiceError:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    param = ".".join([path, *loc])
    field = loc[-1] if loc else "grader"
    if err["type"] == "extra_forbidden":
        message = f"unknown field '{field}'"
    elif err["type"] == "missing":
        message = f"missing required field '{field}'"
    else:
        message = f"{field}: {err['msg']}"
    return _invalid(param, message)


def _check_templates(model: _Spec, path: str) -> None:
    for field in ("input", "reference"):
        value = getattr(model, field, None)
        if isinstance(value, str):
            try:
                templates.parse_refs(value)
            except templates.TemplateError as exc:
                raise _invalid(f"{path}.{field}", str(exc)) from None


def _check_pattern(pattern: str, param: str) -> None:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise _invalid(param, f"pattern is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        re.compile(pattern, re.S)
    except re.error as exc:
        raise _invalid(param, f"pattern is not a valid regular expression: {exc}") from None


def _check_python_source(source: str, path: str) -> None:
    """Compile only — the source is never executed in this process."""
    param = f"{path}.source"
    if len(source.encode("utf-8")) > MAX_SOURCE_BYTES:
        raise _invalid(param, f"source is larger than {MAX_SOURCE_BYTES // 1024} KiB")
    try:
        tree = ast.parse(source, mode="exec")
    except SyntaxError as exc:
        raise _invalid(param, f"source does not compile: {exc.msg} (line {exc.lineno})") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise _invalid(param, f"source does not compile: {exc}") from None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "grade":
            args = node.args
            if node.args.vararg or len(args.posonlyargs) + len(args.args) >= 2:
                return
            raise _invalid(param, "grade must take two arguments: grade(sample, item)")
    raise _invalid(param, "source must define a top-level function grade(sample, item) -> float")


def _check_preset(model: VisualRFT, given: dict[str, Any], path: str) -> dict[str, Any]:
    relevant = _PRESET_COMMON | _PRESET_FIELDS[model.task]
    for field in given:
        if field not in relevant:
            raise _invalid(f"{path}.{field}", f"'{field}' does not apply to task '{model.task}'")
    _check_pattern(model.format_pattern, f"{path}.format_pattern")
    out = model.model_dump(mode="json", by_alias=True, include=relevant)
    components = preset_components(out)
    weights = dict.fromkeys(components, 1.0)
    for key, value in (model.weights or {}).items():
        if key not in weights:
            raise _invalid(
                f"{path}.weights.{key}",
                f"unknown weight '{key}' for task '{model.task}' (one of {', '.join(components)})",
            )
        weights[key] = value
    out["weights"] = weights
    return out


def check_nesting(spec: Any) -> None:
    """Raise INVALID_GRADER naming the first grader nested past ``MAX_DEPTH`` multis, or the first
    value nested past ``MAX_JSON_DEPTH`` levels — before anything recursive reads the spec."""
    stack: list[tuple[Any, str, int | None, int]] = [(spec, "grader", 0, 1)]  # value, path, grader depth, json depth
    while stack:
        value, path, grader_depth, json_depth = stack.pop()
        if grader_depth is not None and grader_depth > MAX_DEPTH:
            raise _invalid(path, f"graders are nested deeper than {MAX_DEPTH} levels")
        if json_depth > MAX_JSON_DEPTH and isinstance(value, (dict, list)):
            raise _invalid(path, f"the grader is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, dict):
            multi_depth = grader_depth if value.get("type") == "multi" else None  # None: not a multi grader
            children: list[tuple[Any, str, int | None, int]] = []
            for key, child in value.items():
                if multi_depth is not None and key == "graders" and isinstance(child, dict):
                    children += [(sub, f"{path}.graders.{name}", multi_depth + 1, json_depth + 2)
                                 for name, sub in child.items()]
                else:
                    children.append((child, f"{path}.{key}", None, json_depth + 1))
            stack.extend(reversed(children))  # depth-first in document order, as the validation walks
        elif isinstance(value, list):
            stack.extend(reversed([(v, f"{path}.{i}", None, json_depth + 1) for i, v in enumerate(value)]))


def _validate_node(raw: Any, path: str, allow_python: bool, model_coords: str | None) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _invalid(path, "a grader must be a JSON object")
    kind = raw.get("type")
    if kind not in MODELS:
        raise _invalid(
            f"{path}.type", f"unknown grader type {kind!r}; one of {', '.join(MODELS)}"
        )
    if kind == "python" and not allow_python:
        raise ServiceError(
            ErrorCode.PYTHON_GRADER_DISABLED,
            "python graders are disabled on this server; an operator can enable them by setting "
            "VRFT_PYTHON_GRADER_ENABLED=true",
            param=f"{path}.type",
        )
    spec_class = MODELS[kind]
    if model_coords is not None and "coords" not in raw and spec_class.reads_model_boxes(raw):
        raw = {**raw, "coords": model_coords}
    try:
        model = spec_class.model_validate(raw)
    except ValidationError as exc:
        raise _pydantic_error(exc, path) from None
    _check_templates(model, path)

    if isinstance(model, VisualRFT):
        return _check_preset(model, raw, path)
    out = model.model_dump(mode="json", by_alias=True)
    if isinstance(model, Multi):
        children = {}
        for key, child in model.graders.items():
            child_path = f"{path}.graders.{key}"
            if not _KEY.fullmatch(key):
                raise _invalid(child_path, f"sub-grader key '{key}' must be an identifier (a-z, 0-9, _)")
            if isinstance(child, dict) and "name" not in child:
                child = {**child, "name": key}  # OpenAI requires it; the key is the obvious default
            children[key] = _validate_node(child, child_path, allow_python, model_coords)
        try:
            compile_formula(model.calculate_output, set(children))
        except FormulaError as exc:
            raise _invalid(f"{path}.calculate_output", str(exc)) from None
        out["graders"] = children
    elif isinstance(model, Format):
        _check_pattern(model.pattern, f"{path}.pattern")
    elif isinstance(model, Python):
        _check_python_source(model.source, path)
    elif isinstance(model, JsonSchema):
        try:
            json_schema.check_schema(model.schema_)
        except json_schema.SchemaError as exc:
            param = f"{path}.schema" + (f".{exc.path}" if exc.path else "")
            raise _invalid(param, str(exc)) from None
    return out


def validate_grader(
    spec: dict[str, Any], *, allow_python: bool = False, model_coords: str | None = None
) -> dict[str, Any]:
    """The normalised grader (defaults filled; presets validated, not expanded).

    ``model_coords`` is the convention the job's model answers boxes in (``app.catalog``): box
    graders that leave ``coords`` out get it instead of ``norm1000`` — Qwen2.5-VL answers in resized
    pixels, the trap of VISUAL_RFT.md "Coordinates". An explicit ``coords`` always wins.

    Raises ``ServiceError(INVALID_GRADER, message, param="grader.<path>")``, or
    ``PYTHON_GRADER_DISABLED`` for a python grader while the operator has not enabled them.
    """
    check_nesting(spec)
    return _validate_node(spec, "grader", allow_python, model_coords)
