"""Optional Weights & Biases logging of a run's metrics, beside metrics.jsonl and TensorBoard.

`wandb` is an optional extra (`pip install 'absolute-zero[wandb]'`); nothing else imports
it. `WandbTracker(log_dir, project)` starts (or continues) one W&B run per run directory:
the run id is kept in `<log_dir>/wandb_run.json`, so rerunning the same command after a
stop resumes the same W&B run, and W&B's own files go to `<log_dir>/wandb/`. The default
mode is offline (no network; `wandb sync <log_dir>/wandb/offline-run-*` uploads later).

Each `log(record)` takes a record `MetricsWriter.write` returned (`{"step", "time", key:
value, ...}`) and logs its numbers at that step. W&B cannot take back logged steps, so a
run resumed from a checkpoint older than W&B's last step does not log those steps again
(the JSONL holds the rerun's values; self-play resumes exactly, so they agree). The last
step logged is kept in wandb_run.json for that.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
from typing import Any, Mapping

RUN_FILE = "wandb_run.json"
_SKIPPED = ("step", "time", "nonfinite")


def available() -> bool:
  """Whether the wandb package is installed (without importing it)."""
  return importlib.util.find_spec("wandb") is not None


class WandbTracker:
  """One W&B run per run directory, resumed by id.

  Args:
    log_dir: the run directory (created if needed).
    project: the W&B project.
    mode: 'offline', 'online' or 'disabled' (W&B's own modes).
    config: the run config (JSON-able dict), shown in W&B's config panel.
    name: the W&B run name (default: the run directory's name).

  Raises:
    ImportError: wandb is not installed (message names the extra).
  """

  def __init__(
      self,
      log_dir: str,
      project: str,
      *,
      mode: str = "offline",
      config: Mapping[str, Any] | None = None,
      name: str | None = None,
  ):
    try:
      import wandb
    except ImportError as e:
      raise ImportError(
          "W&B logging needs the wandb package: pip install " "'absolute-zero[wandb]'"
      ) from e
    os.makedirs(log_dir, exist_ok=True)
    self.state_path = os.path.join(log_dir, RUN_FILE)
    state = self._read_state()
    self.run_id = state.get("id") or secrets.token_hex(6)  # W&B ids: [a-z0-9], <= 64
    self.resumed = "id" in state
    self.last_step: int | None = state.get("last_step")
    self.project = project
    self._run = wandb.init(
        project=project,
        id=self.run_id,
        resume="allow",
        dir=log_dir,
        mode=mode,
        name=name or os.path.basename(os.path.abspath(log_dir)),
        config=dict(config or {}),
        settings=wandb.Settings(console="off", silent=True),
    )
    self._write_state()

  def _read_state(self) -> dict:
    try:
      with open(self.state_path, encoding="utf-8") as f:
        state = json.load(f)
    except FileNotFoundError:
      return {}
    except (OSError, json.JSONDecodeError) as e:
      raise ValueError(
          f"{self.state_path}: cannot be read ({e}); delete it to start a new " "W&B run"
      ) from None
    return state if isinstance(state, dict) else {}

  def _write_state(self) -> None:
    tmp = self.state_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump({"id": self.run_id, "project": self.project, "last_step": self.last_step}, f)
    os.replace(tmp, self.state_path)

  def log(self, record: Mapping[str, Any]) -> bool:
    """Logs a metrics record's numbers at its step; False if W&B already has that step.

    Non-finite values (null in the JSONL) are logged as NaN; strings are left out.
    """
    step = int(record["step"])
    if self.last_step is not None and step <= self.last_step:
      return False
    values = {}
    for key, value in record.items():
      if key in _SKIPPED or isinstance(value, str):
        continue
      values[key] = float("nan") if value is None else value
    self._run.log(values, step=step)
    self.last_step = step
    self._write_state()
    return True

  def finish(self) -> None:
    """Closes the W&B run and stops wandb's service process, which writes the run's
    files asynchronously: when this returns they are complete on disk (measured with
    wandb 0.31: after `finish()` alone, a second run's offline file was sometimes still
    empty)."""
    import wandb  # optional package (the wandb extra)

    self._run.finish()
    wandb.teardown()
