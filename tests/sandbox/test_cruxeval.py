"""All 800 CRUXEval items through the deduction and abduction graders."""

import json
import os

import pytest

from absolute_zero.tasks.grading import grade_abduction, grade_deduction
from absolute_zero.tasks.validators import execute
from tests.sandbox.conftest import data_dir

CRUXEVAL = os.path.join(data_dir(), "cruxeval", "cruxeval.jsonl")


@pytest.fixture(scope="module")
def items():
  if not os.path.exists(CRUXEVAL):
    pytest.skip(f"CRUXEval data not found at {CRUXEVAL} (set AZR_DATA_DIR)")
  with open(CRUXEVAL) as f:
    return [json.loads(line) for line in f]


def test_deduction_reproduces_every_published_output(pool, items):
  assert len(items) == 800
  results = execute(pool, [(it["code"], it["input"]) for it in items])
  wrong = [
      (it["id"], r)
      for it, r in zip(items, results)
      if not (r.status == "ok" and grade_deduction(it["output"], r.output))
  ]
  assert wrong == []


def test_abduction_accepts_every_published_input(pool, items):
  ok = grade_abduction(
      pool, [(it["code"], it["input"], it["output"]) for it in items], allow_expressions=True
  )
  assert [it["id"] for it, good in zip(items, ok) if not good] == []
  # Literal-only answers (the self-play default) cover all but the lambda/expression inputs.
  strict = grade_abduction(pool, [(it["code"], it["input"], it["output"]) for it in items])
  assert sum(strict) >= 780
