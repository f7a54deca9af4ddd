"""Parse model-written Python literals without executing code, and compare them.

Everything here works on plain data: the strings come from a model or from a sandboxed
child's `repr`, and they are turned into values by walking the AST (like
`ast.literal_eval`), with size caps so hostile text cannot exhaust memory or time.
"""

from __future__ import annotations

import ast
import threading
import math
from typing import Any

MAX_LITERAL_CHARS = 200_000


class LiteralError(ValueError):
  """Text that is not a (safe, bounded) Python literal."""


_NAMES = {"None": None, "True": True, "False": False, "inf": math.inf, "nan": math.nan}


def _value(node: ast.AST) -> Any:
  if isinstance(node, ast.Constant):
    if node.value is Ellipsis:
      raise LiteralError("Ellipsis is not a literal value here")
    return node.value
  if isinstance(node, ast.Tuple):
    return tuple(_value(e) for e in node.elts)
  if isinstance(node, ast.List):
    return [_value(e) for e in node.elts]
  if isinstance(node, ast.Set):
    return {_value(e) for e in node.elts}
  if isinstance(node, ast.Dict):
    if any(k is None for k in node.keys):
      raise LiteralError("dict unpacking is not a literal")
    return {_value(k): _value(v) for k, v in zip(node.keys, node.values)}
  if isinstance(node, ast.Name) and node.id in _NAMES:
    return _NAMES[node.id]
  if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
    operand = _value(node.operand)
    if type(operand) in (int, float, complex):
      return -operand if isinstance(node.op, ast.USub) else +operand
  if (
      isinstance(node, ast.BinOp)
      and isinstance(node.op, (ast.Add, ast.Sub))
      and isinstance(node.right, ast.Constant)
      and type(node.right.value) is complex
  ):
    left = _value(node.left)
    if type(left) in (int, float):
      return left + node.right.value if isinstance(node.op, ast.Add) else left - node.right.value
  if (
      isinstance(node, ast.Call)
      and isinstance(node.func, ast.Name)
      and node.func.id in ("set", "frozenset", "tuple", "list", "dict")
      and not node.keywords
      and len(node.args) <= 1
  ):
    ctor = {"set": set, "frozenset": frozenset, "tuple": tuple, "list": list, "dict": dict}
    if not node.args:
      return ctor[node.func.id]()
    arg = _value(node.args[0])
    if isinstance(arg, (list, tuple, set, frozenset)) or (
        node.func.id == "dict" and isinstance(arg, dict)
    ):
      return ctor[node.func.id](arg)
  raise LiteralError(f"not a literal: {type(node).__name__}")


# CPython 3.11's AST converter keeps its recursion count per interpreter and leaves it off
# after a failed conversion (python/cpython#106905); under threads a later `ast.parse` then
# raises "SystemError: AST constructor recursion depth mismatch" for a valid source. The
# self-play loop parses on two threads (the overlapped grading lane), and model-written
# code often fails conversion (nesting), so every parse of untrusted text goes through
# `parse_untrusted`: one parse at a time, and that spurious error retried once.
_PARSE_LOCK = threading.Lock()
_ast_parse = ast.parse  # the parser itself (a name of this module, so tests can stand in)


def parse_untrusted(text: str, mode: str = "exec") -> ast.AST:
  """`ast.parse(text, mode=mode)` for untrusted text, safe to call from several threads.

  Raises what `ast.parse` raises (SyntaxError, ValueError, RecursionError, MemoryError),
  and RecursionError where CPython's spurious "AST constructor recursion depth mismatch"
  SystemError comes back on the retry too.
  """
  with _PARSE_LOCK:
    for attempt in range(2):
      try:
        return _ast_parse(text, mode=mode)
      except SystemError as exc:
        if "recursion depth mismatch" not in str(exc):
          raise
        if attempt:
          raise RecursionError(f"parser state: {exc}") from None
  raise AssertionError("unreachable")


def _parse(text: str, mode: str) -> ast.AST:
  if not isinstance(text, str):
    raise LiteralError(f"expected str, got {type(text).__name__}")
  if len(text) > MAX_LITERAL_CHARS:
    raise LiteralError(f"literal longer than {MAX_LITERAL_CHARS} characters")
  try:
    return parse_untrusted(text.strip(), mode)
  except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
    raise LiteralError(f"cannot parse: {exc}") from None


def parse_literal(text: str) -> Any:
  """The value of one literal expression, e.g. "[1, (2, 'a')]" or "{1, 2}"."""
  tree = _parse(text, "eval")
  try:
    return _value(tree.body)
  except (RecursionError, MemoryError, TypeError) as exc:  # unhashable set items, depth
    raise LiteralError(f"bad literal: {exc}") from None


