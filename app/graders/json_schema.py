"""A small JSON Schema subset for the ``json_schema`` grader (no dependency on ``jsonschema``).

Supported keywords: type, enum, const, properties, required, additionalProperties, items,
minItems, maxItems, minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength, maxLength,
pattern, anyOf, allOf; annotations ($schema, $id, title, description, default, examples) are
ignored. Any other keyword is rejected at validation, so a schema never silently checks less than
its author believes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_ANNOTATIONS = {"$schema", "$id", "title", "description", "default", "examples"}
_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
_NUMBER_KEYS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
_COUNT_KEYS = {"minItems", "maxItems", "minLength", "maxLength"}
KEYWORDS = (
    {"type", "enum", "const", "properties", "required", "additionalProperties", "items", "pattern",
     "anyOf", "allOf"}
    | _NUMBER_KEYS | _COUNT_KEYS | _ANNOTATIONS
)


class SchemaError(ValueError):
    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_schema(schema: Any, path: str = "") -> None:
    """Raise SchemaError naming the first unsupported or malformed part (path is dotted)."""
    if not isinstance(schema, dict):
        raise SchemaError(path, "a schema must be an object")

    def at(key: str) -> str:
        return f"{path}.{key}" if path else key

    for key, value in schema.items():
        if key not in KEYWORDS:
            raise SchemaError(at(key), f"unsupported keyword '{key}'")
        if key == "type":
            names = value if isinstance(value, list) else [value]
            if not names or not all(isinstance(n, str) and n in _TYPES for n in names):
                raise SchemaError(at(key), f"type must be one of {sorted(_TYPES)}")
        elif key == "enum" and not isinstance(value, list):
            raise SchemaError(at(key), "enum must be a list")
        elif key == "properties":
            if not isinstance(value, dict):
                raise SchemaError(at(key), "properties must be an object")
            for name, sub in value.items():
                check_schema(sub, f"{at(key)}.{name}")
        elif key == "required" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise SchemaError(at(key), "required must be a list of strings")
        elif key == "additionalProperties" and not isinstance(value, bool):
            check_schema(value, at(key))
        elif key == "items":
            check_schema(value, at(key))
        elif key in ("anyOf", "allOf"):
            if not isinstance(value, list) or not value:
                raise SchemaError(at(key), f"{key} must be a non-empty list of schemas")
            for i, sub in enumerate(value):
                check_schema(sub, f"{at(key)}.{i}")
        elif key in _NUMBER_KEYS and not _is_num(value):
            raise SchemaError(at(key), f"{key} must be a number")
        elif key in _COUNT_KEYS and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            raise SchemaError(at(key), f"{key} must be a non-negative integer")
        elif key == "pattern":
            try:
                re.compile(value)
            except (re.error, TypeError) as exc:
                raise SchemaError(at(key), f"pattern is not a valid regex: {exc}") from None


def _type_ok(value: Any, name: str) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "number": _is_num,
        "integer": lambda v: _is_num(v) and float(v).is_integer(),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    return checks[name](value)


def conforms(value: Any, schema: dict[str, Any]) -> bool:
    """Whether ``value`` satisfies a schema that passed :func:`check_schema`."""
    t = schema.get("type")
    if t is not None and not any(_type_ok(value, n) for n in (t if isinstance(t, list) else [t])):
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "const" in schema and value != schema["const"]:
        return False
    if _is_num(value):
        if "minimum" in schema and value < schema["minimum"]:
            return False
        if "maximum" in schema and value > schema["maximum"]:
            return False
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return False
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            return False
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            return False
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            return False
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            return False
        if "items" in schema and not all(conforms(v, schema["items"]) for v in value):
            return False
    if isinstance(value, dict):
        if any(k not in value for k in schema.get("required", ())):
            return False
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                if not conforms(v, props[k]):
                    return False
            elif extra is False or (isinstance(extra, dict) and not conforms(v, extra)):
                return False
    if "anyOf" in schema and not any(conforms(value, s) for s in schema["anyOf"]):
        return False
    if "allOf" in schema and not all(conforms(value, s) for s in schema["allOf"]):
        return False
    return True
