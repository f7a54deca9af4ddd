"""Metrics: JSONL content, TensorBoard event files (read back with an independent reader),
resume truncation, and the run plot."""

from __future__ import annotations

import glob
import json
import math
import os
import struct

import jax.numpy as jnp
import numpy as np
import pytest

from absolute_zero import metrics as metrics_lib

# ------------------------------------------------------------------ an event-file reader
# TFRecord framing: uint64 length, uint32 masked crc32c(length), data, uint32 masked
# crc32c(data). CRC-32C written out here (bitwise, Castagnoli polynomial), independent of
# tensorboardX's own implementation.


def _crc32c(data: bytes) -> int:
  crc = 0xFFFFFFFF
  for byte in data:
    crc ^= byte
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
  return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
  return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def read_event_records(path: str) -> list[bytes]:
  with open(path, "rb") as f:
    blob = f.read()
  records, pos = [], 0
  while pos < len(blob):
    header = blob[pos : pos + 8]
    (length,) = struct.unpack("<Q", header)
    (length_crc,) = struct.unpack("<I", blob[pos + 8 : pos + 12])
    assert length_crc == _masked(_crc32c(header)), "bad length CRC"
    data = blob[pos + 12 : pos + 12 + length]
    (data_crc,) = struct.unpack("<I", blob[pos + 12 + length : pos + 16 + length])
    assert data_crc == _masked(_crc32c(data)), "bad data CRC"
    records.append(data)
    pos += 16 + length
  assert pos == len(blob)
  return records


def read_events(log_dir: str):
  from tensorboardX.proto.event_pb2 import Event

  events = []
  for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
    for data in read_event_records(path):
      event = Event()
      event.ParseFromString(data)
      events.append(event)
  return events


def scalar_events(events) -> dict[str, list[tuple[int, float]]]:
  out: dict[str, list[tuple[int, float]]] = {}
  for event in events:
    for value in event.summary.value:
      out.setdefault(value.tag, []).append((event.step, value.simple_value))
  return out


def read_lines(path) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


# ------------------------------------------------------------------ records


def test_make_record_flattens_converts_and_flags_nonfinite():
  record = metrics_lib.make_record(
      3,
      {
          "deduction": {"solve": {"mean_reward": np.float32(0.25), "n": np.int64(7)}},
          "abduction/propose/validity_rate": jnp.asarray(0.5),
          "learner/loss": jnp.asarray([float("nan")]),
          "buffer/deduction/size": 12,
          "ok": np.bool_(True),
          "time/update": float("inf"),
      },
      wall_time=100.0,
  )
  assert record == {
      "step": 3,
      "time": 100.0,
      "abduction/propose/validity_rate": 0.5,
      "buffer/deduction/size": 12,
      "deduction/solve/mean_reward": 0.25,
      "deduction/solve/n": 7,
      "learner/loss": None,
      "ok": True,
      "time/update": None,
      "nonfinite": ["learner/loss", "time/update"],
  }
  assert type(record["deduction/solve/n"]) is int


def test_make_record_rejects_arrays_and_reserved_names():
  with pytest.raises(ValueError, match="'a/b' must be a scalar.*\\(3,\\)"):
    metrics_lib.make_record(0, {"a": {"b": np.zeros(3)}})
  with pytest.raises(ValueError, match="reserved"):
    metrics_lib.make_record(0, {"step": 1})
  with pytest.raises(TypeError, match="'x' has unsupported type"):
    metrics_lib.make_record(0, {"x": object()})


# ------------------------------------------------------------------ writer


