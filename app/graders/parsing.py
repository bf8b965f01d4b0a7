"""Tolerant parsing of the paper's answers: the ``<answer>`` text, box lists, single boxes, points.

Tolerated (VISUAL_RFT.md): single or double quotes, ``[[``/``]]`` around lists or boxes, any key
case, ``Position``/``bbox_2d``/``bbox``/``box`` box keys, ``Confidence``/``score`` keys, and a
truncated completion — a missing ``</answer>`` or a cut-off trailing element keeps the complete
elements before it. Not tolerated: a *complete* element without a four-number box (a parse error, so
a flag with reward 0, never a silent 0 that looks like a real score).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

# A box: (x1, y1, x2, y2, confidence or None), in the coordinates the text was written in.
Box = tuple[float, float, float, float, "float | None"]

# Unambiguous (digits, then optionally "." and digits): no catastrophic backtracking on long digit runs.
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_OBJECT = re.compile(r"\{[^{}]*\}")
_BOX_IN_OBJECT = re.compile(
    r"""["']?(?:position|bbox_2d|bbox|box)["']?\s*:\s*\[+\s*"""
    rf"({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]",
    re.I,
)
_CONF_IN_OBJECT = re.compile(rf"""["']?(?:confidence|score)["']?\s*:\s*["']?({_NUM})""", re.I)
# The answer exactly as the paper's prompt spells it — the common case, parsed in one regex pass.
# Bounded digit runs: no float overflow is possible here.
_SHORT_NUM = r"-?\d{1,9}(?:\.\d{1,9})?"
_CANONICAL = re.compile(
    rf"\{{'Position': \[({_SHORT_NUM}), ({_SHORT_NUM}), ({_SHORT_NUM}), ({_SHORT_NUM})\], "
    rf"'Confidence': ({_SHORT_NUM})\}}"
)
_BARE_BOX = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
# One box written as [x1,y1,x2,y2], (x1,y1,x2,y2), (x1,y1),(x2,y2) or [x1,y1],[x2,y2] (LISA style).
_ONE_BOX = re.compile(
    rf"[\[(]\s*({_NUM})\s*,\s*({_NUM})\s*(?:[\])]\s*,\s*[\[(]|,)\s*({_NUM})\s*,\s*({_NUM})\s*[\])]"
)
_POINT = re.compile(rf"[\[(]\s*({_NUM})\s*,\s*({_NUM})\s*[\])]")
_INT = re.compile(r"\s*\d{1,18}\s*")  # longer digit runs are no count (and int() refuses > 4300)
_NO_OBJECTS = frozenset({"no objects", "no object", "[]", "[[]]"})
MAX_BOXES = 500  # bounds the O(n·m) matching on hostile input
# No image frame has coordinates near this; beyond it box areas overflow to inf and IoU to NaN.
MAX_MAGNITUDE = 1e12
CACHED_TEXT_CHARS = 4096  # longer texts are parsed uncached, so the caches stay small


_T = TypeVar("_T")


def _short_text_cache(fn: Callable[[str], _T]) -> Callable[[str], _T]:
    """lru_cache for the short texts that repeat (a prompt's ground truth, scored G times)."""
    cached = lru_cache(maxsize=8192)(fn)

    def call(text: str) -> _T:
        return cached(text) if len(text) <= CACHED_TEXT_CHARS else fn(text)

    call.__wrapped__ = fn  # type: ignore[attr-defined]  # what functools.wraps would set
    call.__doc__ = fn.__doc__
    return call


class ParseError(ValueError):
    """Text that does not hold the expected answer; becomes a flag with reward 0."""


def answer_text(text: str, *, allow_unterminated: bool = False) -> str | None:
    """The first ``<answer>…</answer>`` body, stripped; None when there is none.

    Same result as ``re.search(r"<answer>(.*?)</answer>", text, re.S)``, with ``str.find`` because
    it runs on every completion. ``allow_unterminated`` reads to the end when ``</answer>`` is
    missing — a completion cut off by the token limit (box lists keep their complete elements;
    labels must be terminated).
    """
    start = text.find("<answer>")
    if start == -1:
        return None
    start += len("<answer>")
    end = text.find("</answer>", start)
    if end == -1:
        return text[start:].strip() if allow_unterminated else None
    return text[start:end].strip()


@_short_text_cache
def reference_text(text: str) -> str:
    """A ground-truth string: the ``<answer>`` body when tagged (the paper's ``solution``), else all."""
    body = answer_text(text)
    return text.strip() if body is None else body


def _number(s: str) -> float:
    value = float(s)
    if not abs(value) <= MAX_MAGNITUDE:  # also catches inf and nan
        raise ParseError(f"number {s[:40]!r} is not a coordinate (|x| > {MAX_MAGNITUDE:g})")
    return value


def is_no_objects(text: str) -> bool:
    return text.strip().strip("'\"").strip().lower() in _NO_OBJECTS


