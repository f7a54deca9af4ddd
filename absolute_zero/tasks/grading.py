"""How a solver's answer is graded (docs/method.md, "Grading"); the inputs of the rewards.

One answer each: deduction is graded without running code (``grade_deduction`` compares
literals as values); abduction runs the task's program on the answered input, induction
runs the answered program on every held-out input, and the results are compared here
with the expected outputs as plain values (expected values never enter the sandbox).
Batches of parsed answers (``grade_answers``): abduction and induction run in one
sandbox batch per call. Identical (task, answer)
pairs are graded once, as in the reference's answer cache: the ``n`` samples of one
task often agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, Union

from absolute_zero.sandbox.literals import literals_equal, parse_untrusted
from absolute_zero.sandbox.pool import SandboxPool
from absolute_zero.tasks.parsers import ParsedLiteral, ParsedProgram, ParseFailure
from absolute_zero.tasks.rewards import RewardConfig, induction_score, solve_rate
from absolute_zero.tasks.types import InductionTask, TaskType, Triplet
from absolute_zero.tasks.validators import run_calls

Answer = Union[ParsedLiteral, ParsedProgram, ParseFailure]


# ----------------------------------------------------------------------------- one answer each


def grade_deduction(expected_output: str, answer: str) -> bool:
  """Deduction: the answered output literal equals the expected one as a value."""
  return literals_equal(expected_output, answer)


def grade_abduction(
    pool: SandboxPool, items: Sequence[tuple[str, str, str]], *, allow_expressions: bool = False
) -> list[bool]:
  """Abduction: for (program, answered input literal, expected output), f(*answer) == expected.

  The answer is parsed as literals outside the sandbox (code in it is never run; with
  `allow_expressions`, e.g. for CRUXEval-I, it may be an expression that passes
  `check_input_expression`); the program's result is compared here with the expected
  output, as plain values.
  """
  items = list(items)
  results = run_calls(pool, [(p, a) for p, a, _ in items], [None], allow_expressions)
  return [
      r.status == "ok" and r.output is not None and literals_equal(expected, r.output)
      for (_, _, expected), r in zip(items, results)
  ]


def grade_induction(
    pool: SandboxPool,
    items: Sequence[tuple[str, Sequence[tuple[str, str]]]],
    *,
    allow_expressions: bool = True,
) -> list[bool]:
  """Induction: the candidate program maps every held-out input to its output."""
  items = [(program, list(pairs)) for program, pairs in items]
  specs, owner = [], []
  verdict = [bool(pairs) for _, pairs in items]
  for i, (program, pairs) in enumerate(items):
    if not isinstance(program, str) or _parses(program) is False:
      verdict[i] = False
      continue
    for input_literal, _ in pairs:
      specs.append((program, input_literal))
      owner.append(i)
  results = run_calls(pool, specs, [None], allow_expressions)
  k = 0
  for i, (program, pairs) in enumerate(items):
    if not isinstance(program, str) or _parses(program) is False:
      continue
    for _, output in pairs:
      r = results[k]
      k += 1
      if not (r.status == "ok" and r.output is not None and literals_equal(output, r.output)):
        verdict[i] = False
  return verdict


def _parses(program: str) -> bool:
  try:
    parse_untrusted(program)
    return True
  except (SyntaxError, ValueError, MemoryError, RecursionError):
    return False


# ------------------------------------------------------------------- batches of parsed answers


@dataclass(frozen=True)
class SolverOutcome:
  """One graded solver response: ``score`` in [0, 1] (1 correct), ``status`` says why."""

  well_formed: bool
  score: float
  status: str  # 'correct', 'wrong', or a parse failure kind

  @property
  def correct(self) -> bool:
    return self.score >= 1.0


def _failed(failure: ParseFailure) -> SolverOutcome:
  return SolverOutcome(not failure.broken_format, 0.0, failure.kind.value)


def _graded(score: float) -> SolverOutcome:
  return SolverOutcome(True, float(score), "correct" if score >= 1.0 else "wrong")


def _check_lengths(answers: Sequence[Any], tasks: Sequence[Any]) -> None:
  if len(answers) != len(tasks):
    raise ValueError(f"{len(answers)} answers for {len(tasks)} tasks")


def grade_deduction_answers(
    answers: Sequence[Answer], tasks: Sequence[Triplet]
) -> list[SolverOutcome]:
  """Deduction: value equality of the answer literal with the task's output."""
  _check_lengths(answers, tasks)
  out = []
  for answer, task in zip(answers, tasks):
    if isinstance(answer, ParseFailure):
      out.append(_failed(answer))
    else:
      out.append(_graded(1.0 if grade_deduction(task.output, answer.text) else 0.0))
  return out