def test_writer_writes_jsonl_and_readable_tensorboard_events(tmp_path):
  with metrics_lib.MetricsWriter(tmp_path) as writer:
    writer.write(
        1, {"deduction/solve/mean_reward": np.float32(0.5), "buffer": {"deduction": {"size": 3}}}
    )
    writer.write(
        2,
        {
            "deduction/solve/mean_reward": 0.75,
            "learner/loss": float("nan"),
            "buffer": {"deduction": {"size": 5}},
        },
    )
    writer.flush()
    lines = read_lines(tmp_path / "metrics.jsonl")  # readable before close
  assert [line["step"] for line in lines] == [1, 2]
  assert lines[0]["deduction/solve/mean_reward"] == 0.5
  assert lines[1]["buffer/deduction/size"] == 5
  assert lines[1]["learner/loss"] is None and lines[1]["nonfinite"] == ["learner/loss"]
  assert "nonfinite" not in lines[0]
  with open(tmp_path / "metrics.jsonl") as f:
    assert "NaN" not in f.read()  # strict JSON

  scalars = scalar_events(read_events(str(tmp_path)))
  assert scalars["deduction/solve/mean_reward"] == [(1, 0.5), (2, 0.75)]
  assert scalars["buffer/deduction/size"] == [(1, 3.0), (2, 5.0)]
  ((step, value),) = scalars["learner/loss"]
  assert step == 2 and math.isnan(value)


def test_resume_drops_lines_after_the_checkpoint_and_purges_tensorboard(tmp_path):
  with metrics_lib.MetricsWriter(tmp_path) as writer:
    for step in range(0, 5):
      writer.write(step, {"r": float(step)})
  # Killed after step 4 with the last checkpoint at step 2: resume writes 3 and 4 again.
  with metrics_lib.MetricsWriter(tmp_path, resume_step=2) as writer:
    for step in (3, 4):
      writer.write(step, {"r": 10.0 * step})
  lines = read_lines(tmp_path / "metrics.jsonl")
  assert [(line["step"], line["r"]) for line in lines] == [
      (0, 0.0),
      (1, 1.0),
      (2, 2.0),
      (3, 30.0),
      (4, 40.0),
  ]
  from tensorboardX.proto.event_pb2 import SessionLog

  starts = [
      e.step
      for e in read_events(str(tmp_path))
      if e.HasField("session_log") and e.session_log.status == SessionLog.START
  ]
  assert 3 in starts  # TensorBoard drops the first session's events with step >= 3


def test_first_write_drops_stale_lines_without_being_told(tmp_path):
  """The lead's flow: open, restore, then `truncate_after` -- or nothing on a fresh run."""
  path = tmp_path / "metrics.jsonl"
  with metrics_lib.MetricsWriter(tmp_path, tensorboard=False) as writer:
    for step in range(4):
      writer.write(step, {"r": 1.0})
  with open(path, "a") as f:
    f.write('{"step": 4, "r": 1.')  # torn line of a killed run
  assert [r["step"] for r in metrics_lib.read_metrics(tmp_path)] == [0, 1, 2, 3]

  with metrics_lib.MetricsWriter(tmp_path, tensorboard=False) as writer:
    assert writer.truncate_after(1) == 3  # steps 2, 3 and the torn line
    writer.write(2, {"r": 2.0})
  assert [(r["step"], r["r"]) for r in read_lines(path)] == [(0, 1.0), (1, 1.0), (2, 2.0)]

  with metrics_lib.MetricsWriter(tmp_path, tensorboard=False) as writer:  # fresh run
    writer.write(0, {"r": 5.0})
  assert [(r["step"], r["r"]) for r in read_lines(path)] == [(0, 5.0)]


def test_steps_must_increase(tmp_path):
  with metrics_lib.MetricsWriter(tmp_path, tensorboard=False) as writer:
    writer.write(5, {"r": 1})
    with pytest.raises(ValueError, match="step 5 is not after the last written step 5"):
      writer.write(5, {"r": 1})


def test_disabled_writer_writes_nothing(tmp_path):
  with metrics_lib.MetricsWriter(tmp_path / "logs", enabled=False) as writer:
    assert writer.write(1, {"r": 1.0}) is None
  assert not (tmp_path / "logs").exists()


# ------------------------------------------------------------------ plots


