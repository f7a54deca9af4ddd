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
    proposal = ParsedInductionProposal(("1", "2", "0", "5", " 2", "x", "10"), "integer division of ten")
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
    strict = build_induction_task(PROGRAM, proposal, validations, ValidatorConfig(require_all_inputs=True))
    assert not strict.valid and strict.status == "input_failed"
    # duplicates alone do not trip the strict mode
    dup = build_induction_task(PROGRAM, ParsedInductionProposal(("1", "1", "2"), "m"),
                               [OK("10"), OK("10"), OK("5")], ValidatorConfig(require_all_inputs=True))
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
