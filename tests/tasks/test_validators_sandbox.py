"""Validators and grading with the real sandbox: valid, banned, nondeterministic,
erroring and looping programs; induction splitting; solver grading; one end-to-end
pass from model text to rewards."""

import numpy as np
import pytest

from absolute_zero.sandbox import SandboxLimits, SandboxPool

from absolute_zero.tasks import parsers as P
from absolute_zero.tasks.buffers import TaskBuffers
from absolute_zero.tasks.grading import grade_answers, solve_rates
from absolute_zero.tasks.prompts import (
    build_prompt,
    render_induction_proposal,
    render_literal_answer,
    render_triplet_proposal,
)
from absolute_zero.tasks.rewards import RewardConfig, final_proposer_reward, final_solver_reward
from absolute_zero.tasks.types import InductionTask, IOPair, Role, TaskType, Triplet
from absolute_zero.tasks.validators import validate_induction_proposals, validate_triplet_proposals


@pytest.fixture(scope="module")
def pool():
  with SandboxPool(num_workers=2, limits=SandboxLimits(timeout_s=2.0, cpu_s=2.0)) as p:
    yield p


CLASS_PROGRAM = """class Acc:
    def __init__(self):
        self.items = []

    def push(self, v):
        self.items.append(v * 2)
        return self


def f(xs):
    def total(a):
        return sum(a.items)

    a = Acc()
    for x in xs:
        a.push(x)
    return total(a), a.items[-1]"""


def proposal(program, literal):
  return P.parse_triplet_proposal(render_triplet_proposal(program, literal))


def test_triplet_proposals_one_batch(pool):
  parsed = [
      proposal("def f(s):\n    return s[::-1]", "'hello'"),
      proposal("import random\ndef f(x):\n    return random.random() + x", "1"),
      proposal("def f(x):\n    return hash(str(x)) % 1000003", "'salt'"),
      proposal("def f(x):\n    return 1 // (x - x)", "3"),
      proposal("def f(x):\n    while True:\n        x += 1", "0"),
      P.parse_triplet_proposal("no answer here"),
      proposal("def f(x):\n    return x\ndef g(y):\n    return y", "1"),
      proposal(CLASS_PROGRAM, "[1, 2, 3]"),
  ]
  results = validate_triplet_proposals(pool, parsed)
  assert [r.status for r in results[:5]] == ["ok", "banned", "nondeterministic", "error", "timeout"]
  assert results[0].triplet == Triplet("def f(s):\n    return s[::-1]", "'hello'", "'olleh'")
  assert all(r.well_formed and not r.valid and r.reason for r in results[1:5])
  assert not results[5].well_formed and results[5].status == "missing_answer_tag"
  assert results[6].well_formed and results[6].status == "multiple_functions"
  assert results[7].triplet == Triplet(CLASS_PROGRAM, "[1, 2, 3]", "(12, 6)")


def test_induction_proposals_drop_failing_inputs_and_split(pool):
  program = "def f(x):\n    return 10 // x"
  good = P.parse_induction_proposal(
      render_induction_proposal(["1", "2", "0", "5", "2", "'x'", "10", "-3"], "ten divided by x"),
      P.ParseConfig(num_inputs=8),
  )
  too_few = P.parse_induction_proposal(
      render_induction_proposal(["0", "1", "0"], "m"), P.ParseConfig(num_inputs=3)
  )
  broken = P.parse_induction_proposal(
      "<answer>```input\n1\n```</answer>", P.ParseConfig(num_inputs=3)
  )
  results = validate_induction_proposals(
      pool, [(program, good), (program, too_few), (program, broken)]
  )
  task = results[0].task
  assert results[0].valid
  assert task.shown == (IOPair("1", "10"), IOPair("2", "5"))
  assert task.held_out == (IOPair("5", "2"), IOPair("10", "1"), IOPair("-3", "-4"))
  assert {d[0] for d in results[0].dropped} == {"0", "2", "'x'"}
  assert (
      not results[1].valid
      and results[1].well_formed
      and results[1].status == "too_few_valid_inputs"
  )
  assert not results[2].valid and not results[2].well_formed


