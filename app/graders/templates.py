"""``{{sample.output_text}}`` / ``{{item.a.b}}`` templates, compiled once into fast renderers.

A string that is exactly one template renders to the raw value (so a reference field holding a list of
boxes stays a list); a string mixing text and templates renders to text. A missing item field at
scoring time is a flag (``missing_item_field``), not an exception escaping the grader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_SEGMENT = re.compile(r"[A-Za-z0-9_\-]+")
# What a sample carries (see app.graders.score): the completion and the image sizes.
SAMPLE_FIELDS = frozenset({"output_text", "image_size", "resized_image_size"})


class TemplateError(ValueError):
    """A template that can never render (unknown root, unknown sample field, bad path)."""


class MissingField(LookupError):
    """Raised while rendering when the sample or item lacks a referenced field."""

    def __init__(self, ref: str):
        super().__init__(ref)
        self.ref = ref


Renderer = Callable[[dict[str, Any], dict[str, Any]], Any]


def parse_refs(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """Every ``(root, path)`` a template string references; raises TemplateError on a bad one."""
    refs = []
    for match in _TEMPLATE.finditer(text):
        expr = match.group(1)
        parts = expr.split(".")
        root, path = parts[0], tuple(parts[1:])
        if root not in ("sample", "item"):
            raise TemplateError(f"template '{{{{{expr}}}}}' must start with 'sample.' or 'item.'")
        if not path or not all(_SEGMENT.fullmatch(p) for p in path):
            raise TemplateError(f"template '{{{{{expr}}}}}' needs a field path like {root}.field")
        if root == "sample" and (len(path) != 1 or path[0] not in SAMPLE_FIELDS):
            allowed = ", ".join(f"sample.{f}" for f in sorted(SAMPLE_FIELDS))
            raise TemplateError(f"template '{{{{{expr}}}}}' is not a sample field; use one of {allowed}")
        refs.append((root, path))
    return refs


def item_fields(text: str) -> set[str]:
    """Top-level item field names a template string references."""
    return {path[0] for root, path in parse_refs(text) if root == "item"}


def _getter(root: str, path: tuple[str, ...]) -> Renderer:
    ref = ".".join((root,) + path)
    first = 0 if root == "sample" else 1

    def get(sample: dict[str, Any], item: dict[str, Any]) -> Any:
        value: Any = (sample, item)[first]
        for key in path:
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                raise MissingField(ref)
        return value

    return get


def as_text(value: Any) -> str:
    """How a non-string value appears inside text: JSON, as OpenAI renders objects."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def compile_template(text: str) -> Renderer:
    """A renderer ``(sample, item) -> value``; the raw value when the string is one template."""
    parse_refs(text)  # validates
    whole = _TEMPLATE.fullmatch(text)
    if whole:
        parts = whole.group(1).split(".")
        return _getter(parts[0], tuple(parts[1:]))
    pieces: list[str | Renderer] = []
    pos = 0
    for match in _TEMPLATE.finditer(text):
        if match.start() > pos:
            pieces.append(text[pos : match.start()])
        parts = match.group(1).split(".")
        pieces.append(_getter(parts[0], tuple(parts[1:])))
        pos = match.end()
    if pos < len(text):
        pieces.append(text[pos:])
    if len(pieces) == 1 and isinstance(pieces[0], str):
        constant = pieces[0]
        return lambda sample, item: constant

    def render(sample: dict[str, Any], item: dict[str, Any]) -> str:
        return "".join(p if isinstance(p, str) else as_text(p(sample, item)) for p in pieces)

    return render
