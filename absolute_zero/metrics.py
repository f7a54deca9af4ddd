"""What happened in a run: per-step metrics as JSONL and TensorBoard.

Key convention (flat, '/'-separated; `metrics_plot.py` groups by it). The names a
self-play run writes are defined once, in `absolute_zero/selfplay/metric_names.py`:
  `{task}/{role}/{metric}`   per (task type, role), e.g. `deduction/solve/reward_mean`,
                             `abduction/propose/validity_rate`, `induction/solve/solve_rate`,
                             `deduction/propose/solve_rate_of_valid`,
                             `deduction/propose/format_failure_rate`,
                             `deduction/solve/advantage_mean`, `.../advantage_std`,
                             `.../response_tokens_mean`, `.../count`; proposers' task
                             diversity, e.g. `deduction/propose/distinct_programs`;
  `types/{task}/{side}/{t}`  value-type shares of the proposals' inputs and outputs;
  `buffer/{task}`            buffer sizes (`buffer/{task}/distinct_programs` too);
  `time/{phase}_s`           seconds per phase (generation, sandbox, other_host, update, step);
  `throughput/{name}`        e.g. `throughput/generation_tokens_per_s`;
  `learner/{name}`           loss, grad norm, ...;
  `seed/{name}`              the seeding rounds (step 0): rounds, proposals, accepted, seconds.
Nested dicts are flattened into this form (`{"deduction": {"solve": {...}}}`).

One JSON object per line in `metrics.jsonl`: `{"step": int, "time": unix seconds, <key>:
value, ...}`; a non-finite value is written as `null` and its key listed under
`"nonfinite"`. Only the primary process (JAX process 0) writes anything.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Any, Mapping, TextIO

import numpy as np

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "plot.png"  # the run's plot, in the run directory (azr, plot_run, launch/)
NONFINITE_KEY = "nonfinite"
_RESERVED = ("step", "time", NONFINITE_KEY)

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ pure helpers


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """{'a': {'b': 1}} -> {'a/b': 1}; keys must be strings."""
  flat: dict[str, Any] = {}
  for key, value in metrics.items():
    if not isinstance(key, str) or not key:
      raise ValueError(f"metric keys must be non-empty strings, got {key!r}")
    name = f"{prefix}/{key}" if prefix else key
    if isinstance(value, Mapping):
      flat.update(flatten_metrics(value, name))
    else:
      flat[name] = value
  return flat


def to_scalar(name: str, value: Any) -> float | int | bool | str:
  """A Python scalar for a metric value (numpy/jax scalars and 0-d or size-1 arrays too)."""
  if isinstance(value, (bool, int, float, str)):
    return value
  if isinstance(value, (np.generic,)):
    return value.item()
  if hasattr(value, "shape") and hasattr(value, "dtype"):  # numpy or jax array
    array = np.asarray(value)
    if array.size != 1:
      raise ValueError(f"metric {name!r} must be a scalar, got an array of shape " f"{array.shape}")
    return array.reshape(()).item()
  raise TypeError(f"metric {name!r} has unsupported type {type(value).__name__}")


def make_record(
    step: int, metrics: Mapping[str, Any], wall_time: float | None = None
) -> dict[str, Any]:
  """The JSON object of one step: flat keys, Python scalars, non-finite -> null + listed."""
  flat = flatten_metrics(metrics)
  record: dict[str, Any] = {
      "step": int(step),
      "time": time.time() if wall_time is None else wall_time,
  }
  nonfinite = []
  for name in sorted(flat):
    if name in _RESERVED:
      raise ValueError(f"metric name {name!r} is reserved")
    value = to_scalar(name, flat[name])
    if isinstance(value, float) and not math.isfinite(value):
      nonfinite.append(name)
      value = None
    record[name] = value
  if nonfinite:
    record[NONFINITE_KEY] = nonfinite
  return record


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
  """Records of a metrics.jsonl (a run directory or the file); a torn last line is skipped."""
  path = os.fspath(path)
  if os.path.isdir(path):
    path = os.path.join(path, METRICS_FILE)
  records = []
  with open(path, encoding="utf-8") as f:
    lines = f.read().split("\n")
  for i, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      if i == len(lines) - 1:  # the run died mid-write: ignore the torn tail
        continue
      raise ValueError(f"{path}:{i + 1} is not a JSON line") from None
  return records


def truncate_after(path: str | os.PathLike, last_step: int | None) -> int:
  """Keeps only records with step <= last_step (None: none); returns how many were dropped.

  Rewrites via a temporary file + rename, so a crash here never loses the kept lines.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    return 0
  with open(path, encoding="utf-8") as f:
    lines = [line for line in f.read().split("\n") if line.strip()]
  kept = []
  for line in lines:
    try:
      step = json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
      continue  # a torn line from a killed run
    if last_step is not None and step <= last_step:
      kept.append(line)
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write("".join(line + "\n" for line in kept))
  os.replace(tmp, path)
  return len(lines) - len(kept)


