"""A safe evaluator for ``multi.calculate_output`` — never ``eval``.

The formula is parsed with :mod:`ast` and every node checked against a whitelist: numbers, the
sub-grader names, ``+ - * /``, unary ``+ -``, parentheses, and calls of ``min``/``max``/``abs``.
Anything else (attributes, subscripts, ``**``, comparisons, lambdas, other names or calls) is
rejected when the grader is validated. The checked tree is compiled into nested closures, so scoring
walks no AST.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping

MAX_LENGTH = 2000
_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCTIONS: dict[str, tuple[Callable[..., float], int]] = {  # name → (function, min arity)
    "min": (min, 2), "max": (max, 2), "abs": (abs, 1)}

Env = Mapping[str, float]


class FormulaError(ValueError):
    """The formula is not in the allowed language; the message says which part."""


class Formula:
    """A checked formula: ``names`` it reads, and ``evaluate(env) -> float``.

    ``evaluate`` raises ZeroDivisionError/OverflowError like Python arithmetic; the caller turns
    those (and a non-finite result) into the ``invalid_formula_result`` flag.
    """

    def __init__(self, source: str, names: frozenset[str], fn: Callable[[Env], float]):
        self.source = source
        self.names = names
        self._fn = fn

    def evaluate(self, env: Env) -> float:
        return float(self._fn(env))


def compile_formula(source: str, allowed_names: set[str] | frozenset[str]) -> Formula:
    if not isinstance(source, str) or not source.strip():
        raise FormulaError("calculate_output must be a non-empty formula")
    if len(source) > MAX_LENGTH:
        raise FormulaError(f"calculate_output is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise FormulaError(f"calculate_output is not a valid formula: {exc}") from None
    used: set[str] = set()
    try:
        fn = _build(tree.body, frozenset(allowed_names), used)
    except RecursionError:
        raise FormulaError("calculate_output is nested too deeply") from None
    return Formula(source, frozenset(used), fn)


def _build(node: ast.AST, allowed: frozenset[str], used: set[str]) -> Callable[[Env], float]:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FormulaError(f"only numeric constants are allowed, not {value!r}")
        return lambda env: value
    if isinstance(node, ast.Name):
        name = node.id
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise FormulaError(f"unknown name '{name}' (sub-graders: {known})")
        used.add(name)
        return lambda env: env[name]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op = _BINARY[type(node.op)]
        left, right = _build(node.left, allowed, used), _build(node.right, allowed, used)
        return lambda env: op(left(env), right(env))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        op1 = _UNARY[type(node.op)]
        operand = _build(node.operand, allowed, used)
        return lambda env: op1(operand(env))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            raise FormulaError("only min(), max() and abs() may be called")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise FormulaError(f"{node.func.id}() takes plain positional arguments")
        func, arity = _FUNCTIONS[node.func.id]
        n = len(node.args)
        if n < arity or (node.func.id == "abs" and n != 1):
            want = "exactly 1 argument" if node.func.id == "abs" else "at least 2 arguments"
            raise FormulaError(f"{node.func.id}() takes {want}")
        args = [_build(a, allowed, used) for a in node.args]
        if func is abs:
            arg = args[0]
            return lambda env: abs(arg(env))
        return lambda env: func(*[a(env) for a in args])
    what = type(node).__name__
    if isinstance(node, ast.BinOp):
        what = type(node.op).__name__
    raise FormulaError(f"'{what}' is not allowed in calculate_output (use + - * / min max abs)")


def is_valid_result(value: float) -> bool:
    return math.isfinite(value)
