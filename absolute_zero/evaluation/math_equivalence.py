"""Are two math answers the same? Strings, then numbers, then SymPy in a child process.

`answers_equivalent_batch(pairs)` decides each (predicted, reference) pair:
  1. equal after `normalize_answer` (most reference-vs-reference and many model answers);
  2. tuples, intervals and lists compare part by part (bare comma lists in any order);
  3. both parts plain numbers (ints, decimals, 'a/b', ``\\frac{a}{b}``, mixed numbers,
     percentages, with thousands commas): integers and fractions compare exactly, a decimal
     on either side within a relative tolerance of 1e-4 (a percentage also matches its
     value / 100);
  4. otherwise both are turned into *sanitised* expression strings (``latex_to_expression``:
     a fixed grammar of numbers, one-letter symbols, whitelisted function names and
     operators — anything else gives up) and compared by SymPy (`simplify(a - b) == 0`, or
     numerically when both are constants) in a separate interpreter with a per-pair alarm
     and a hard deadline: SymPy's parser uses `eval` and `simplify` can hang, so neither
     happens in the caller's process. The child re-checks every string against the same
     grammar before parsing it.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import subprocess
import sys
from fractions import Fraction
from typing import Optional, Sequence

from absolute_zero.evaluation.math_answers import matching_close, normalize_answer

REL_TOL = 1e-4
SYMPY_ITEM_TIMEOUT_S = 3.0
_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sympy_worker.py")
MAX_EXPRESSION_CHARS = 400

# Identifiers an expression may use (everything else that is a word makes it unparseable).
FUNCTIONS = (
    "sqrt",
    "log",
    "ln",
    "exp",
    "sin",
    "cos",
    "tan",
    "cot",
    "sec",
    "csc",
    "arcsin",
    "arccos",
    "arctan",
)
# The grammar the child re-checks: tokens separated by nothing else.
TOKEN_RE = re.compile(r"\s*(\d+(?:\.\d+)?(?:e[-+]?\d+)?|\.\d+|\*\*|[-+*/()]|[A-Za-z]+)")


# --------------------------------------------------------------------------- numbers


def _plain_number(s: str) -> Optional[Fraction]:
  s = s.strip()
  if re.fullmatch(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?", s):
    try:
      return Fraction(s)
    except (ValueError, ZeroDivisionError):
      return None
  return None


def numeric_value(s: str) -> Optional[Fraction]:
  """The exact value of a normalised plain-number answer, or None (no evaluation:
  only number, 'a/b', ``\\frac{a}{b}``, ``-\\frac{a}{b}`` and 'n%' spellings)."""
  s = s.strip().rstrip("%")
  if len(s) > 64:
    return None
  value = _plain_number(s)
  if value is not None:
    return value
  match = (
      re.fullmatch(r"([-+]?)\\frac\{([^{}]+)\}\{([^{}]+)\}", s)
      or re.fullmatch(r"([-+]?)\\frac(\d)(\d)", s)
      or re.fullmatch(r"([-+]?)\(?([-+]?[\d.]+)\)?/\(?([-+]?[\d.]+)\)?", s)
  )
  if match:
    sign, num, den = match.groups()
    a, b = _plain_number(num), _plain_number(den)
    if a is not None and b:
      return (-1 if sign == "-" else 1) * a / b
  return None


def _is_exact(s: str) -> bool:
  """An exact spelling (integers and fractions of integers): no decimal point, no
  exponent. Two exact numbers must be equal; a decimal on either side is compared within
  REL_TOL (a rounded decimal answer)."""
  return not re.search(r"[.eE]", s)


def _close(a: Fraction, b: Fraction, exact: bool) -> bool:
  if exact:
    return a == b
  return math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=1e-9) or a == b


def numbers_equal(pred: str, ref: str) -> Optional[bool]:
  """True/False when both are plain numbers, None when either is not. Exact spellings
  compare exactly (70001 is not 70000); see `_is_exact`."""
  a, b = numeric_value(pred), numeric_value(ref)
  if a is None or b is None:
    return None
  exact = _is_exact(pred) and _is_exact(ref)
  if _close(a, b, exact):
    return True
  if ref.strip().endswith("%") and not pred.strip().endswith("%") and _close(a, b / 100, exact):
    return True
  if pred.strip().endswith("%") and not ref.strip().endswith("%") and _close(a / 100, b, exact):
    return True
  return False


# --------------------------------------------------------------------------- latex -> expr


def _replace_braced_command(s: str, command: str, arity: int, build) -> Optional[str]:
  """Replaces innermost-first every ``\\command{a}{b}`` by build(a, b); None if unbalanced."""
  for _ in range(50):
    idx = s.rfind("\\" + command)
    if idx < 0:
      return s
    i = idx + len(command) + 1
    args = []
    for _ in range(arity):
      while i < len(s) and s[i] == " ":
        i += 1
      if i < len(s) and s[i] == "{":
        j = matching_close(s, i, "{", "}")
        if j is None:
          return None
        args.append(s[i + 1 : j])
        i = j + 1
      elif i < len(s) and (s[i].isalnum()):
        args.append(s[i])  # \frac12, \sqrt2
        i += 1
      else:
        return None
    s = s[:idx] + build(*args) + s[i:]
  return None


def latex_to_expression(answer: str) -> Optional[str]:
  """A normalised answer as a Python-syntax expression over a fixed grammar, or None.

  Output tokens: numbers, ``+ - * / ** ( )``, whitelisted function names and constants,
  single-letter symbols; implicit multiplication is made explicit.
  """
  s = normalize_answer(answer)
  if not s or len(s) > MAX_EXPRESSION_CHARS or "=" in s or "," in s:
    return None
  s = s.replace("%", "")
  s = re.sub(r"\\sqrt\s*\[([^\[\]]+)\]\s*\{([^{}]*)\}", r"((\2)**(1/(\1)))", s)
  s = _replace_braced_command(s, "frac", 2, lambda a, b: f"(({a})/({b}))")
  if s is None:
    return None
  s = _replace_braced_command(s, "sqrt", 1, lambda a: f"sqrt({a})")
  if s is None:
    return None
  replacements = {
      r"\pi": " pi ",
      r"\infty": " oo ",
      r"\cdot": "*",
      r"\times": "*",
      r"\ln": " ln ",
      r"\log": " log ",
      r"\exp": " exp ",
      r"\sin": " sin ",
      r"\cos": " cos ",
      r"\tan": " tan ",
      r"\div": "/",
  }
  for old, new in replacements.items():
    s = s.replace(old, new)
  if "\\" in s:
    return None
  s = s.replace("{", "(").replace("}", ")").replace("[", "(").replace("]", ")")
  s = s.replace("^", "**")
  tokens = []
  pos = 0
  while pos < len(s):
    if s[pos:].strip() == "":
      break
    match = TOKEN_RE.match(s, pos)
    if not match:
      return None
    tokens.append(match.group(1))
    pos = match.end()
  out: list[str] = []
  for tok in tokens:
    if tok[0].isalpha():
      if tok in FUNCTIONS or tok in ("pi", "oo"):
        words = [tok]
      elif len(tok) <= 4 and tok.isalpha():
        words = list(tok)  # "xy" -> x*y; "ab" -> a*b
      else:
        return None
      for w in words:
        w = {"e": "E", "i": "I", "ln": "log"}.get(w, w)
        if out and _ends_operand(out[-1]):
          out.append("*")
        out.append(w)
    elif tok == "(":
      if out and _ends_operand(out[-1]) and out[-1] not in FUNCTIONS + ("log",):
        out.append("*")
      out.append(tok)
    elif tok[0].isdigit() or tok[0] == ".":
      if out and _ends_operand(out[-1]):
        out.append("*")
      out.append(tok)
    else:
      out.append(tok)
  if not out:
    return None
  if out.count("(") != out.count(")"):
    return None
  return " ".join(out)


def _ends_operand(tok: str) -> bool:
  return (
      tok == ")" or tok[0].isdigit() or tok[0] == "." or (tok[0].isalpha() and tok not in FUNCTIONS)
  )


# --------------------------------------------------------------------------- structure

_OPEN_CLOSE = {"(": ")", "[": "]", "\\{": "\\}"}


def _split_top_level(s: str) -> list[str]:
  parts, depth, start = [], 0, 0
  for i, ch in enumerate(s):
    if ch in "([{":
      depth += 1
    elif ch in ")]}":
      depth -= 1
    elif ch == "," and depth == 0:
      parts.append(s[start:i])
      start = i + 1
  parts.append(s[start:])
  return [p.strip() for p in parts]


def _structure(s: str) -> tuple[str, list[str]]:
  """('interval'|'tuple'|'list'|'atom', parts): brackets + top-level commas."""
  if "\\cup" in s:
    return "union", [p.strip() for p in s.split("\\cup")]
  if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and _balanced_inside(s):
    inner = _split_top_level(s[1:-1])
    if len(inner) > 1:
      kind = "tuple" if (s[0], s[-1]) == ("(", ")") else "interval"
      return f"{kind}{s[0]}{s[-1]}", inner
  if s.startswith("\\{") and s.endswith("\\}"):
    return "list", _split_top_level(s[2:-2])
  parts = _split_top_level(s)
  if len(parts) > 1:
    return "list", parts
  return "atom", [s]


def _balanced_inside(s: str) -> bool:
  depth = 0
  for i, ch in enumerate(s):
    depth += ch in "([{"
    depth -= ch in ")]}"
    if depth == 0 and i < len(s) - 1:
      return False
  return depth == 0


# --------------------------------------------------------------------------- deciding


class _Pending:
  """Atom pairs that need SymPy, shared across a batch."""

  def __init__(self):
    self.pairs: list[tuple[str, str]] = []
    self.index: dict[tuple[str, str], int] = {}

  def add(self, a: str, b: str) -> int:
    key = (a, b)
    if key not in self.index:
      self.index[key] = len(self.pairs)
      self.pairs.append(key)
    return self.index[key]


def _atom_plan(pred: str, ref: str, pending: _Pending):
  """True/False, or ('sympy', index) for an atom pair."""
  if pred == ref:
    return True
  numeric = numbers_equal(pred, ref)
  if numeric is not None:
    return numeric
  a, b = latex_to_expression(pred), latex_to_expression(ref)
  if a is None or b is None:
    return False
  if a == b:
    return True
  return ("sympy", pending.add(a, b))


def _plan(pred: str, ref: str, pending: _Pending):
  """A decision tree: bool, ('sympy', i), ('all', [plans]) or ('any', [plans])."""
  if pred == ref:
    return True
  kind_p, parts_p = _structure(pred)
  kind_r, parts_r = _structure(ref)
  if kind_r == "atom" and kind_p == "atom":
    return _atom_plan(pred, ref, pending)
  if len(parts_p) != len(parts_r):
    return False
  if kind_p != kind_r and not {kind_p, kind_r} <= {"list", "tuple()"}:
    return False
  if kind_r == "list" and kind_p == "list" and len(parts_r) <= 6:
    options = [
        ("all", [_atom_plan(p, r, pending) for p, r in zip(perm, parts_r)])
        for perm in itertools.permutations(parts_p)
    ]
    return ("any", options)
  return (
      "all",
      [
          _plan(p, r, pending)
          if _structure(p)[0] != "atom" or _structure(r)[0] != "atom"
          else _atom_plan(p, r, pending)
          for p, r in zip(parts_p, parts_r)
      ],
  )


def _resolve(plan, verdicts: Sequence[bool]) -> bool:
  if isinstance(plan, bool):
    return plan
  tag, body = plan
  if tag == "sympy":
    return verdicts[body]
  if tag == "all":
    return all(_resolve(p, verdicts) for p in body)
  return any(_resolve(p, verdicts) for p in body)


def sympy_equal_batch(
    pairs: Sequence[tuple[str, str]], *, item_timeout_s: float = SYMPY_ITEM_TIMEOUT_S
) -> list[bool]:
  """SymPy verdicts for sanitised expression pairs, computed in a child interpreter.

  A pair that times out, fails to parse, or is lost when the child is killed at the batch
  deadline counts as not equal.
  """
  if not pairs:
    return []
  payload = json.dumps([list(p) for p in pairs])
  deadline = 30.0 + item_timeout_s * 1.5 * len(pairs)
  env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
  try:
    proc = subprocess.run(
        [sys.executable, "-s", _WORKER, str(item_timeout_s)],
        input=payload,
        capture_output=True,
        text=True,
        timeout=deadline,
        env=env,
        cwd="/",
    )
    lines = proc.stdout.splitlines()
  except subprocess.TimeoutExpired as exc:
    out = exc.stdout or ""
    lines = (out.decode() if isinstance(out, bytes) else out).splitlines()
  verdicts = [False] * len(pairs)
  for line in lines:
    try:
      index, equal = json.loads(line)
    except (ValueError, TypeError):
      continue
    if isinstance(index, int) and 0 <= index < len(pairs):
      verdicts[index] = equal is True
  return verdicts


def answers_equivalent_batch(
    pairs: Sequence[tuple[Optional[str], str]], *, item_timeout_s: float = SYMPY_ITEM_TIMEOUT_S
) -> list[bool]:
  """For each (predicted, reference): the same answer? A None prediction is never right."""
  pending = _Pending()
  plans = []
  for pred, ref in pairs:
    if pred is None or not str(pred).strip():
      plans.append(False)
      continue
    plans.append(_plan(normalize_answer(pred), normalize_answer(ref), pending))
  verdicts = sympy_equal_batch(pending.pairs, item_timeout_s=item_timeout_s)
  return [_resolve(plan, verdicts) for plan in plans]


def any_reference_matches(pairs: Sequence[tuple[Optional[str], Sequence[str]]]) -> list[bool]:
  """For items with several accepted references (OlympiadBench): any one matches."""
  flat, owner = [], []
  for i, (pred, refs) in enumerate(pairs):
    for ref in refs:
      flat.append((pred, ref))
      owner.append(i)
  verdicts = answers_equivalent_batch(flat)
  out = [False] * len(pairs)
  for i, ok in zip(owner, verdicts):
    out[i] = out[i] or ok
  return out
