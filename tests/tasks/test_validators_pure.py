"""Pure parts of validation and grading (no sandbox): induction pair selection and
splitting, solve-rate grouping."""

from collections import namedtuple

import pytest

from absolute_zero.tasks.grading import SolverOutcome, solve_rates
from absolute_zero.tasks.parsers import ParsedInductionProposal
from absolute_zero.tasks.types import IOPair
from absolute_zero.tasks.validators import ValidatorConfig, build_induction_task

# The record validate_proposals returns, as plain data.
V = namedtuple("V", "valid status output reason")
OK = lambda out: V(True, "ok", out, "")  # noqa: E731
BAD = lambda status: V(False, status, None, f"{status} happened")  # noqa: E731
PROGRAM = "def f(x):\n    return 10 // x"


def test_failing_and_duplicate_inputs_dropped_then_split_in_half():
  proposal = ParsedInductionProposal(
      ("1", "2", "0", "5", " 2", "x", "10"), "integer division of ten"
  )
  validations = [OK("10"), OK("5"), BAD("error"), OK("2"), OK("5"), BAD("error"), OK("1")]
  result = build_induction_task(PROGRAM, proposal, validations)
  assert result.valid and result.status == "ok"
  task = result.task
  assert task.program == PROGRAM and task.message == "integer division of ten"
  assert task.shown == (IOPair("1", "10"), IOPair("2", "5"))  # 4 usable pairs -> 2 shown
  assert task.held_out == (IOPair("5", "2"), IOPair("10", "1"))
  assert [d[0] for d in result.dropped] == ["0", " 2", "x"]
  assert result.dropped[1][1] == "duplicate input"
  assert result.dropped[0][1] == "error: error happened"


def test_odd_count_holds_out_the_larger_half():
  proposal = ParsedInductionProposal(("1", "2", "5"), "m")
  task = build_induction_task(PROGRAM, proposal, [OK("10"), OK("5"), OK("2")]).task
  assert len(task.shown) == 1 and len(task.held_out) == 2


def test_too_few_usable_inputs_is_a_well_formed_rejection():
  proposal = ParsedInductionProposal(("0", "1", "1"), "m")
  result = build_induction_task(PROGRAM, proposal, [BAD("error"), OK("10"), OK("10")])
  assert not result.valid and result.well_formed
  assert result.status == "too_few_valid_inputs"


def test_require_all_inputs_is_the_reference_behaviour():
  proposal = ParsedInductionProposal(("1", "2", "0"), "m")
  validations = [OK("10"), OK("5"), BAD("timeout")]
  assert build_induction_task(PROGRAM, proposal, validations).valid
  strict = build_induction_task(
      PROGRAM, proposal, validations, ValidatorConfig(require_all_inputs=True)
  )
  assert not strict.valid and strict.status == "input_failed"
  # duplicates alone do not trip the strict mode
  dup = build_induction_task(
      PROGRAM,
      ParsedInductionProposal(("1", "1", "2"), "m"),
      [OK("10"), OK("10"), OK("5")],
      ValidatorConfig(require_all_inputs=True),
  )
  assert dup.valid and len(dup.task.shown) == 1


def test_validation_count_mismatch_and_config_errors():
  with pytest.raises(ValueError, match="2 validations for 3 inputs"):
    build_induction_task(PROGRAM, ParsedInductionProposal(("1", "2", "3"), "m"), [OK("1"), OK("2")])
  with pytest.raises(ValueError, match="min_pairs"):
    ValidatorConfig(min_pairs=1)


def test_solve_rates_grouping():
  o = lambda s: SolverOutcome(True, s, "correct" if s == 1 else "wrong")  # noqa: E731
  broken = SolverOutcome(False, 0.0, "missing_answer_tag")
  outcomes = [o(1.0), o(0.0), broken, o(1.0), o(0.0), o(0.0), o(0.0), o(0.0)]
  assert solve_rates(outcomes, 4) == [0.5, 0.0]
  assert solve_rates(outcomes, 8) == [0.25]
  with pytest.raises(ValueError, match="groups of n=3"):
    solve_rates(outcomes, 3)


# --------------------------------------------------------------------------- batching
# A recording stand-in for the sandbox's azr module: checks that each batch makes one
# sandbox call, that identical (task, answer) pairs are sent once, and that results are
# routed back to the right answers. Real execution is tested in test_validators_sandbox.py.

from absolute_zero.tasks import grading, validators  # noqa: E402
from absolute_zero.tasks.parsers import FailureKind, ParsedLiteral, ParsedProgram, ParsedTripletProposal, ParseFailure  # noqa: E402
from absolute_zero.tasks.types import InductionTask, TaskType, Triplet  # noqa: E402