def _synthetic_run(log_dir):
  rng = np.random.default_rng(0)
  with metrics_lib.MetricsWriter(log_dir, tensorboard=False) as writer:
    for step in range(1, 13):
      m = {}
      for task in ("deduction", "abduction", "induction"):
        for role in ("propose", "solve"):
          m[f"{task}/{role}/reward_mean"] = float(rng.uniform())
          m[f"{task}/{role}/format_failure_rate"] = float(rng.uniform(0, 0.2))
        m[f"{task}/propose/validity_rate"] = float(rng.uniform())
        m[f"{task}/solve/solve_rate"] = float(rng.uniform())
        m[f"buffer/{task}/size"] = 10 + step * 3
      m["throughput/tokens_per_s"] = 40.0 + step
      m["time/generation"], m["time/sandbox"], m["time/update"] = 5.0, 1.0, 2.0
      m["learner/loss"] = float("nan") if step == 5 else 0.1 * step
      writer.write(step, m)


def test_group_series_groups_by_metric_and_namespace():
  from absolute_zero.metrics_plot import group_series

  groups = group_series(
      [
          {
              "step": 1,
              "time": 0.0,
              "deduction/solve/reward_mean": 0.5,
              "abduction/solve/reward_mean": 0.25,
              "buffer/deduction/size": 3,
              "time/update": 1.0,
              "learner/loss": None,
              "nonfinite": ["learner/loss"],
              "note": "x",
          },
      ]
  )
  assert groups["reward_mean"] == {"deduction/solve": [(1, 0.5)], "abduction/solve": [(1, 0.25)]}
  assert groups["buffer"] == {"deduction/size": [(1, 3.0)]}
  assert groups["time"] == {"update": [(1, 1.0)]}
  assert math.isnan(groups["learner"]["loss"][0][1])
  assert "note" not in groups and "nonfinite" not in groups


def test_plot_run_writes_png_files(tmp_path):
  from absolute_zero.metrics_plot import plot_run

  _synthetic_run(tmp_path)
  written = plot_run(str(tmp_path), str(tmp_path / "out" / "run.png"), per_group=True)
  assert written[0] == str(tmp_path / "out" / "run.png")
  names = {os.path.basename(p) for p in written[1:]}
  assert {
      "run_reward_mean.png",
      "run_validity_rate.png",
      "run_solve_rate.png",
      "run_format_failure_rate.png",
      "run_buffer.png",
      "run_time.png",
      "run_throughput.png",
      "run_learner.png",
  } == names
  for path in written:
    with open(path, "rb") as f:
      head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])  # IHDR
    assert width > 100 and height > 100
    assert os.path.getsize(path) > 5000


def test_plot_run_errors(tmp_path):
  from absolute_zero.metrics_plot import plot_run

  with pytest.raises(FileNotFoundError, match="no metrics file"):
    plot_run(str(tmp_path))


# ------------------------------------------------------------------ who writes: process env


@pytest.mark.parametrize(
    "env, kind",
    [
        ({}, None),
        (
            {"JAX_COORDINATOR_ADDRESS": "h:1234", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"},
            "explicit",
        ),
        ({"JAX_COORDINATOR_ADDRESS": "h:1234", "JAX_NUM_PROCESSES": "2"}, None),
        ({"AZR_DISTRIBUTED": "1"}, "requested"),
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}, None),  # the batch shell, not an srun step
        ({"SLURM_JOB_ID": "7", "SLURM_STEP_NUM_TASKS": "1"}, None),
        ({"SLURM_JOB_ID": "7", "SLURM_STEP_NUM_TASKS": "2"}, "slurm"),
        ({"TPU_WORKER_HOSTNAMES": "w0"}, None),
        ({"TPU_WORKER_HOSTNAMES": "w0,w1,w2,w3"}, "tpu"),
    ],
)
def test_multi_process_env_detection(env, kind):
  from absolute_zero import distributed

  assert distributed.multi_process_env(env) == kind


def test_single_process_run_does_not_initialize_and_is_primary():
  from absolute_zero import distributed

  assert distributed.maybe_initialize_distributed({}) is False
  assert distributed.is_primary()
  with pytest.raises(ValueError, match="JAX_PROCESS_ID=2 is outside \\[0, 2\\)"):
    distributed.maybe_initialize_distributed(
        {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"}
    )