def test_grading_all_three_types(pool):
  t = Triplet("def f(x):\n    return x % 3", "7", "1")
  ded = [
      P.ParsedLiteral("1"),
      P.ParsedLiteral(" 1 "),
      P.ParsedLiteral("1.0"),
      P.ParsedLiteral("2"),
      P.ParseFailure(P.FailureKind.MISSING_ANSWER_TAG, "x"),
      P.ParsedLiteral("[1"),
  ]
  out = grade_answers(pool, TaskType.DEDUCTION, ded, [t] * len(ded))
  # value equality: 1 == 1.0 in Python, as eval(answer) == eval(o) in the spec
  assert [o.correct for o in out] == [True, True, True, False, False, False]
  assert [o.well_formed for o in out] == [True, True, True, True, False, True]
  # abduction: any input mapping to the output counts
  abd = [
      P.ParsedLiteral("4"),
      P.ParsedLiteral("7"),
      P.ParsedLiteral("3"),
      P.ParsedLiteral("'a'"),
      P.ParsedLiteral("4"),
  ]
  out = grade_answers(pool, TaskType.ABDUCTION, abd, [t] * len(abd))
  assert [o.correct for o in out] == [True, True, False, False, True]
  ind_task = InductionTask(
      "def f(a):\n    return a * 2",
      (IOPair("1", "2"),),
      (IOPair("3", "6"), IOPair("'ab'", "'abab'")),
      "double",
  )
  candidates = [
      P.ParsedProgram("def f(a):\n    return a + a"),
      P.ParsedProgram("def f(a):\n    return a * 2 if a != 'ab' else 'x'"),
      P.ParsedProgram("def f(a):\n    raise ValueError(a)"),
      P.ParsedProgram("def f(a):\n    return str(a * 2)"),  # '6' is not 6
  ]
  out = grade_answers(pool, TaskType.INDUCTION, candidates, [ind_task] * 4)
  assert [o.score for o in out] == [1.0, 0.0, 0.0, 0.0]
  acc = grade_answers(
      pool,
      TaskType.INDUCTION,
      candidates,
      [ind_task] * 4,
      RewardConfig(induction_reward="accuracy"),
  )
  assert [o.score for o in acc] == [1.0, 0.5, 0.0, 0.5]  # str('ab' * 2) is right, str(6) is not


def test_end_to_end_text_to_rewards(pool):
  """Proposer text -> parse -> sandbox -> buffer -> solver prompt -> answers -> rewards."""
  rng = np.random.default_rng(0)
  buffers = TaskBuffers.seeded()
  refs = buffers[TaskType.DEDUCTION].sample_references(6, rng)
  build_prompt(TaskType.DEDUCTION, Role.PROPOSE, references=refs)
  texts = [
      render_triplet_proposal(
          "def f(n):\n    return sum(i * i for i in range(n))", "4", "Sum of squares."
      ),
      "I will write a program. <answer>```python\ndef f(n): return n",  # broken
      render_triplet_proposal("def f(n):\n    return n / 0", "4"),  # runs into an error
  ]
  results = validate_triplet_proposals(pool, [P.parse_triplet_proposal(t) for t in texts])
  assert buffers[TaskType.DEDUCTION].add([r.triplet for r in results if r.valid], step=1) == 1
  new = results[0].triplet
  assert new.output == "14"
  # eight simulated solver samples: three right, four wrong, one broken
  prompt = build_prompt(TaskType.DEDUCTION, Role.SOLVE, task=new)
  assert new.input in prompt
  samples = (
      [render_literal_answer("14")] * 3 + [render_literal_answer("30")] * 4 + ["the answer is 14"]
  )
  answers = [P.parse_deduction_answer(s) for s in samples]
  outcomes = grade_answers(pool, TaskType.DEDUCTION, answers, [new] * 8)
  [rate] = solve_rates(outcomes, 8)
  assert rate == 3 / 8
  assert [final_solver_reward(o.well_formed, o.score) for o in outcomes] == [1.0] * 3 + [
      -0.5
  ] * 4 + [-1.0]
  rewards = [
      final_proposer_reward(r.well_formed, r.valid, rate if r.valid else None) for r in results
  ]
  assert rewards == [pytest.approx(5 / 8), -1.0, -0.5]


def test_prompt_banned_list_matches_sandbox():
  from absolute_zero.tasks.validators import REFERENCE_BANNED
  from absolute_zero.tasks.prompts import REFERENCE_BANNED_WORDS

  assert set(REFERENCE_BANNED_WORDS) == set(REFERENCE_BANNED)
