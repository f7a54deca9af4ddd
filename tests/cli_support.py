"""Shared helpers of the command-line subprocess tests (azr, export, learning_check)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def one_error_line(proc: subprocess.CompletedProcess, prog: str) -> str:
  """The single `prog: error:` line of a bad-input run: exit 2, no traceback, no help dump."""
  assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith(f"{prog}: error:")]
  assert len(errors) == 1, proc.stderr[-3000:]
  assert "USAGE" not in proc.stderr and "--helpfull:" not in proc.stderr
  return errors[0]


def tokenizer_workdir(tmp_path_factory) -> Path:
  """A fresh working directory holding tok/tokenizer.json (500 tokens: fits tiny-llama)."""
  from tests.selfplay.teaching import proposer_prompts, train_bpe

  cwd = tmp_path_factory.mktemp("cwd")
  (cwd / "tok").mkdir()
  train_bpe(proposer_prompts(), str(cwd / "tok" / "tokenizer.json"), 500)
  return cwd
