"""One dataset row → what the trainer needs (prompt, image reference, reference fields), or why not.

Both row layouts are checked here, whatever file they came from: a JSONL line, an archive manifest
line, or a Parquet row. Checks collect every problem of a row instead of stopping at the first, so a
user fixes a row once.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field

from app.datasets.report import Code, Invalid
from app.datasets.values import value_problems

OPENAI = "openai_rft_jsonl"
VISUAL = "visual_rft_jsonl"
# The training methods a row can suit (the job's method.type). A Visual-RFT row suits both (its solution
# is the supervised target); an OpenAI chat row suits reinforcement when it ends with the user's turn
# and supervised when it ends with the assistant's answer.
REINFORCEMENT, SUPERVISED = "reinforcement", "supervised"
METHODS = (REINFORCEMENT, SUPERVISED)
ROLES = ("system", "developer", "user", "assistant")

# Detection solutions are short; a megabyte of "answer" is not one, and literal_eval on it would be slow.
_MAX_SOLUTION_PARSE = 1_000_000
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_BOX_KEYS = ("position", "bbox_2d")


@dataclass
class RowSpec:
    prompt: str
    item: dict
    image_field: str
    # A data URL or archive path (JSONL), the encoded bytes (Parquet), or None when unusable.
    image_ref: str | bytes | None
    problems: list[Invalid] = field(default_factory=list)
    # method → why this row cannot train with it (a row that suits no method has these as problems)
    unsuited: dict[str, Invalid] = field(default_factory=dict)
    # OpenAI rows: the chat as the supervised trainer reads it (workers/training/sft.py): text parts,
    # {"type": "image"} where the image was, "developer" as "system", assistant weights kept
    chat: list[dict] | None = None


def row_format(obj: dict) -> str | None:
    """Which layout an object is in, judged by its keys; None when it has neither's."""
    if "messages" in obj:
        return OPENAI
    if "image" in obj or "problem" in obj:
        return VISUAL
    return None


def parse_row(obj: dict, layout: str) -> RowSpec:
    return parse_openai(obj) if layout == OPENAI else parse_visual(obj)


def parse_openai(obj: dict) -> RowSpec:
    """``{"messages": [{"role": "user", "content": [text parts, one image_url part]}], <refs>}``."""
    problems: list[Invalid] = value_problems(obj)
    item = {k: v for k, v in obj.items() if k != "messages"}
    spec = RowSpec(prompt="", item=item, image_field="messages", image_ref=None, problems=problems)
    _check_solution(item, problems)

    messages = obj.get("messages")
    if "messages" not in obj:
        problems.append(
            Invalid(Code.MISSING_FIELD, "messages", "required: a list of chat messages whose user "
                    "message holds the question as a text part and one image_url part")
        )
        return spec
    if not isinstance(messages, list) or not messages:
        problems.append(Invalid(Code.INVALID_FIELD, "messages", "must be a non-empty list of messages"))
        return spec

    texts: list[str] = []
    images: list[tuple[str, object]] = []
    chat: list[dict] = []
    saw_user = False
    for i, message in enumerate(messages):
        path = f"messages[{i}]"
        if not isinstance(message, dict):
            problems.append(Invalid(Code.INVALID_FIELD, path, "must be an object with 'role' and 'content'"))
            continue
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            code = Code.MISSING_FIELD if role is None else Code.INVALID_FIELD
            problems.append(Invalid(code, f"{path}.role", f"must be one of {', '.join(ROLES)}, got {brief(role)}"))
            continue
        saw_user = saw_user or role == "user"
        turn: dict = {"role": "system" if role == "developer" else role, "content": []}
        _read_weight(message, path, role, turn, problems)
        chat.append(turn)
        content = message.get("content")
        if isinstance(content, str):
            if role == "user":
                texts.append(content)
            turn["content"].append({"type": "text", "text": content})
            continue
        if not isinstance(content, list):
            code = Code.MISSING_FIELD if content is None else Code.INVALID_FIELD
            problems.append(Invalid(code, f"{path}.content", "must be a string or a list of content parts"))
            continue
        for j, part in enumerate(content):
            _read_part(part, f"{path}.content[{j}]", role, texts, images, problems, turn["content"])

    if not saw_user:
        problems.append(Invalid(Code.MISSING_FIELD, "messages", "no message has role 'user'"))
    if not images:
        problems.append(
            Invalid(Code.MISSING_FIELD, "messages", "no image_url part; exactly one image per row is required")
        )
    for extra_path, _ in images[1:]:
        problems.append(
            Invalid(Code.INVALID_FIELD, extra_path, f"row has {len(images)} images; exactly one is supported")
        )
    spec.prompt = "\n".join(texts)
    spec.chat = chat
    _judge_chat(chat, len(messages), texts, spec.unsuited)
    if images:
        spec.image_field, ref = images[0]
        spec.image_ref = ref if isinstance(ref, str) and ref else None
        if spec.image_ref is None:
            problems.append(
                Invalid(Code.INVALID_FIELD, spec.image_field, "must be a data URL or a path inside the archive")
            )
    return spec


