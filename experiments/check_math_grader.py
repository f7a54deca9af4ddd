"""Agreement of the builtin math grader with math-verify, on references and perturbations.

  python experiments/check_math_grader.py --output=/tmp/agreement.json
  python experiments/check_math_grader.py --benchmarks=math500 --limit=100

For every math benchmark item, completions are written from its first reference answer:
the reference itself (boxed, as `grader_checks.reference_completion` writes it) and
systematic rewrites of it whose right verdict is known by construction (`perturbations`):
inline `$...$` after "final answer is", trailing text after the box, units, fraction vs
decimal, thousands commas, mixed numbers (LaTeX and 1½), Unicode symbols for LaTeX
commands (π, √, ≤, ², ...), U+2212 minus (boxed and in running text), negation and
off-by-one (both wrong). Each completion is graded by the builtin grader
(`benchmarks.grade_math`) and by math-verify (`math_verify_grader.math_verify_batch`); the
table gives, per benchmark, the rate at which the two agree and each one's accuracy
against the constructed verdicts; the data's worked solutions (where there are any) are
graded as completions too, in their own columns (their disagreements are not listed:
OlympiadBench's prose solutions box nothing). Needs the optional `math-verify` package.
"""

from __future__ import annotations

import collections
import json
import os
import re
import sys
import time
from fractions import Fraction
from typing import Optional

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absolute_zero.evaluation import data as data_lib  # noqa: E402
from absolute_zero.evaluation.benchmarks import grade_math  # noqa: E402
from absolute_zero.evaluation.grader_checks import reference_completion  # noqa: E402
from absolute_zero.evaluation.math_verify_grader import math_verify_batch  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("benchmarks", list(data_lib.MATH_BENCHMARKS), "Math benchmarks to check.")
flags.DEFINE_string("data_dir", None, "Benchmark data folder (default as evaluate.py).")
flags.DEFINE_integer("limit", None, "First N items of each benchmark.")
flags.DEFINE_string("output", None, "Write the table, every case and disagreement as JSON.")
flags.DEFINE_integer("show", 3, "Disagreements printed per benchmark and kind.")

MINUS = "\u2212"
VULGAR = {
    Fraction(1, 2): "\u00bd",
    Fraction(1, 3): "\u2153",
    Fraction(2, 3): "\u2154",
    Fraction(1, 4): "\u00bc",
    Fraction(3, 4): "\u00be",
    Fraction(1, 8): "\u215b",
}
# LaTeX -> the Unicode symbol a model may write instead (hand-listed, not the grader's table).
UNICODE_SPELLINGS = [
    (r"\\pi(?![a-zA-Z])", "\u03c0"),
    (r"\\infty", "\u221e"),
    (r"\\leq?(?![a-zA-Z])", "\u2264"),
    (r"\\geq?(?![a-zA-Z])", "\u2265"),
    (r"\\neq?(?![a-zA-Z])", "\u2260"),
    (r"\\times", "\u00d7"),
    (r"\\cdot", "\u00b7"),
    (r"\\pm", "\u00b1"),
    (r"\\sqrt\{(\w+)\}", "\u221a(\\1)"),
    (r"\^(?:\{2\}|2(?!\d))", "\u00b2"),
    (r"\^(?:\{3\}|3(?!\d))", "\u00b3"),
]


def _value(ref: str) -> Optional[Fraction]:
  """The exact value of a plain-number reference (int, decimal, a/b, \\frac{a}{b}), else
  None. Independent of the grader's own number reader."""
  s = ref.strip().replace("\\dfrac", "\\frac").replace("$", "")
  if re.fullmatch(r"-?\d+(\.\d+)?", s):
    return Fraction(s)
  match = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", s) or re.fullmatch(r"(-?)(\d+)/(\d+)", s)
  if match and int(match.group(3)):
    value = Fraction(int(match.group(2)), int(match.group(3)))
    return -value if match.group(1) else value
  return None


def _decimal(v: Fraction) -> Optional[str]:
  """Exact decimal spelling of v, or None if it does not terminate (within 6 places)."""
  for places in range(0, 7):
    scaled = v * 10**places
    if scaled.denominator == 1:
      if places == 0:
        return str(scaled.numerator)
      sign = "-" if scaled < 0 else ""
      digits = str(abs(scaled.numerator)).rjust(places + 1, "0")
      return f"{sign}{digits[:-places]}.{digits[-places:]}"
  return None


