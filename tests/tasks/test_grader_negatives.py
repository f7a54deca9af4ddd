"""Negative controls of the self-play graders: wrong answers of every kind score 0.

The grader tests elsewhere mostly show right answers pass. A grader that also passes
some wrong answers (an abduction answer on which `f` raises when the expected output is
`None`, an induction program right only on the pairs the solver saw) hands out reward a
solver can farm. Every case here is a wrong answer by hand, next to a right one (the
positive control), through the path self-play uses: text -> parser -> `grade_answers`.
"""

from __future__ import annotations

import pytest

from absolute_zero.sandbox import SandboxLimits, SandboxPool
from absolute_zero.tasks.grading import grade_answers
from absolute_zero.tasks.parsers import ParseFailure, parse_response
from absolute_zero.tasks.prompts import render_literal_answer, render_program_answer
from absolute_zero.tasks.rewards import RewardConfig
from absolute_zero.tasks.types import InductionTask, IOPair, Role, TaskType, Triplet

DED, ABD, IND = TaskType.DEDUCTION, TaskType.ABDUCTION, TaskType.INDUCTION


@pytest.fixture(scope="module")
def pool():
  with SandboxPool(2, SandboxLimits(timeout_s=2.0, cpu_s=2.0)) as p:
    yield p


def _grade(pool, task_type, task, answers, config=RewardConfig()):
  """Scores of the answer texts (literals or programs) for `task`, parsed as self-play
  parses a solver response."""
  render = render_program_answer if task_type is IND else render_literal_answer
  parsed = [parse_response(task_type, Role.SOLVE, render(a)) for a in answers]
  outcomes = grade_answers(pool, task_type, parsed, [task] * len(parsed), config)
  return [o.score for o in outcomes], [o.status for o in outcomes]


# ------------------------------------------------------------------ deduction


@pytest.mark.parametrize(
    "output, right, wrong",
    [
        (
            "[1, 2]",
            ["[1, 2]", "[1,2]"],
            ["[2, 1]", "(1, 2)", "[1, 2, 3]", "'[1, 2]'", "[1, '2']", "None", "[1]", "[[1, 2]]"],
        ),
        ("None", ["None"], ["0", "''", "'None'", "False", "[]", "()"]),
        # Python's == decides (as the reference's eval(a) == eval(b)): 1 == 1.0 == True.
        ("1", ["1", "1.0", "True"], ["'1'", "2", "-1", "(1,)", "[1]", "1.5"]),
        (
            "{'a': 1, 'b': 2}",
            ["{'b': 2, 'a': 1}"],
            ["{'a': 1}", "{'a': 2, 'b': 1}", "[('a', 1), ('b', 2)]"],
        ),
        ("'abc'", ["'abc'", '"abc"'], ["'ab'", "'ABC'", "b'abc'", "['a', 'b', 'c']"]),
    ],
)
def test_deduction_rejects_every_other_value(pool, output, right, wrong):
  task = Triplet("def f(x):\n    return x", "0", output)  # grading reads only the output
  scores, statuses = _grade(pool, DED, task, right + wrong)
  assert scores == [1.0] * len(right) + [0.0] * len(wrong), list(zip(right + wrong, statuses))


def test_deduction_answer_code_is_not_run(pool):
  task = Triplet("def f(x):\n    return [x]", "1", "[1]")
  scores, _ = _grade(
      pool,
      DED,
      task,
      ["__import__('os').system('true') or [1]", "[0 + 1]", "[x for x in [1]]", "list([1])"],
  )
  assert scores == [0.0, 0.0, 0.0, 1.0]  # list(<literal>) is a literal form


# ------------------------------------------------------------------ abduction

NONE_OR_RAISE = "def f(x):\n    if x > 0:\n        return None\n" "    raise ValueError(x)"