def _read_weight(message: dict, path: str, role: str, turn: dict, problems: list[Invalid]) -> None:
    """OpenAI's supervised ``weight``: 0 (do not learn this assistant turn) or 1."""
    if "weight" not in message:
        return
    weight = message["weight"]
    if role != "assistant":
        problems.append(Invalid(Code.INVALID_FIELD, f"{path}.weight", "only assistant messages take a weight"))
    elif weight not in (0, 1) or isinstance(weight, bool) or not isinstance(weight, int):
        problems.append(Invalid(Code.INVALID_FIELD, f"{path}.weight", f"must be 0 or 1, got {brief(weight)}"))
    else:
        turn["weight"] = weight


def _judge_chat(chat: list[dict], count: int, user_texts: list[str], unsuited: dict[str, Invalid]) -> None:
    """Which methods this chat can train: reinforcement answers the last user turn, supervised learns
    the assistant's turns (the last message is the assistant's, and a turn to learn has text). The
    method the row's shape points at is judged first, so its reason leads when neither suits."""
    last = f"messages[{count - 1}]"
    if not chat or chat[-1]["role"] != "assistant":
        if not any(t.strip() for t in user_texts):
            unsuited[REINFORCEMENT] = Invalid(Code.MISSING_FIELD, "messages",
                                              "the user message has no text part; the question goes there")
        unsuited[SUPERVISED] = Invalid(Code.MISSING_FIELD, "messages", "no assistant message at the end; a "
                                       "supervised row ends with the assistant's answer to learn")
        return
    if not any(t["role"] == "assistant" and t.get("weight", 1) for t in chat):
        unsuited[SUPERVISED] = Invalid(Code.INVALID_FIELD, "messages", "every assistant message has weight 0: "
                                       "nothing to learn")
    elif not "".join(p.get("text", "") for p in chat[-1]["content"]).strip():
        unsuited[SUPERVISED] = Invalid(Code.INVALID_FIELD, f"{last}.content",
                                       "the assistant's answer (the target) is empty")
    unsuited[REINFORCEMENT] = Invalid(Code.INVALID_FIELD, last, "ends with an assistant message; a "
                                      "reinforcement row ends with the user's turn for the model to answer")


def _read_part(part, path, role, texts, images, problems, parts: list[dict]) -> None:
    if not isinstance(part, dict):
        problems.append(Invalid(Code.INVALID_FIELD, path, "content part must be an object with a 'type'"))
        return
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            code = Code.MISSING_FIELD if text is None else Code.INVALID_FIELD
            problems.append(Invalid(code, f"{path}.text", "must be a string"))
        else:
            parts.append({"type": "text", "text": text})
            if role == "user":
                texts.append(text)
    elif kind == "image_url":
        image_url = part.get("image_url")
        url = image_url.get("url") if isinstance(image_url, dict) else None
        if url is None:
            problems.append(Invalid(
                Code.MISSING_FIELD, f"{path}.image_url.url", 'expected {"image_url": {"url": "data:image/..."}}'
            ))
        elif role != "user":
            problems.append(Invalid(Code.INVALID_FIELD, path, f"images belong in the user message, not '{role}'"))
        else:
            images.append((f"{path}.image_url.url", url))
            parts.append({"type": "image"})
    else:
        problems.append(Invalid(
            Code.INVALID_FIELD, f"{path}.type", f"unknown content part type {kind!r}; expected 'text' or 'image_url'"
        ))