def _latex(v: Fraction) -> str:
  """v as an integer, else a terminating decimal, else \\frac{a}{b}."""
  dec = _decimal(v)
  if dec is not None:
    return dec
  sign = "-" if v < 0 else ""
  return f"{sign}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"


def _boxed(body: str) -> str:
  return f"Working through the problem.\nThe final answer is $\\boxed{{{body}}}$."


def perturbations(ref: str) -> list[tuple[str, str, bool]]:
  """(kind, completion, right verdict) rewrites of reference `ref`."""
  out = [
      ("final_inline", f"Step by step.\nThe final answer is ${ref}$. I hope it is correct.", True),
      ("trailing_text", f"The answer is \\boxed{{{ref}}}. I put it in \\boxed as asked.", True),
  ]
  spelled = ref
  for pattern, symbol in UNICODE_SPELLINGS:
    spelled = re.sub(pattern, symbol, spelled)
  if spelled != ref:
    out.append(("unicode_symbols", _boxed(spelled), True))
  v = _value(ref)
  if v is None:
    if "-" in ref:
      out.append(("unicode_minus", _boxed(ref.replace("-", MINUS)), True))
    return out
  mag = _latex(abs(v))
  out += [
      ("units", _boxed(f"{_latex(v)}\\text{{ units}}"), True),
      ("negated", _boxed(_latex(-v)), v == 0),
      ("off_by_one", _boxed(_latex(v + 1)), False),
      ("unicode_minus", _boxed(MINUS + mag), v < 0 or v == 0),
  ]
  if _decimal(v) is not None:  # running text holds plain numbers, not LaTeX
    out.append(("unicode_minus_text", f"So the change is {MINUS}{mag} dollars.", v <= 0))
  if v.denominator == 1:
    out.append(("as_fraction", _boxed(f"\\frac{{{2 * v.numerator}}}{{2}}"), True))
    if abs(v) >= 1000:
      out.append(("thousands", _boxed(f"{v.numerator:,}".replace(",", "{,}")), True))
      out.append(("thousands_plain", f"The total is {v.numerator:,}.", True))
  else:
    dec = _decimal(v)
    frac = f"{'-' if v < 0 else ''}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"
    out.append(("as_fraction", _boxed(frac), True))
    if dec is not None:
      out.append(("as_decimal", _boxed(dec), True))
    if abs(v) > 1:
      whole, rest = divmod(abs(v.numerator), v.denominator)
      sign = "-" if v < 0 else ""
      out.append(
          ("mixed_number", _boxed(f"{sign}{whole}\\frac{{{rest}}}{{{v.denominator}}}"), True)
      )
      if Fraction(rest, v.denominator) in VULGAR:
        vulgar = VULGAR[Fraction(rest, v.denominator)]
        out.append(("mixed_unicode", _boxed(f"{sign}{whole}{vulgar}"), True))
      out.append(
          (
              "mixed_number_times",
              _boxed(f"{sign}{whole}\\cdot\\frac{{{rest}}}" f"{{{v.denominator}}}"),
              Fraction(whole * rest, v.denominator) == abs(v),
          )
      )
  return out


def cases(name: str, items) -> list[dict]:
  """Every (item, kind, completion, expected) case of one benchmark; kind 'reference' first."""
  out = []
  for item in items:
    out.append(
        {
            "id": item.id,
            "kind": "reference",
            "expected": True,
            "completion": reference_completion(name, item),
            "refs": list(item.answers),
        }
    )
    if item.solution.strip():  # the data's worked solution, as a completion
      out.append(
          {
              "id": item.id,
              "kind": "solution",
              "expected": True,
              "completion": item.solution,
              "refs": list(item.answers),
          }
      )
    for kind, completion, expected in perturbations(item.answers[0]):
      out.append(
          {
              "id": item.id,
              "kind": kind,
              "expected": expected,
              "completion": completion,
              "refs": list(item.answers),
          }
      )
  return out