def _is_primary() -> bool:
  # Imported here: distributed needs JAX, and metrics_plot reads metrics without it.
  from absolute_zero.distributed import is_primary

  return is_primary()


# ------------------------------------------------------------------ writer


class MetricsWriter:
  """Per-step metrics to `log_dir/metrics.jsonl` and TensorBoard event files.

  Resume-safe: a log holds one run's history in step order, so anything already in the
  log at or after the first step this writer writes is stale (from a run that died after
  its last checkpoint, or from an earlier run in the same directory). The first `write`
  drops those JSONL lines and makes TensorBoard purge those events (`purge_step`).
  `truncate_after(step)` (or `resume_step=`) does the same explicitly, e.g. right after
  restoring checkpoint `step`.
  `enabled=False`, or not being JAX process 0, makes every call a no-op.
  """

  def __init__(
      self,
      log_dir: str | os.PathLike,
      *,
      enabled: bool = True,
      resume_step: int | None = None,
      tensorboard: bool = True,
  ):
    self.log_dir = os.fspath(log_dir)
    self.enabled = bool(enabled) and _is_primary()
    self.path = os.path.join(self.log_dir, METRICS_FILE)
    self.use_tensorboard = tensorboard
    self.last_step: int | None = None  # last step written by this writer
    self._file: TextIO | None = None
    self._tb = None
    self._purge_step: int | None = None  # TensorBoard purge point, applied on first write
    if not self.enabled:
      return
    try:
      os.makedirs(self.log_dir, exist_ok=True)
      self._file = open(self.path, "a", encoding="utf-8")
    except OSError as e:
      raise OSError(f"cannot write metrics to {self.log_dir!r}: {e.strerror or e}") from None
    if resume_step is not None:
      self.truncate_after(resume_step)

  def truncate_after(self, step: int | None) -> int:
    """Drops logged steps > `step` (None: all); returns how many JSONL lines were dropped."""
    if not self.enabled:
      return 0
    if self._file is not None:
      self._file.close()
    dropped = truncate_after(self.path, step)
    self._file = open(self.path, "a", encoding="utf-8")
    purge = 0 if step is None else step + 1
    self._purge_step = purge if self._purge_step is None else min(self._purge_step, purge)
    if self.last_step is not None and (step is None or self.last_step > step):
      self.last_step = step
    if dropped:
      log.info("dropped %d metric lines after step %s from %s", dropped, step, self.path)
    return dropped

  def write(self, step: int, metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """Writes one step's metrics (nested dicts flattened); returns the JSON record."""
    if not self.enabled:
      return None
    step = int(step)
    if self.last_step is not None and step <= self.last_step:
      raise ValueError(
          f"metrics step {step} is not after the last written step " f"{self.last_step}"
      )
    record = make_record(step, metrics)
    if self.last_step is None and self._tb is None:
      self._start(step)
    if NONFINITE_KEY in record:
      log.warning("step %d: non-finite metrics %s", step, ", ".join(record[NONFINITE_KEY]))
    assert self._file is not None
    # One whole line per write, pushed to the OS at once: a killed run leaves complete
    # lines (at worst a torn last one, which readers and truncate_after skip).
    self._file.write(json.dumps(record, allow_nan=False) + "\n")
    self._file.flush()
    if self._tb is not None:
      for name, value in record.items():
        if name in _RESERVED or isinstance(value, str):
          continue
        self._tb.add_scalar(
            name,
            float("nan") if value is None else float(value),
            global_step=step,
            walltime=record["time"],
        )
    self.last_step = step
    return record

  def _start(self, first_step: int) -> None:
    """First write: drop stale lines at/after `first_step`; open TensorBoard with a purge."""
    self.truncate_after(first_step - 1)
    if self.use_tensorboard:
      from tensorboardX import SummaryWriter  # heavy (protobuf); only with TensorBoard on
      # TensorBoard hides events of earlier sessions with step >= purge_step.
      self._tb = SummaryWriter(self.log_dir, purge_step=self._purge_step)

  def flush(self) -> None:
    """Pushes buffered lines and events to disk and syncs the JSONL (call at checkpoints)."""
    if self._file is not None:
      self._file.flush()
      os.fsync(self._file.fileno())
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._file is not None:
      self.flush()
      self._file.close()
      self._file = None
    if self._tb is not None:
      self._tb.close()
      self._tb = None

  def __enter__(self) -> "MetricsWriter":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