@pytest.mark.parametrize(
    "program, output, right, wrong",
    [
        # f returns None on positive x and raises otherwise: the raising answers are wrong.
        (NONE_OR_RAISE, "None", ["1", "7"], ["-1", "0", "'a'", "1, 2", ""]),
        # f prints None but returns x: what counts is the returned value.
        ("def f(x):\n    print(None)\n    return x", "None", ["None"], ["1", "'None'"]),
        # f returns None (no return statement): right only where None is expected.
        ("def f(x):\n    x.append(1)", "None", ["[]", "[2]"], ["1", "None"]),
        ("def f(x):\n    x.append(1)", "[1]", [], ["[]", "[1]"]),
        # f exits the interpreter or raises a BaseException: never right.
        ("def f(x):\n    raise SystemExit(0)", "None", [], ["1", "None"]),
        ("def f(x):\n    raise KeyboardInterrupt", "None", [], ["1"]),
        # f loops forever on negative x (the job times out).
        ("def f(x):\n    while x < 0:\n        pass\n    return None", "None", ["1"], ["-1"]),
        # Ordinary wrong inputs; answers that are expressions, not literals, are refused.
        (
            "def f(a, b):\n    return a * b",
            "6",
            ["2, 3", "3, 2", "6, 1"],
            ["2, 2", "6", "2, 3, 4", "1 + 1, 3", "(2, 3)"],
        ),
    ],
)
def test_abduction_rejects_answers_that_do_not_return_the_output(
    pool, program, output, right, wrong
):
  scores, statuses = _grade(pool, ABD, Triplet(program, "0", output), right + wrong)
  assert scores == [1.0] * len(right) + [0.0] * len(wrong), list(zip(right + wrong, statuses))


# ------------------------------------------------------------------ induction

DOUBLE = InductionTask(
    "def f(x):\n    return x * 2",
    (IOPair("1", "2"), IOPair("2", "4")),  # shown to the solver
    (IOPair("3", "6"), IOPair("0", "0")),  # held out: graded on these
    "doubles",
)
NONE_BELOW_ZERO = InductionTask(
    "def f(x):\n    if x < 0:\n        return None\n    return x * 2",
    (IOPair("1", "2"), IOPair("-5", "None")),
    (IOPair("-1", "None"), IOPair("3", "6")),
    "",
)


@pytest.mark.parametrize(
    "task, right, wrong",
    [
        (
            DOUBLE,
            ["def f(x):\n    return x * 2", "def f(x):\n    return x + x"],
            [
                "def f(x):\n    return {1: 2, 2: 4}[x]",  # only the shown pairs
                "def f(x):\n    return {1: 2, 2: 4, 3: 6}.get(x)",  # right on one held-out pair
                "def f(x):\n    return x * 2 if x else 1",
                "def f(x):\n    raise ValueError(x)",
                "def f(x):\n    print(x * 2)",  # prints, returns None
                "def f():\n    return 6",  # no parameter
                "def f(x):\n    return str(x * 2)",
                "def f(x, y):\n    return x * 2",
            ],
        ),
        (
            NONE_BELOW_ZERO,
            ["def f(x):\n    return None if x < 0 else 2 * x"],
            [
                "def f(x):\n    if x < 0:\n        raise ValueError(x)\n    return x * 2",
                "def f(x):\n    return x * 2",
                "def f(x):\n    return None",
                "def f(x):\n    if x < 0:\n        raise SystemExit(0)\n    return x * 2",
            ],
        ),
    ],
)
def test_induction_rejects_programs_wrong_on_any_held_out_pair(pool, task, right, wrong):
  scores, statuses = _grade(pool, IND, task, right + wrong)
  assert scores == [1.0] * len(right) + [0.0] * len(wrong), list(zip(right + wrong, statuses))


def test_induction_partial_credit_only_where_configured(pool):
  half = "def f(x):\n    return {3: 6}.get(x, -1)"  # right on the first held-out pair only
  for mode, expected in (("binary", 0.0), ("accuracy", 0.5), ("if_one_correct", 1.0)):
    scores, _ = _grade(
        pool, IND, DOUBLE, [half, "def f(x):\n    return -1"], RewardConfig(induction_reward=mode)
    )
    assert scores == [expected, 0.0], mode


def test_unparseable_answers_score_zero(pool):
  """Parse failures never reach the sandbox and never score."""
  triplet = Triplet("def f(x):\n    return x", "1", "1")
  for task_type, task in ((DED, triplet), (ABD, triplet), (IND, DOUBLE)):
    parsed = [
        parse_response(task_type, Role.SOLVE, text)
        for text in ("1", "<answer>\n1", "The answer is 1.")
    ]
    assert all(isinstance(p, ParseFailure) for p in parsed)
    outcomes = grade_answers(pool, task_type, parsed, [task] * 3)
    assert [o.score for o in outcomes] == [0.0] * 3