def grade(name: str, items, rows: list[dict]) -> None:
  """Adds 'builtin', 'math_verify' verdicts and the extracted answers to every row."""
  by_id = {item.id: item for item in items}
  graded = grade_math([by_id[r["id"]] for r in rows], [[r["completion"]] for r in rows])
  verified = math_verify_batch([(r["completion"], r["refs"]) for r in rows])
  for row, (g,), (ok, extracted) in zip(rows, graded, verified):
    row.update(
        builtin=bool(g.correct),
        builtin_pred=g.prediction,
        math_verify=ok,
        math_verify_pred=extracted,
    )


def _rate(rows, key) -> Optional[float]:
  """Fraction of rows where key holds; None for no rows (JSON has no NaN)."""
  return sum(key(r) for r in rows) / len(rows) if rows else None


def summarise(rows: list[dict]) -> dict:
  """Agreement and accuracies for the reference, worked-solution and perturbation rows."""
  out = {}
  for part, subset in (
      ("reference", [r for r in rows if r["kind"] == "reference"]),
      ("solution", [r for r in rows if r["kind"] == "solution"]),
      ("perturbed", [r for r in rows if r["kind"] not in ("reference", "solution")]),
  ):
    out[part] = {
        "n": len(subset),
        "agreement": _rate(subset, lambda r: r["builtin"] == r["math_verify"]),
        "builtin_right": _rate(subset, lambda r: r["builtin"] == r["expected"]),
        "math_verify_right": _rate(subset, lambda r: r["math_verify"] == r["expected"]),
    }
  kinds = collections.defaultdict(list)
  for r in rows:
    kinds[r["kind"]].append(r)
  out["by_kind"] = {
      k: {
          "n": len(v),
          "agreement": _rate(v, lambda r: r["builtin"] == r["math_verify"]),
          "builtin_right": _rate(v, lambda r: r["builtin"] == r["expected"]),
          "math_verify_right": _rate(v, lambda r: r["math_verify"] == r["expected"]),
      }
      for k, v in sorted(kinds.items())
  }
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  data_dir = FLAGS.data_dir or data_lib.default_data_dir()
  results = {}
  header = (
      f"{'benchmark':<14} {'refs':>5} {'agree%':>7} {'built%':>7} {'mv%':>7} "
      f"{'perts':>6} {'agree%':>7} {'built%':>7} {'mv%':>7} "
      f"{'sols':>5} {'agree%':>7} {'built%':>7} {'mv%':>7} {'s':>5}"
  )
  print(header, flush=True)
  for name in FLAGS.benchmarks:
    start = time.perf_counter()
    items = data_lib.load_benchmark(name, data_dir, FLAGS.limit)
    rows = cases(name, items)
    grade(name, items, rows)
    summary = summarise(rows)
    seconds = time.perf_counter() - start
    line = f"{name:<14}"
    for part, width in (("reference", 6), ("perturbed", 7), ("solution", 6)):
      p = summary[part]
      line += (
          f"{p['n']:>{width}} {100 * p['agreement']:>7.2f} {100 * p['builtin_right']:>7.2f} "
          f"{100 * p['math_verify_right']:>7.2f}"
          if p["n"]
          else f"{0:>{width}} {'-':>7} " f"{'-':>7} {'-':>7}"
      )
    print(f"{line} {seconds:>5.0f}", flush=True)
    disagreements = [
        r for r in rows if r["builtin"] != r["math_verify"] and r["kind"] != "solution"
    ]
    shown = collections.Counter()
    for r in disagreements:
      shown[r["kind"]] += 1
      if shown[r["kind"]] > FLAGS.show:
        continue
      print(
          f"  {r['kind']:<18} ref={r['refs'][0]!r:.40} expected={r['expected']} "
          f"builtin={r['builtin']} ({r['builtin_pred']!r:.30}) math_verify={r['math_verify']} "
          f"({r['math_verify_pred']!r:.30})"
      )
    if disagreements:
      by_kind = dict(collections.Counter(r["kind"] for r in disagreements))
      print(f"  disagreements by kind: {by_kind}")
    results[name] = {"summary": summary, "disagreements": disagreements, "seconds": seconds}
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  app.run(main)