@_short_text_cache
def parse_box_list(text: str) -> tuple[Box, ...]:
    """Boxes of a detection answer; ``()`` for 'No Objects'. Exact duplicate boxes are dropped."""
    if is_no_objects(text):
        return ()
    canonical = _CANONICAL.findall(text)
    # Every "}" closing a canonical element means no element needs a slower path.
    if canonical and len(canonical) == text.count("}"):
        return _unique([(float(x1), float(y1), float(x2), float(y2), float(c)) for x1, y1, x2, y2, c in canonical])
    from_json = _boxes_from_json(text)
    if from_json is not None:
        return _unique(from_json)
    boxes: list[Box] = []
    objects = _OBJECT.findall(text)
    if objects:
        for obj in objects:
            box = _BOX_IN_OBJECT.search(obj)
            if box is None:
                raise ParseError(f"element {obj[:80]!r} has no [x1, y1, x2, y2] box")
            conf = _CONF_IN_OBJECT.search(obj)
            x1, y1, x2, y2 = (_number(g) for g in box.groups())
            boxes.append((x1, y1, x2, y2, _number(conf.group(1)) if conf else None))
    else:
        for m in _BARE_BOX.finditer(text):
            x1, y1, x2, y2 = (_number(g) for g in m.groups())
            boxes.append((x1, y1, x2, y2, None))
    if not boxes:
        raise ParseError("no boxes found (expected a list of {'Position': [...], ...} or 'No Objects')")
    return _unique(boxes)


_BOX_KEYS = ("position", "bbox_2d", "bbox", "box")
_CONF_KEYS = ("confidence", "score")
_NUMERIC = frozenset({int, float})  # type() test: excludes bool, and is the fastest check


def _boxes_from_json(text: str) -> list[Box] | None:
    """The fast path: a well-formed list (quotes swapped to JSON's) of ``{box, confidence}`` dicts.

    None whenever anything is unusual — the tolerant regex path then decides.
    """
    if not text.startswith("["):
        return None
    try:
        data = json.loads(text.replace("'", '"'))
    except ValueError:
        return None
    if len(data) == 1 and type(data[0]) is list:
        data = data[0]  # [[ {...}, ... ]]
    boxes: list[Box] = []
    for element in data:
        if type(element) is not dict:
            return None
        box, conf = element.get("Position"), element.get("Confidence")
        if box is None or len(element) != 2 or conf is None:
            box = conf = None
            for key, value in element.items():
                k = key.lower()
                if k in _BOX_KEYS:
                    box = value
                elif k in _CONF_KEYS:
                    conf = value
        if type(box) is list and len(box) == 1 and type(box[0]) is list:
            box = box[0]
        if type(box) is not list or len(box) != 4:
            return None
        x1, y1, x2, y2 = box
        if (type(x1) not in _NUMERIC or type(y1) not in _NUMERIC or type(x2) not in _NUMERIC
                or type(y2) not in _NUMERIC or (conf is not None and type(conf) not in _NUMERIC)):
            return None
        try:
            if not max(abs(x1), abs(y1), abs(x2), abs(y2), abs(conf or 0)) <= MAX_MAGNITUDE:
                return None  # the regex path names the bad number
        except OverflowError:  # an integer too large for a float
            return None
        boxes.append((float(x1), float(y1), float(x2), float(y2), None if conf is None else float(conf)))
    return boxes or None


def _unique(boxes: list[Box]) -> tuple[Box, ...]:
    """Drop exact duplicate boxes (the first, in the model's order, stays)."""
    if len(boxes) > MAX_BOXES:
        raise ParseError(f"more than {MAX_BOXES} boxes")
    keys = [b[:4] for b in boxes]
    if len(set(keys)) == len(keys):
        return tuple(boxes)
    seen: set[tuple[float, ...]] = set()
    unique = []
    for box in boxes:
        if box[:4] not in seen:
            seen.add(box[:4])
            unique.append(box)
    return tuple(unique)


@_short_text_cache
def parse_one_box(text: str) -> tuple[float, float, float, float]:
    """The first box of a grounding answer, in any of the accepted spellings."""
    if _OBJECT.search(text):
        boxes = parse_box_list(text)
        if boxes:
            return boxes[0][:4]
    match = _ONE_BOX.search(text)
    if match is None:
        raise ParseError("no box found (expected [x1, y1, x2, y2] or (x1,y1),(x2,y2))")
    return tuple(_number(g) for g in match.groups())  # type: ignore[return-value]


def parse_point(text: str) -> tuple[float, float]:
    """A point answer: ``[x, y]``, ``(x, y)`` or ``{'point_2d': [x, y]}``."""
    match = _POINT.search(text)
    if match is None:
        raise ParseError("no point found (expected [x, y] or (x, y))")
    return _number(match.group(1)), _number(match.group(2))


def parse_count(text: str) -> int:
    """A count answer: an integer, 'No Objects' (0), or a box list (its number of distinct boxes)."""
    if _INT.fullmatch(text):
        return int(text)
    return len(parse_box_list(text))
