"""The math_grader option, and the builtin grader checked against math-verify.

math-verify (HuggingFace's grader, an optional dependency; in the `test` extra) is the
reference library: on a generated set of completions whose verdicts are known by
construction, both graders must give the hand-expected verdict.
"""

import itertools
from fractions import Fraction

import pytest

from absolute_zero.evaluation import math_verify_grader
from absolute_zero.evaluation.benchmarks import grade_benchmark, grade_math
from absolute_zero.evaluation.data import MathItem, load_benchmark
from absolute_zero.evaluation.grader_checks import reference_completion
from absolute_zero.evaluation.runner import EvalConfig

from tests.evaluation.conftest import require


def test_unknown_grader_is_refused():
  with pytest.raises(ValueError, match="math_grader"):
    EvalConfig(math_grader="sympy")
  with pytest.raises(ValueError, match="math_grader"):
    grade_math([], [], math_grader="")


def test_missing_math_verify_names_the_install_command(monkeypatch):
  monkeypatch.setattr(math_verify_grader, "math_verify_available", lambda: False)
  with pytest.raises(ImportError, match=r"pip install 'absolute-zero\[math_verify\]'"):
    EvalConfig(math_grader="math_verify")
  with pytest.raises(math_verify_grader.MathVerifyUnavailable):
    grade_math([MathItem("0", "p", ("1",))], [["\\boxed{1}"]], math_grader="math_verify")
  assert EvalConfig().math_grader == "builtin"  # the default needs nothing


def _item(ref: str) -> MathItem:
  return MathItem(ref, "problem", (ref,))


def _agreement_cases():
  """(completion, reference, verdict) built from hand-picked values."""
  cases = []
  values = [
      Fraction(7),
      Fraction(-3),
      Fraction(1200),
      Fraction(9, 5),
      Fraction(-7, 4),
      Fraction(5, 2),
      Fraction(70000),
  ]
  wrappers = [
      "The final answer is $\\boxed{{{a}}}$.",
      "The answer is \\boxed{{{a}}}. I put it in \\boxed as asked.",
      "So $\\boxed{{{a}}}$ (checked with \\boxed at hand).",
      "The final answer is ${a}$. I hope it is correct.",
  ]
  for v, wrap in itertools.product(values, wrappers):
    sign = "-" if v < 0 else ""
    a, b = abs(v.numerator), v.denominator
    ref = str(v.numerator) if b == 1 else f"{sign}\\frac{{{a}}}{{{b}}}"
    spellings = [
        (f"{sign}\\frac{{{2 * a}}}{{{2 * b}}}", True),
        (f"\u2212\\frac{{{a}}}{{{b}}}" if v < 0 else f"\\frac{{{a}}}{{{b}}}", True),
        (f"{sign}\\frac{{{a + b}}}{{{b}}}", False),  # off by one
        (f"{'' if v < 0 else '-'}\\frac{{{a}}}{{{b}}}", False),
    ]  # negated
    if b > 1 and a > b:
      spellings.append((f"{sign}{a // b}\\frac{{{a % b}}}{{{b}}}", True))  # mixed
      spellings.append((f"\\frac{{{a % b}}}{{{b}}}", False))
    for written, verdict in spellings:
      cases.append((wrap.format(a=written), ref, verdict))
  return cases


def test_builtin_and_math_verify_agree_with_hand_verdicts():
  pytest.importorskip("math_verify")
  cases = _agreement_cases()
  assert len(cases) == 7 * 4 * 4 + 3 * 4 * 2
  items = [_item(ref) for _, ref, _ in cases]
  completions = [[c] for c, _, _ in cases]
  builtin = [g[0].correct for g in grade_math(items, completions)]
  verified = [g[0].correct for g in grade_math(items, completions, math_grader="math_verify")]
  expected = [v for _, _, v in cases]
  assert [c for c, b, e in zip(cases, builtin, expected) if b != e] == []
  assert [c for c, m, e in zip(cases, verified, expected) if m != e] == []


def test_math_verify_grader_reports_its_extraction():
  pytest.importorskip("math_verify")
  graded = grade_benchmark(
      "gsm8k",
      None,
      [_item("12"), _item("5")],
      [["\\boxed{12}. I put it in \\boxed as asked.", ""], ["So \\boxed{6}."]],
      math_grader="math_verify",
  )
  assert [(g.correct, g.status) for g in graded[0]] == [(True, "correct"), (False, "no_answer")]
  assert graded[0][0].prediction == "12"
  assert (graded[1][0].correct, graded[1][0].prediction) == (False, "6")


@pytest.mark.parametrize("name", ["aime24", "amc23", "math500"])
def test_both_graders_accept_every_reference(name):
  pytest.importorskip("math_verify")
  require("math", name, "test.jsonl")
  items = load_benchmark(name, limit=120)
  completions = [[reference_completion(name, item)] for item in items]
  for grader in ("builtin", "math_verify"):
    graded = grade_math(items, completions, math_grader=grader)
    assert [i.id for i, g in zip(items, graded) if not g[0].correct] == [], grader


def test_hostile_completion_runs_nowhere(tmp_path):
  pytest.importorskip("math_verify")
  marker = tmp_path / "ran"
  payloads = [
      f"\\boxed{{__import__('os').system('touch {marker}')}}",
      f"The answer is $__import__('os').system('touch {marker}')$",
      f"so x = (lambda: __import__('os').system('touch {marker}'))()",
  ]
  graded = grade_math(
      [_item("1")] * len(payloads), [[p] for p in payloads], math_grader="math_verify"
  )
  assert [g[0].correct for g in graded] == [False] * len(payloads)
  assert not marker.exists()
