"""The multi formula evaluator: Python arithmetic on the allowed language, nothing else."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.graders.formula import FormulaError, compile_formula

NAMES = {"iou": 0.75, "fmt": 1.0, "acc": 0.0, "conf": 0.3}

leaf = st.one_of(
    st.sampled_from(sorted(NAMES)),
    st.integers(min_value=0, max_value=1000).map(str),
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False).map(repr),
)


def _combine(children):
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"
    )
    unary = st.tuples(st.sampled_from(["-", "+"]), children).map(lambda t: f"{t[0]}{t[1]}")
    calls = st.one_of(
        children.map(lambda c: f"abs({c})"),
        st.tuples(st.sampled_from(["min", "max"]), st.lists(children, min_size=2, max_size=4)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"
        ),
    )
    return st.one_of(binary, unary, calls)


expressions = st.recursive(leaf, _combine, max_leaves=12)


@given(expressions)
def test_matches_python_arithmetic(expr):
    formula = compile_formula(expr, set(NAMES))
    try:
        expected = float(eval(expr, {"__builtins__": {}, "min": min, "max": max, "abs": abs}, NAMES))
    except (ZeroDivisionError, OverflowError) as exc:
        with pytest.raises(type(exc)):
            formula.evaluate(NAMES)
        return
    assert formula.evaluate(NAMES) == pytest.approx(expected, nan_ok=True)


FORBIDDEN = [
    "iou.real",
    "__import__('os')",
    "open('x')",
    "iou ** 2",
    "iou if fmt else acc",
    "iou > 0.5",
    "[iou][0]",
    "lambda: 1",
    "unknown + 1",
    "min(iou)",
    "abs(iou, fmt)",
    "max(iou, key=fmt)",
    "max(*[iou, fmt])",
    "'text'",
    "True + iou",
    "iou // 2",
    "iou % 2",
    "(x := 1)",
    "",
    "iou +",
    "x" * 3000,
]


@pytest.mark.parametrize("expr", FORBIDDEN)
def test_rejects_outside_the_language(expr):
    with pytest.raises(FormulaError):
        compile_formula(expr, set(NAMES))


@given(st.text(max_size=40))
def test_arbitrary_text_is_rejected_or_evaluates_to_a_number(text):
    try:
        formula = compile_formula(text, set(NAMES))
    except FormulaError:
        return
    try:
        assert isinstance(formula.evaluate(NAMES), float)
    except (ZeroDivisionError, OverflowError):
        pass


def test_names_used():
    assert compile_formula("iou + 2 * fmt", set(NAMES)).names == {"iou", "fmt"}