class RecordingAzr:

  def __init__(self):
    self.calls = []

  def validate_proposals(self, pool, jobs):
    self.calls.append(("validate", list(jobs)))
    # rule for the stand-in: input literal '0' fails, others "output" their own text
    return [
        V(False, "error", None, "ZeroDivisionError") if i == "0" else V(True, "ok", f"<{i}>", "")
        for _, i in jobs
    ]

  def grade_abduction(self, pool, jobs, *, allow_expressions=False):
    self.calls.append(("abduction", list(jobs)))
    return [answer == "right" for _, answer, _ in jobs]

  def grade_induction(self, pool, jobs):
    self.calls.append(("induction", [(p, list(pairs)) for p, pairs in jobs]))
    return ["good" in p for p, _ in jobs]


@pytest.fixture
def fake(monkeypatch):
  azr = RecordingAzr()
  monkeypatch.setattr(validators, "validate_proposals", azr.validate_proposals)
  monkeypatch.setattr(grading, "grade_abduction", azr.grade_abduction)
  monkeypatch.setattr(grading, "grade_induction", azr.grade_induction)
  return azr


def test_triplet_validation_is_one_batch_in_order(fake):
  broken = ParseFailure(FailureKind.MISSING_INPUT_BLOCK, "x")
  content = ParseFailure(FailureKind.SYNTAX_ERROR, "x")
  parsed = [
      ParsedTripletProposal("p1", "1"),
      broken,
      ParsedTripletProposal("p2", "0"),
      content,
      ParsedTripletProposal("p3", "3"),
  ]
  results = validators.validate_triplet_proposals(None, parsed)
  assert fake.calls == [("validate", [("p1", "1"), ("p2", "0"), ("p3", "3")])]
  assert [r.triplet for r in results] == [
      Triplet("p1", "1", "<1>"),
      None,
      None,
      None,
      Triplet("p3", "3", "<3>"),
  ]
  assert [r.well_formed for r in results] == [True, False, True, True, True]
  assert [r.status for r in results] == ["ok", "missing_input_block", "error", "syntax_error", "ok"]


def test_induction_validation_is_one_batch(fake):
  items = [
      ("prog_a", ParsedInductionProposal(("1", "0", "2"), "a")),
      ("prog_b", ParseFailure(FailureKind.TOO_FEW_INPUTS, "x")),
      ("prog_c", ParsedInductionProposal(("5", "6"), "c")),
  ]
  results = validators.validate_induction_proposals(None, items)
  assert fake.calls == [
      (
          "validate",
          [("prog_a", "1"), ("prog_a", "0"), ("prog_a", "2"), ("prog_c", "5"), ("prog_c", "6")],
      )
  ]
  assert results[0].task.shown == (IOPair("1", "<1>"),) and results[0].task.held_out == (
      IOPair("2", "<2>"),
  )
  assert not results[1].valid and not results[1].well_formed
  assert results[2].task.program == "prog_c" and results[2].task.message == "c"


def test_grading_dedups_identical_answers(fake):
  t1, t2 = Triplet("p", "1", "o1"), Triplet("q", "1", "o2")
  answers = [
      ParsedLiteral("right"),
      ParsedLiteral("right"),
      ParsedLiteral("wrong"),
      ParseFailure(FailureKind.EMPTY_ANSWER, "x"),
      ParsedLiteral("right"),
  ]
  out = grading.grade_answers(None, TaskType.ABDUCTION, answers, [t1, t1, t1, t1, t2])
  assert fake.calls == [
      ("abduction", [("p", "right", "o1"), ("p", "wrong", "o1"), ("q", "right", "o2")])
  ]
  assert [o.correct for o in out] == [True, True, False, False, True]
  assert [o.status for o in out] == ["correct", "correct", "wrong", "empty_answer", "correct"]


def test_induction_grading_uses_held_out_pairs_only(fake):
  task = InductionTask("hidden", (IOPair("1", "2"),), (IOPair("3", "6"), IOPair("4", "8")), "m")
  answers = [ParsedProgram("good"), ParsedProgram("bad"), ParsedProgram("good")]
  out = grading.grade_answers(None, TaskType.INDUCTION, answers, [task] * 3)
  assert fake.calls == [
      ("induction", [("good", [("3", "6"), ("4", "8")]), ("bad", [("3", "6"), ("4", "8")])])
  ]
  assert [o.score for o in out] == [1.0, 0.0, 1.0]
  with pytest.raises(ValueError, match="2 answers for 1 tasks"):
    grading.grade_answers(None, TaskType.INDUCTION, answers[:2], [task])
