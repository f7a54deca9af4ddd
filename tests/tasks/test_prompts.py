"""Prompts: the right things shown (and hidden), the example answer in each prompt is one
the parser accepts, and prompt -> simulated answer -> parse round-trips for all six pairs."""

import re

import pytest

from absolute_zero.tasks import parsers as P
from absolute_zero.tasks.parsers import ParseConfig
from absolute_zero.tasks.prompts import (
    PromptConfig,
    build_prompt,
    render_induction_proposal,
    render_literal_answer,
    render_program_answer,
    render_triplet_proposal,
)
from absolute_zero.tasks.types import ZERO_TRIPLET, InductionTask, IOPair, Role, TaskType, Triplet

REFS = [
    ZERO_TRIPLET,
    Triplet("def f(n):\n    return sum(range(n))", "5", "10"),
    Triplet("def f(s, k):\n    return s[k:] + s[:k]", "'rotate', 2", "'tatero'"),
]
TASK = Triplet("def f(xs):\n    return [x * x for x in xs if x % 2]", "[1, 2, 3]", "[1, 9]")
IND = InductionTask(
    program="def f(a, b):\n    return a * 17 + b",
    shown=(IOPair("1, 2", "19"), IOPair("0, 5", "5")),
    held_out=(IOPair("3, 3", "54"), IOPair("-1, 40", "23")),
    message="A linear combination of two integers.",
)


def prompt_for(task_type, role, config=PromptConfig(num_inputs=3)):
  return build_prompt(
      task_type,
      role,
      references=REFS,
      program=TASK.program,
      task=IND if task_type is TaskType.INDUCTION else TASK,
      config=config,
  )


ALL = [(t, r) for t in TaskType for r in Role]


def test_proposer_prompts_show_every_reference_and_banned_words():
  for t in (TaskType.DEDUCTION, TaskType.ABDUCTION):
    text = prompt_for(t, Role.PROPOSE)
    for ref in REFS:
      assert ref.program in text and ref.input in text and ref.output in text
    assert "hashlib" in text and "os.environ" in text


def test_induction_proposer_prompt_shows_program_and_count():
  text = prompt_for(TaskType.INDUCTION, Role.PROPOSE, PromptConfig(num_inputs=7))
  assert TASK.program in text and "Write 7 different inputs" in text


def test_solver_prompts_hide_the_answer():
  ded = prompt_for(TaskType.DEDUCTION, Role.SOLVE)
  assert TASK.program in ded and TASK.input in ded and TASK.output not in ded
  abd = prompt_for(TaskType.ABDUCTION, Role.SOLVE)
  assert TASK.program in abd and TASK.output in abd and TASK.input not in abd
  ind = prompt_for(TaskType.INDUCTION, Role.SOLVE)
  assert IND.message in ind
  for pair in IND.shown:
    assert pair.input in ind and pair.output in ind
  for pair in IND.held_out:
    assert pair.input not in ind and pair.output not in ind
  assert "17" not in ind  # the hidden program never leaks


@pytest.mark.parametrize("pair", ALL, ids=lambda p: f"{p[0].value}-{p[1].value}")
def test_example_answer_in_prompt_is_accepted_by_parser(pair):
  """The format a prompt demonstrates is the one the parser reads."""
  text = prompt_for(*pair)
  example = re.search(r"^<answer>\n.*?\n</answer>$", text, re.DOTALL | re.MULTILINE)
  assert example is not None
  result = P.parse_response(pair[0], pair[1], example.group(0), ParseConfig(num_inputs=3))
  assert not isinstance(result, P.ParseFailure), result


def test_prompts_end_with_response_cue_and_wrap_hook():
  for pair in ALL:
    assert prompt_for(*pair).endswith("### Response\n")
  wrap = lambda s: f"<|user|>\n{s}<|end|>\n<|assistant|>\n"  # noqa: E731
  wrapped = prompt_for(TaskType.DEDUCTION, Role.SOLVE, PromptConfig(wrap=wrap))
  assert wrapped == wrap(prompt_for(TaskType.DEDUCTION, Role.SOLVE, PromptConfig()))


def test_missing_arguments_are_clear_errors():
  with pytest.raises(ValueError, match="at least one reference"):
    build_prompt(TaskType.DEDUCTION, Role.PROPOSE, references=[])
  with pytest.raises(ValueError, match="needs `program`"):
    build_prompt(TaskType.INDUCTION, Role.PROPOSE)
  with pytest.raises(ValueError, match="InductionTask"):
    build_prompt(TaskType.INDUCTION, Role.SOLVE, task=TASK)
  with pytest.raises(ValueError, match="Triplet"):
    build_prompt(TaskType.ABDUCTION, Role.SOLVE, task=IND)


def test_round_trip_prompt_simulated_answer_parse():
  """Each prompt, followed by a simulated model answer in the requested format, parses
  back to exactly the values the simulated model meant."""
  cfg = ParseConfig(num_inputs=3)
  new_program = "def f(t):\n    return t.upper()[::-1]"
  simulated = {
      (TaskType.DEDUCTION, Role.PROPOSE): (
          render_triplet_proposal(new_program, "'abc'", "Reverse."),
          P.ParsedTripletProposal(new_program, "'abc'"),
      ),
      (TaskType.ABDUCTION, Role.PROPOSE): (
          render_triplet_proposal(new_program, "'xy'", "Plan."),
          P.ParsedTripletProposal(new_program, "'xy'"),
      ),
      (TaskType.INDUCTION, Role.PROPOSE): (
          render_induction_proposal(["[]", "[1]", "[2, 3]"], "Odd squares."),
          P.ParsedInductionProposal(("[]", "[1]", "[2, 3]"), "Odd squares."),
      ),
      (TaskType.DEDUCTION, Role.SOLVE): (
          render_literal_answer(TASK.output, "1 and 3 are odd."),
          P.ParsedLiteral(TASK.output),
      ),
      (TaskType.ABDUCTION, Role.SOLVE): (
          render_literal_answer("[3, 1]", "Any odd numbers."),
          P.ParsedLiteral("[3, 1]"),
      ),
      (TaskType.INDUCTION, Role.SOLVE): (
          render_program_answer(IND.program, "Slope 17."),
          P.ParsedProgram(IND.program),
      ),
  }
  for pair, (answer, expected) in simulated.items():
    prompt_for(*pair)  # the prompt for this pair builds
    assert P.parse_response(pair[0], pair[1], answer, cfg) == expected
