"""experiments.export as users type it: a run's checkpoint by relative path, --step and
--dtype, and every bad input as one line with exit status 2.

The run checkpoint is written directly with RunCheckpointer (two steps with different
weights, so picking the step is observable); the export is read back with our importer
(transformers' view of exports is tests/models/test_export.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import ml_dtypes
import numpy as np
import pytest

from tests.cli_support import one_error_line, tokenizer_workdir

REPO = Path(__file__).resolve().parents[1]


def _run(cwd, *args) -> subprocess.CompletedProcess:
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device
  env.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
  return subprocess.run(
      [sys.executable, "-m", "experiments.export", *args],
      cwd=cwd,
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
  )


def _error_line(proc: subprocess.CompletedProcess) -> str:
  return one_error_line(proc, "export")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
  """run/checkpoints with steps 1 and 2 of tiny-llama (a tokenizer.json in tok/)."""
  from absolute_zero import learner, sharding
  from absolute_zero.checkpointing import RunCheckpointer, to_jsonable
  from absolute_zero.models import get_config, init_params

  cwd = tokenizer_workdir(tmp_path_factory)
  config = get_config("tiny-llama")
  lc = learner.LearnerConfig(learning_rate=1e-3)
  saved = to_jsonable(
      {
          "model": dataclasses.asdict(config),
          "learner": dataclasses.asdict(lc),
          "model_source": "tiny-llama",
          "tokenizer_source": str(cwd / "tok" / "tokenizer.json"),
      }
  )
  with RunCheckpointer(cwd / "run" / "checkpoints", async_save=False) as ckpt:
    shapes = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
    for step in (1, 2):  # numpy draws: flax's init runs the model op by op (slow)
      rng = np.random.default_rng(step)
      params = jax.tree.map(lambda x: rng.normal(0, 0.05, x.shape).astype(x.dtype), shapes)
      ckpt.save(
          step,
          learner.init_train_state(params, lc, sharding.single_device_mesh(), config),
          None,
          {},
          saved,
          {},
      )
      np.save(cwd / f"up_proj_{step}.npy", np.asarray(params["layers"]["mlp"]["up_proj"]))
  return cwd


def test_run_step_and_dtype_by_relative_path(workdir):
  from absolute_zero.models.hf_import import load_hf_checkpoint

  proc = _run(workdir, "--checkpoint=run", "--step=1", "--dtype=bfloat16", "--output=hf")
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = workdir / "hf"
  assert sorted(os.listdir(out)) == sorted(Path(p).name for p in proc.stdout.split())
  assert {
      "config.json",
      "model.safetensors",
      "generation_config.json",
      "tokenizer.json",
      "tokenizer_config.json",
  } <= set(os.listdir(out))
  assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"
  _, params = load_hf_checkpoint(out)
  want = np.load(workdir / "up_proj_1.npy").astype(ml_dtypes.bfloat16)  # step 1, not 2
  np.testing.assert_array_equal(np.asarray(params["layers"]["mlp"]["up_proj"]), want)
  assert (out / "tokenizer.json").read_bytes() == (workdir / "tok" / "tokenizer.json").read_bytes()

  # Non-empty output: refused, then replaced with --overwrite (latest step, float32; the
  # tokenizer named with --tokenizer instead of the run's record).
  line = _error_line(_run(workdir, "--checkpoint=run", "--output=hf"))
  assert "--output=hf" in line and "--overwrite" in line
  (out / "model-00001-of-00002.safetensors").write_bytes(b"stale")  # an older sharded export
  (out / "notes.txt").write_text("kept")
  proc = _run(
      workdir, "--checkpoint=run/checkpoints", "--output=hf", "--overwrite", "--tokenizer=tok"
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert not (out / "model-00001-of-00002.safetensors").exists()
  assert (out / "notes.txt").read_text() == "kept"
  _, params = load_hf_checkpoint(out)
  np.testing.assert_array_equal(
      np.asarray(params["layers"]["mlp"]["up_proj"]), np.load(workdir / "up_proj_2.npy")
  )


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--output=x",), "--checkpoint is required"),
        (("--checkpoint=run",), "--output is required"),
        (("--checkpoint=nowhere/run", "--output=x"), "--checkpoint=nowhere/run: no such file"),
        (("--checkpoint=run", "--step=7", "--output=x"), "--step=7: no checkpoint for step 7"),
        (("--checkpoint=run", "--step=-1", "--output=x"), "--step=-1 must be >= 0"),
        (("--checkpoint=gemma3-270m", "--step=1", "--output=x"), "not a self-play run"),
        (("--checkpoint=run", "--output=afile/x"), "afile/x is not writable"),
        (
            ("--checkpoint=run", "--output=x", "--tokenizer=tok/missing.json"),
            "--tokenizer=tok/missing.json: no such file",
        ),
        (("--checkpoint=run", "--output=x", "--dtype=int8"), "--dtype"),
        (("--checkpoint=run/checkpoints", "--output=run/checkpoints/x"), "is inside"),
    ],
)
def test_bad_input(workdir, args, expected):
  (workdir / "afile").write_text("a file, not a directory")
  line = _error_line(_run(workdir, *args))
  assert expected in line, line
  assert not (workdir / "x").exists()  # bad input writes nothing


def test_run_whose_tokenizer_is_gone(workdir, tmp_path):
  """The run recorded tok/tokenizer.json; once it is gone, the error names --tokenizer
  (which test_run_step_and_dtype_by_relative_path uses)."""
  recorded = workdir / "tok" / "tokenizer.json"
  recorded.rename(tmp_path / "tokenizer.json")
  try:
    line = _error_line(_run(workdir, "--checkpoint=run", "--output=x"))
  finally:
    (tmp_path / "tokenizer.json").rename(recorded)
  assert "no usable tokenizer" in line and "--tokenizer" in line
