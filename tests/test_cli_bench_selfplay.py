"""experiments/bench_selfplay.py: bad input is one line and exit 2, before any run starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_support import one_error_line

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--runs=serial,fast",), "--runs: unknown 'fast'; choose from serial, overlap"),
        (("--steps=0",), "--steps=0 must be >= 1"),
        (("--batch_size=abc",), "--batch_size=abc"),
        (("--worker=parallel",), "--worker: unknown 'parallel'"),
    ],
)
def test_bad_input(tmp_path, args, expected):
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, str(REPO / "experiments" / "bench_selfplay.py"), *args],
      cwd=tmp_path,
      env=env,
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert expected in one_error_line(proc, "bench_selfplay")
