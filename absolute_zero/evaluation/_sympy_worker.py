"""Child interpreter for `math_equivalence.sympy_equal_batch` (run as a script).

Reads a JSON list of [expr_a, expr_b] from stdin and prints one JSON line per decided pair,
`[index, true|false]`, flushing each so a parent that kills it at its deadline keeps what
was decided. Every string is re-checked against the parent's token grammar before SymPy's
`parse_expr` (which uses `eval`) sees it; each pair has its own SIGALRM timeout.
"""

import json
import math
import re
import signal
import sys

TOKEN = re.compile(r"\s*(\d+(?:\.\d+)?(?:e[-+]?\d+)?|\.\d+|\*\*|[-+*/()]|[A-Za-z]+)")
NAMES = {
    "sqrt",
    "log",
    "exp",
    "sin",
    "cos",
    "tan",
    "cot",
    "sec",
    "csc",
    "asin",
    "acos",
    "atan",
    "pi",
    "oo",
    "E",
    "I",
}
RENAME = {"arcsin": "asin", "arccos": "acos", "arctan": "atan"}
REL_TOL = 1e-4
MEMORY_BYTES = 2 << 30


class _Timeout(Exception):
  pass


def _on_alarm(signum, frame):
  raise _Timeout()


def _checked(expr):
  """The expression rebuilt from grammar tokens, or None if anything else is present."""
  if not isinstance(expr, str) or len(expr) > 1000:
    return None
  out, pos = [], 0
  while pos < len(expr):
    if not expr[pos:].strip():
      break
    m = TOKEN.match(expr, pos)
    if not m:
      return None
    tok = RENAME.get(m.group(1), m.group(1))
    if tok[0].isalpha() and not (tok in NAMES or len(tok) == 1):
      return None
    out.append(tok)
    pos = m.end()
  return " ".join(out) if out else None


def main():
  timeout_s = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
  try:  # a huge power is computed in C, where the alarm cannot stop it: cap memory
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
  except (ImportError, ValueError, OSError):
    pass
  pairs = json.loads(sys.stdin.read())
  import sympy
  from sympy.parsing.sympy_parser import auto_number, auto_symbol, parse_expr

  allowed = {
      name: getattr(sympy, name)
      for name in (
          "sqrt",
          "log",
          "exp",
          "sin",
          "cos",
          "tan",
          "cot",
          "sec",
          "csc",
          "asin",
          "acos",
          "atan",
          "pi",
          "oo",
          "E",
          "I",
          "Integer",
          "Float",
          "Rational",
          "Symbol",
      )
  }
  transformations = (auto_symbol, auto_number)

  def parse(expr):
    return parse_expr(
        expr,
        local_dict={},
        global_dict=dict(allowed, __builtins__={}),
        transformations=transformations,
        evaluate=True,
    )

  signal.signal(signal.SIGALRM, _on_alarm)
  for index, (a, b) in enumerate(pairs):
    a, b = _checked(a), _checked(b)
    equal = False
    if a is not None and b is not None:
      signal.setitimer(signal.ITIMER_REAL, timeout_s)
      try:
        x, y = parse(a), parse(b)
        if x == y:
          equal = True
        elif not x.free_symbols and not y.free_symbols:
          fx, fy = complex(sympy.N(x, 30)), complex(sympy.N(y, 30))
          if all(math.isfinite(v) for v in (fx.real, fx.imag, fy.real, fy.imag)):
            equal = abs(fx - fy) <= max(1e-9, REL_TOL * max(abs(fx), abs(fy)))
          # else: an infinity (oo, zoo, nan) equals only itself (x == y above);
          # the tolerance test said oo == 0, since inf <= 1e-4 * inf.
        else:
          equal = sympy.simplify(x - y) == 0
      except BaseException:  # noqa: BLE001 - parse errors, timeouts, SymPy failures
        equal = False
      finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    print(json.dumps([index, bool(equal)]), flush=True)


if __name__ == "__main__":
  main()