def parse_arguments(text: str) -> tuple[tuple, dict]:
  """Positional and keyword arguments from an argument list like "[1, 2], 'ab', k=3"."""
  if not isinstance(text, str):
    raise LiteralError(f"expected str, got {type(text).__name__}")
  tree = _parse(f"f({text.strip()}\n)", "eval")
  call = tree.body
  if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.func.id != "f":
    raise LiteralError("not an argument list")
  try:
    args = tuple(_value(a) for a in call.args)
    kwargs = {}
    for kw in call.keywords:
      if kw.arg is None:
        raise LiteralError("**kwargs unpacking is not a literal")
      kwargs[kw.arg] = _value(kw.value)
  except (RecursionError, MemoryError, TypeError) as exc:
    raise LiteralError(f"bad literal: {exc}") from None
  return args, kwargs


def canonical_call(function: str, text: str) -> str:
  """Python source calling `function` on the parsed arguments, built only from reprs.

  The result holds nothing but reprs of plain literal values, so evaluating it inside the
  sandbox runs no model-written code.
  """
  args, kwargs = parse_arguments(text)
  parts = [to_source(a) for a in args] + [f"{k}={to_source(v)}" for k, v in kwargs.items()]
  return f"{function}({', '.join(parts)})"


def to_source(value: Any) -> str:
  """Python source that rebuilds a plain literal value (also inf and nan floats)."""
  t = type(value)
  if t is float and value != value:
    return "(1e999-1e999)"
  if t is float and value in (math.inf, -math.inf):
    return "1e999" if value > 0 else "-1e999"
  if t is complex:
    return f"complex({to_source(value.real)}, {to_source(value.imag)})"
  if t is list:
    return "[" + ", ".join(to_source(v) for v in value) + "]"
  if t is tuple:
    return "(" + ", ".join(to_source(v) for v in value) + ("," if len(value) == 1 else "") + ")"
  if t is set:
    return "{" + ", ".join(to_source(v) for v in value) + "}" if value else "set()"
  if t is frozenset:
    return "frozenset(" + to_source(set(value)) + ")"
  if t is dict:
    return "{" + ", ".join(f"{to_source(k)}: {to_source(v)}" for k, v in value.items()) + "}"
  if t in (int, float, str, bytes, bool) or value is None:
    return repr(value)
  raise LiteralError(f"not a plain literal value: {t.__name__}")


def values_equal(a: Any, b: Any) -> bool:
  """Python value equality of plain data (so 1 == 1.0 and {1, 2} == {2, 1})."""
  try:
    return bool(a == b)
  except (RecursionError, MemoryError, TypeError, ValueError):
    return False


def literals_equal(expected: str, answer: str) -> bool:
  """Whether two literal texts denote equal values; falls back to exact text equality
  (after stripping) when either side is not a parseable literal, e.g. `<object at ...>`.
  """
  try:
    return values_equal(parse_literal(expected), parse_literal(answer))
  except LiteralError:
    return (
        isinstance(expected, str) and isinstance(answer, str) and expected.strip() == answer.strip()
    )


def _canonical(value: Any) -> Any:
  """A hashable form of a plain value that is equal exactly when the values are the same
  data: same types throughout (1, 1.0 and True differ), floats by repr (nan is nan,
  0.0 is not -0.0), sets and dicts without order (their iteration order follows the
  string-hash seed; their value does not)."""
  t = type(value)
  if t in (float, complex):
    return t.__name__, repr(value)
  if t in (list, tuple):
    return t.__name__, tuple(_canonical(v) for v in value)
  if t in (set, frozenset):
    return t.__name__, frozenset(_canonical(v) for v in value)
  if t is dict:
    return "dict", frozenset((_canonical(k), _canonical(v)) for k, v in value.items())
  return t.__name__, value


def same_literal(first: str, second: str) -> bool:
  """Whether two reprs of results denote the same value (the determinism check).

  Identical texts are the same; otherwise both must parse as literals (`parse_literal`)
  and be the same data by `_canonical`: a set, frozenset or dict printed in a different
  order is the same value, while a list or string whose order changed, or a value whose
  type changed, is not. Texts that are not literals (`<object at 0x...>`) are compared as
  text only. Never raises.
  """
  if not isinstance(first, str) or not isinstance(second, str):
    return False
  if first == second:
    return True
  try:
    return _canonical(parse_literal(first)) == _canonical(parse_literal(second))
  except (LiteralError, RecursionError, MemoryError, TypeError):
    return False
