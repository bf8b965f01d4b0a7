"""Strict JSON for dataset lines, and the checks every row's values pass whatever file they came from.

Python's ``json`` accepts ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON), turns ``1e400`` into
``inf``, and keeps the last of two equal keys without a word. A NaN reference value poisons a
reward and fails to render in any strict JSON response later; a silently dropped duplicate key
trains on a value the user did not mean. A ``\\ud800`` escape parses to a lone surrogate, which no
UTF-8 encoder takes: stored, it fails every response that renders it. So each such value is a
problem naming its line and field, like any other invalid value. Parquet has no JSON layer, but its
float columns carry NaN and inf just the same, so the value check is shared.
"""

from __future__ import annotations

import json
import math

from app.datasets.report import Code, Invalid

# Integers a reference field can hold that every consumer (Postgres BIGINT, JavaScript's exact
# range aside, numpy int64 in the trainer) reads back unchanged.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# Python refuses to parse integers over 4,300 digits anyway (a CPU-cost guard); a number this long
# is out of range long before, so it is kept as text and reported instead of parsed.
_MAX_INT_DIGITS = 20


class _Unparsed(str):
    """A number token kept as its text because its value cannot be represented."""


class _Repeats(dict):
    """An object in which some key appeared more than once; ``repeated`` lists those keys."""

    repeated: list[str]


def loads(text: str):
    """``json.loads`` that keeps every oddity visible for ``value_problems`` to name: non-finite
    numbers stay non-finite floats (or ``_Unparsed`` text), and repeated keys mark their object."""
    return json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int,
                      object_pairs_hook=_object)


def _constant(token: str) -> float:
    return float(token)  # 'NaN', 'Infinity', '-Infinity': reported by value_problems


def _float(token: str) -> float | _Unparsed:
    value = float(token)
    return value if math.isfinite(value) else _Unparsed(token)


def _int(token: str) -> int | _Unparsed:
    digits = len(token.lstrip("-"))
    return int(token) if digits <= _MAX_INT_DIGITS else _Unparsed(token)


def _object(pairs: list[tuple[str, object]]) -> dict:
    result: dict = {}
    repeated: list[str] = []
    for key, value in pairs:
        if key in result and key not in repeated:
            repeated.append(key)
        result[key] = value
    if not repeated:
        return result
    marked = _Repeats(result)
    marked.repeated = repeated
    return marked


def value_problems(obj: dict, *, skip: tuple[str, ...] = (), limit: int = 10) -> list[Invalid]:
    """Non-finite or out-of-range numbers and repeated keys anywhere in a row, each naming the
    field by its path (``solution``, ``meta.scores[2]``). At most ``limit`` per row."""
    problems: list[Invalid] = []
    stack: list[tuple[str, object]] = [(key, obj[key]) for key in reversed(list(obj)) if key not in skip]
    _repeats(obj, "", problems)
    _keys(obj, "", problems)
    while stack and len(problems) < limit:
        path, value = stack.pop()
        if isinstance(value, bool) or value is None or isinstance(value, (bytes, bytearray)):
            continue
        if isinstance(value, _Unparsed):
            problems.append(Invalid(Code.INVALID_NUMBER, path, f"number {_short(value)} is out of range; "
                                    "write it as a string if it is an identifier"))
        elif isinstance(value, str):
            if not _encodable(value):
                problems.append(_surrogate(path, "the text"))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(Invalid(Code.INVALID_NUMBER, path, f"{_name(value)} is not a number JSON allows; "
                                    "use a finite number or null"))
        elif isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
            problems.append(Invalid(Code.INVALID_NUMBER, path, f"integer {_short(str(value))} is outside the "
                                    "64-bit range; write it as a string if it is an identifier"))
        elif isinstance(value, dict):
            _repeats(value, path, problems)
            _keys(value, path, problems)
            stack.extend((f"{path}.{key}", value[key]) for key in reversed(list(value)))
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{path}[{i}]", item) for i, item in reversed(list(enumerate(value))))
    return problems[:limit]


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")  # a copy at C speed; lone surrogates are the only thing it refuses
    except UnicodeEncodeError:
        return False
    return True


def _surrogate(path: str, what: str) -> Invalid:
    return Invalid(Code.INVALID_UTF8, path, f"{what} holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape "
                   "without its pair), which is not a character; fix the escape")


def _keys(obj: dict, path: str, problems: list[Invalid]) -> None:
    for key in obj:
        if isinstance(key, str) and not _encodable(key):
            problems.append(_surrogate(f"{path}.{key}" if path else key, "the key"))


def _repeats(obj: dict, path: str, problems: list[Invalid]) -> None:
    for key in getattr(obj, "repeated", ()):
        field = f"{path}.{key}" if path else key
        problems.append(Invalid(Code.DUPLICATE_KEY, field, "appears more than once in its object; JSON "
                                "readers disagree on which value wins, so keep exactly one"))


def _name(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:20]}…({len(text):,} digits)"