def parse_visual(obj: dict) -> RowSpec:
    """``{"image": ..., "problem": str, "solution": str, ...}``, the paper's released layout.

    ``image`` is a string in JSONL (data URL or archive path) and, in Parquet as Hugging Face writes
    it, a struct ``{"bytes": ..., "path": ...}`` or plain bytes.
    """
    problems: list[Invalid] = value_problems(obj, skip=("image",))
    item = {k: v for k, v in obj.items() if k != "image"}
    spec = RowSpec(prompt="", item=item, image_field="image", image_ref=None, problems=problems)

    image = obj.get("image")
    if image is None:
        problems.append(Invalid(Code.MISSING_FIELD, "image", "required: a data URL, or a path inside the archive"))
    elif isinstance(image, (bytes, str)) and image:
        spec.image_ref = image
    elif isinstance(image, dict) and isinstance(image.get("bytes"), bytes) and image["bytes"]:
        spec.image_ref = image["bytes"]
    elif isinstance(image, dict) and image.get("path"):
        problems.append(
            Invalid(Code.IMAGE_NOT_FOUND, "image", f"no image bytes, only the path {image['path']!r} on the "
                    "machine that wrote the file; embed the images (datasets' Image feature does this on push)")
        )
    else:
        problems.append(
            Invalid(Code.INVALID_FIELD, "image", f"must be a data URL or a path inside the archive, got {brief(image)}")
        )

    problem = _required_text(obj, "problem", problems)
    _required_text(obj, "solution", problems)
    _check_solution(item, problems)
    spec.prompt = problem or ""
    return spec


def _required_text(obj: dict, name: str, problems: list[Invalid]) -> str | None:
    value = obj.get(name)
    if value is None:
        problems.append(Invalid(Code.MISSING_FIELD, name, "required: a string"))
    elif not isinstance(value, str) or not value.strip():
        problems.append(Invalid(Code.INVALID_FIELD, name, f"must be a non-empty string, got {brief(value)}"))
    else:
        return value
    return None


def _check_solution(item: dict, problems: list[Invalid]) -> None:
    solution = item.get("solution")
    if isinstance(solution, str):
        problems.extend(box_problems(solution, "solution"))


def box_problems(solution: str, field_name: str) -> list[Invalid]:
    """Boxes in a detection solution (``[{'Position': [x1, y1, x2, y2], 'Confidence': 1}, ...]``)
    that are not four numbers. Solutions that are not such a list (class names, grounding) pass."""
    found = _ANSWER.search(solution)
    body = (found.group(1) if found else solution).strip()
    if not body.startswith("[") or len(body) > _MAX_SOLUTION_PARSE:
        return []
    boxes = _literal(body)
    if not isinstance(boxes, list):
        return []
    problems = []
    for index, entry in enumerate(boxes, start=1):
        if not isinstance(entry, dict):
            continue
        for key, box in entry.items():
            if isinstance(key, str) and key.lower() in _BOX_KEYS and not _is_box(box):
                problems.append(
                    Invalid(Code.BOX_ARITY, field_name, f"box {index} ({key!r}: {brief(box)}) is not 4 numbers "
                            "[x1, y1, x2, y2]")
                )
    return problems


def _literal(text: str):
    # The paper's solutions are Python reprs (single quotes); JSON (true/null) is the other common form.
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _is_box(box) -> bool:
    # Finite, too: the solution is Python text, where 1e999 reads back as inf and IoU against it is NaN.
    return (
        isinstance(box, (list, tuple))
        and len(box) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)
    )


def brief(value, limit: int = 60) -> str:
    """A repr short enough for a problem message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Candidate:
    """A row on its way to the decoder: its problems so far and the image still to check."""

    line: int | None
    problems: list  # list[Problem]
    spec: RowSpec | None = None
    # Encoded image bytes, or a data URL left for a decode worker to base64-decode.
    image: bytes | str | None = None
    in_archive: bool = False
    # False for notices that are not rows (an unsafe archive member, the row-count cut-off).
    is_row: bool = True


def to_candidate(line: int, spec: RowSpec, resolve, *, in_archive: bool = False) -> Candidate:
    """Attach the image the row points at; ``resolve(ref, field)`` returns it or raises ``Invalid``."""
    problems = [p.at(line) for p in spec.problems]
    image = None
    if spec.image_ref is not None:
        try:
            image = resolve(spec.image_ref, spec.image_field)
        except Invalid as exc:
            problems.append(exc.at(line))
    return Candidate(line, problems, spec, image, in_archive)


def resolve_inline(ref: str | bytes, field_name: str) -> bytes | str:
    """Images for a file that is not an archive: embedded bytes or data URLs only."""
    if isinstance(ref, bytes) or ref[:5].lower() == "data:":
        return ref
    if ref.lower().startswith(("http://", "https://")):
        raise Invalid(
            Code.INVALID_FIELD, field_name,
            "remote URLs are not fetched; inline the image as a data URL, or upload an archive with it",
        )
    raise Invalid(
        Code.IMAGE_NOT_FOUND, field_name,
        f"{brief(ref)} is a file path, but a bare JSONL file carries no images; upload a .zip or .tar "
        "holding this file and the images, or inline them as data URLs",
    )