def grade_abduction_answers(
    pool: Any,
    answers: Sequence[Answer],
    tasks: Sequence[Triplet],
    *,
    allow_expressions: bool = False,
) -> list[SolverOutcome]:
  """Abduction: the task's program run on the answer must give the task's output.

  ``allow_expressions``: accept checked expression inputs (lambdas, ``dict(...)``) besides
  literals; CRUXEval-I's published inputs include some. Self-play keeps literals only."""
  _check_lengths(answers, tasks)
  unique: dict[tuple[str, str, str], int] = {}
  for answer, task in zip(answers, tasks):
    if isinstance(answer, ParsedLiteral):
      unique.setdefault((task.program, answer.text, task.output), len(unique))
  verdicts = (
      grade_abduction(pool, list(unique), allow_expressions=allow_expressions) if unique else []
  )
  out = []
  for answer, task in zip(answers, tasks):
    if isinstance(answer, ParseFailure):
      out.append(_failed(answer))
    else:
      out.append(
          _graded(1.0 if verdicts[unique[(task.program, answer.text, task.output)]] else 0.0)
      )
  return out


def grade_induction_answers(
    pool: Any,
    answers: Sequence[Answer],
    tasks: Sequence[InductionTask],
    config: RewardConfig = RewardConfig(),
) -> list[SolverOutcome]:
  """Induction: the candidate program must reproduce the held-out pairs.

  ``config.induction_reward``: 'binary' (reference default) grades all held-out pairs in
  one job per candidate; 'accuracy' / 'if_one_correct' grade each pair separately."""
  _check_lengths(answers, tasks)
  per_pair = config.induction_reward != "binary"
  unique: dict[tuple, int] = {}

  def keys_for(program: str, task: InductionTask) -> list[tuple]:
    pairs = [(p.input, p.output) for p in task.held_out]
    if per_pair:
      return [(program, (pair,)) for pair in pairs]
    return [(program, tuple(pairs))]

  for answer, task in zip(answers, tasks):
    if isinstance(answer, ParsedProgram):
      for key in keys_for(answer.program, task):
        unique.setdefault(key, len(unique))
  jobs = [(program, list(pairs)) for program, pairs in unique]
  verdicts = grade_induction(pool, jobs) if jobs else []
  out = []
  for answer, task in zip(answers, tasks):
    if isinstance(answer, ParseFailure):
      out.append(_failed(answer))
      continue
    results = [bool(verdicts[unique[key]]) for key in keys_for(answer.program, task)]
    if per_pair:
      out.append(_graded(induction_score(results, config)))
    else:
      out.append(_graded(1.0 if results[0] else 0.0))
  return out


def grade_answers(
    pool: Any,
    task_type: TaskType,
    answers: Sequence[Answer],
    tasks: Sequence[Union[Triplet, InductionTask]],
    config: RewardConfig = RewardConfig(),
    *,
    allow_expressions: bool = False,
) -> list[SolverOutcome]:
  """Dispatch on the task type; one sandbox batch (none for deduction).

  ``allow_expressions`` applies to abduction answers (see ``grade_abduction_answers``)."""
  for answer in answers:
    if not isinstance(answer, (ParsedLiteral, ParsedProgram, ParseFailure)):
      raise TypeError(
          f"answers must be parsed solver answers or ParseFailure, got {type(answer).__name__}"
      )
  if task_type is TaskType.DEDUCTION:
    return grade_deduction_answers(answers, tasks)
  if task_type is TaskType.ABDUCTION:
    return grade_abduction_answers(pool, answers, tasks, allow_expressions=allow_expressions)
  return grade_induction_answers(pool, answers, tasks, config)


def solve_rates(outcomes: Sequence[SolverOutcome], n: int) -> list[float]:
  """Solve rate per task from outcomes laid out task-major (``n`` consecutive samples per
  task); a malformed sample counts as unsolved."""
  if n < 1 or len(outcomes) % n:
    raise ValueError(f"{len(outcomes)} outcomes is not a whole number of groups of n={n}")
  return [solve_rate([o.score for o in outcomes[i : i + n]]) for i in range(0, len(outcomes), n)]
