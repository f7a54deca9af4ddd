"""Per-benchmark prompts, stop strings and graders.

`BENCHMARK_SPECS[name]` says how to prompt the model on an item and when to stop;
`grade_benchmark(name, pool, items, completions)` grades `completions[i]` (the texts of
item i's samples) and returns `Graded` results in the same layout.

Grading paths:
  cruxeval_o / cruxeval_i  the self-play solver's own path: the shared solver prompts,
                           `parse_deduction_answer` / `parse_abduction_answer`, then
                           `tasks.grading.grade_answers` (deduction: literal equality;
                           abduction: the program runs on the answer in the sandbox);
  humaneval                prompt + completion + the problem's `check(candidate)`, run as
                           one sandbox job; passing = the job ends without an exception;
  math sets                `extract_answer` then `answers_equivalent_batch` against the
                           reference(s) (math_grader='builtin', the default), or
                           HuggingFace's math-verify (math_grader='math_verify', an
                           optional package; see `math_verify_grader`); no model text is
                           executed in this process.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Optional, Sequence

from absolute_zero.evaluation.data import (
    CODE_BENCHMARKS,
    MATH_BENCHMARKS,
    CruxItem,
    HumanEvalItem,
    Item,
    MathItem,
)
from absolute_zero.evaluation.math_answers import extract_answer
from absolute_zero.evaluation.math_equivalence import any_reference_matches
from absolute_zero.evaluation.math_verify_grader import math_verify_batch, require_math_verify
from absolute_zero.sandbox.job_types import Job
from absolute_zero.tasks import grading
from absolute_zero.tasks.parsers import ParseFailure, parse_abduction_answer, parse_deduction_answer
from absolute_zero.tasks.prompts import abduction_solver_prompt, deduction_solver_prompt
from absolute_zero.tasks.types import TaskType, Triplet

PROMPT_VERSION = 2  # bump when a prompt or stop list changes: scores are then not comparable
# 2: the solver prompts no longer name the answer tags in running text ("between <answer>
#    and </answer>"): small models copied that phrase and answered `and`.
MAX_PREDICTION_CHARS = 2_000  # per-item predictions kept in reports


@dataclasses.dataclass(frozen=True)
class Graded:
  """One graded sample: what was extracted, whether it is right, and why not."""

  prediction: Optional[str]
  correct: bool
  status: str  # 'correct', 'wrong', or a parse/extraction/run failure kind


@dataclasses.dataclass(frozen=True)
class BenchmarkSpec:
  """How to prompt for one benchmark. `restore_stop`: a completion that ended on the stop
  string gets it back (the sampler cuts it), so `</answer>` closes the answer block."""

  name: str
  prompt: Callable[[Any], str]
  stop: tuple[str, ...]
  restore_stop: bool = False


# --------------------------------------------------------------------------- prompts


def _triplet(item: CruxItem):
  return Triplet(program=item.code, input=item.input, output=item.output)


def cruxeval_o_prompt(item: CruxItem) -> str:
  return deduction_solver_prompt(_triplet(item))


def cruxeval_i_prompt(item: CruxItem) -> str:
  return abduction_solver_prompt(_triplet(item))


def humaneval_prompt(item: HumanEvalItem) -> str:
  return item.prompt


MATH_PROMPT = (
    "Solve the following math problem. Reason step by step, and put your final answer "
    "within \\boxed{{}}.\n\nProblem: {problem}\n\nSolution:"
)


def math_prompt(item: MathItem) -> str:
  return MATH_PROMPT.format(problem=item.problem.strip())


HUMANEVAL_STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ", "\n```")
MATH_STOP = ("\n\nProblem:", "\n\nQuestion:", "\n\n\n\n")

BENCHMARK_SPECS: dict[str, BenchmarkSpec] = {
    "cruxeval_o": BenchmarkSpec("cruxeval_o", cruxeval_o_prompt, ("</answer>",), True),
    "cruxeval_i": BenchmarkSpec("cruxeval_i", cruxeval_i_prompt, ("</answer>",), True),
    "humaneval": BenchmarkSpec("humaneval", humaneval_prompt, HUMANEVAL_STOP),
    **{name: BenchmarkSpec(name, math_prompt, MATH_STOP) for name in MATH_BENCHMARKS},
}


def finish_completion(spec: BenchmarkSpec, text: str, finish_reason: str) -> str:
  """The completion as the grader should see it (see `BenchmarkSpec.restore_stop`)."""
  if spec.restore_stop and finish_reason == "stop" and len(spec.stop) == 1:
    return text + spec.stop[0]
  return text


# --------------------------------------------------------------------------- graders


def _clip(text: Optional[str]) -> Optional[str]:
  if text is None:
    return None
  return text if len(text) <= MAX_PREDICTION_CHARS else text[:MAX_PREDICTION_CHARS] + "..."


def _flatten(items: Sequence[Item], completions: Sequence[Sequence[str]]):
  if len(items) != len(completions):
    raise ValueError(f"{len(completions)} completion lists for {len(items)} items")
  flat_items, flat_texts, sizes = [], [], []
  for item, texts in zip(items, completions):
    if isinstance(texts, str):
      raise TypeError("completions[i] must be a list of sample texts, not a str")
    sizes.append(len(texts))
    for text in texts:
      flat_items.append(item)
      flat_texts.append(text)
  return flat_items, flat_texts, sizes


def _unflatten(flat: list[Graded], sizes: list[int]) -> list[list[Graded]]:
  out, k = [], 0
  for size in sizes:
    out.append(flat[k : k + size])
    k += size
  return out


def _shared_grade_answers(pool, task_type, answers, tasks):
  """`tasks.grading.grade_answers`, with CRUXEval-I's expression inputs (lambdas, a few
  `dict(...)` calls) allowed when that function accepts `allow_expressions`; without it
  the self-play rule (literal inputs only) applies."""
  kwargs = {}
  if (
      task_type is TaskType.ABDUCTION
      and "allow_expressions" in inspect.signature(grading.grade_answers).parameters
  ):
    kwargs["allow_expressions"] = True
  return grading.grade_answers(pool, task_type, answers, tasks, **kwargs)


def grade_cruxeval(
    pool,
    items: Sequence[CruxItem],
    completions: Sequence[Sequence[str]],
    *,
    output_prediction: bool,
) -> list[list[Graded]]:
  """CRUXEval-O (`output_prediction`) or -I, through the self-play solver's parser and
  grader."""

  flat_items, texts, sizes = _flatten(items, completions)
  parse = parse_deduction_answer if output_prediction else parse_abduction_answer
  task_type = TaskType.DEDUCTION if output_prediction else TaskType.ABDUCTION
  answers = [parse(t) for t in texts]
  outcomes = _shared_grade_answers(pool, task_type, answers, [_triplet(i) for i in flat_items])
  graded = []
  for answer, outcome in zip(answers, outcomes):
    prediction = None if isinstance(answer, ParseFailure) else answer.text
    graded.append(Graded(_clip(prediction), outcome.correct, outcome.status))
  return _unflatten(graded, sizes)


def humaneval_program(item: HumanEvalItem, completion: str) -> str:
  """The module the sandbox runs: the prompt, the completion, the tests, the check call."""
  return f"{item.prompt}{completion}\n\n{item.test}\n\ncheck({item.entry_point})\n"


def grade_humaneval(
    pool, items: Sequence[HumanEvalItem], completions: Sequence[Sequence[str]]
) -> list[list[Graded]]:
  """A sample passes when its program (see `humaneval_program`) runs without error."""
  flat_items, texts, sizes = _flatten(items, completions)
  unique: dict[str, int] = {}
  for item, text in zip(flat_items, texts):
    unique.setdefault(humaneval_program(item, text), len(unique))
  results = pool.run_batch([Job(program) for program in unique]) if unique else []
  graded = []
  for item, text in zip(flat_items, texts):
    result = results[unique[humaneval_program(item, text)]]
    status = (
        "correct"
        if result.status == "ok"
        else (f"{result.status}: {result.error_type}" if result.error_type else result.status)
    )
    graded.append(Graded(_clip(text), result.status == "ok", status))
  return _unflatten(graded, sizes)


MATH_GRADERS = ("builtin", "math_verify")


def check_math_grader(math_grader: str) -> None:
  """Raises ValueError for an unknown grader name, and MathVerifyUnavailable (an
  ImportError naming the pip command) for 'math_verify' without the package."""
  if math_grader not in MATH_GRADERS:
    raise ValueError(f"math_grader must be one of {MATH_GRADERS}, got {math_grader!r}")
  if math_grader == "math_verify":
    require_math_verify()


def grade_math(
    items: Sequence[MathItem], completions: Sequence[Sequence[str]], *, math_grader: str = "builtin"
) -> list[list[Graded]]:
  """Extract each sample's final answer and compare it with the item's references, with
  the builtin grader or math-verify (`MATH_GRADERS`; see `check_math_grader`)."""
  check_math_grader(math_grader)
  flat_items, texts, sizes = _flatten(items, completions)
  if math_grader == "math_verify":
    results = math_verify_batch([(t, i.answers) for t, i in zip(texts, flat_items)])
    predictions = [extracted for _, extracted in results]
    verdicts = [ok for ok, _ in results]
  else:
    predictions = [extract_answer(t) for t in texts]
    verdicts = any_reference_matches([(p, i.answers) for p, i in zip(predictions, flat_items)])
  graded = []
  for prediction, ok in zip(predictions, verdicts):
    status = "correct" if ok else ("no_answer" if prediction is None else "wrong")
    graded.append(Graded(_clip(prediction), ok, status))
  return _unflatten(graded, sizes)


def grade_benchmark(
    name: str,
    pool,
    items: Sequence[Item],
    completions: Sequence[Sequence[str]],
    *,
    math_grader: str = "builtin",
) -> list[list[Graded]]:
  """Grades `completions[i]` (item i's sample texts) for benchmark `name`; `math_grader`
  picks the math sets' grader (see `grade_math`)."""
  if name == "cruxeval_o":
    return grade_cruxeval(pool, items, completions, output_prediction=True)
  if name == "cruxeval_i":
    return grade_cruxeval(pool, items, completions, output_prediction=False)
  if name == "humaneval":
    return grade_humaneval(pool, items, completions)
  if name in MATH_BENCHMARKS:
    return grade_math(items, completions, math_grader=math_grader)
  raise ValueError(
      f"unknown benchmark {name!r}; expected one of "
      f"{', '.join(CODE_BENCHMARKS + MATH_BENCHMARKS)}"
  )


def needs_sandbox(name: str) -> bool:
  return name in CODE_BENCHMARKS
