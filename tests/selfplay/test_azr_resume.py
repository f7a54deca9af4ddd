"""experiments.azr hands the run the checkpoint's step, then runs, logs and saves each
later step once (fakes record it; see tests/selfplay/azr_resume_worker.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_resume_restores_the_checkpoint_step_and_runs_each_later_step_once(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device
  env.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "-m", "tests.selfplay.azr_resume_worker", str(tmp_path)],
      cwd=REPO,
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  calls = json.loads((tmp_path / "calls.json").read_text())

  resumed = calls["resumed"]
  assert resumed["check_compatible"] == resumed["restore_from"] == 3
  # The restored state, buffers and step go to the run unchanged.
  assert resumed["restore"] == ["state of step 3", {"saved at": 3}, 3]
  assert "seed_buffers" not in resumed and "seed_from_dataset" not in resumed
  assert resumed["steps"] == [4, 5]
  assert resumed["saved"] == [[4, {"step": 4}], [5, {"step": 5}]]
  assert resumed["metric_steps"] == [4, 5]

  fresh = calls["fresh"]
  assert "restore" not in fresh and "restore_from" not in fresh
  assert fresh["seed_from_dataset"] and fresh["seed_buffers"]
  assert fresh["steps"] == [1, 2, 3, 4, 5]
  assert [s for s, _ in fresh["saved"]] == [1, 2, 3, 4, 5]
  assert fresh["metric_steps"] == [0, 1, 2, 3, 4, 5]  # 0: the seeding metrics
