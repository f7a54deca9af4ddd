"""Evaluation during training (--eval_every) and W&B tracking in experiments.azr.

A tiny random model self-plays for one step with --eval_every=1 and --eval_before_training,
then resumes to step 2 (slow, like the main job's test in test_cli_azr.py: two self-play
sessions and an evaluation): the scores must be in metrics.jsonl and TensorBoard at steps
0, 1 and 2 (the resumed run keeps the schedule), in the plot's groups, and equal to what
experiments/evaluate.py finds on the step-2 checkpoint reloaded in a separate process (so
the in-process evaluation scored the current parameters).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.test_cli_azr import TINY, _error_line, _records, _run, workdir  # noqa: F401

EVAL = (
    "--eval_every=1",
    "--eval_benchmarks=cruxeval_o,gsm8k",
    "--eval_limit=2",
    "--eval_max_new_tokens=6",
)
KEYS = ("eval/cruxeval_o/score", "eval/gsm8k/score")


@pytest.mark.slow
def test_eval_every_step_resumed_on_schedule(workdir):  # noqa: F811
  from absolute_zero.metrics_plot import group_series
  from tests.test_metrics import read_events, scalar_events

  run = workdir / "evalrun"
  first = _run(
      workdir,
      "experiments.azr",
      *TINY,
      *EVAL,
      "--eval_before_training",
      "--log_dir=evalrun",
      "--steps=1",
  )
  assert first.returncode == 0, first.stderr[-3000:]
  assert "step 1 eval: cruxeval_o" in first.stderr
  records = _records(run / "metrics.jsonl")
  assert [r["step"] for r in records] == [0, 1]
  assert all(key in r for key in KEYS for r in records), records

  resumed = _run(workdir, "experiments.azr", *TINY, *EVAL, "--log_dir=evalrun", "--steps=2")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "resuming from" in resumed.stderr
  records = _records(run / "metrics.jsonl")
  assert [r["step"] for r in records] == [0, 1, 2]
  for record in records:
    report = json.loads((run / "eval" / f"step_{record['step']}.json").read_text())
    assert report["model"]["step"] == record["step"]
    for key in KEYS:
      section = report["benchmarks"][key.split("/")[1]]
      assert section["n"] == 2
      assert record[key] == section["score"]
      assert section["score"] == sum(r["correct"] for r in section["records"]) / 2
    assert record["time/eval_s"] > 0

  scalars = scalar_events(read_events(str(run)))
  for key in KEYS:
    assert sorted(step for step, _ in scalars[key]) == [0, 1, 2], scalars[key]
  groups = group_series(records)
  assert sorted(groups["eval"]) == ["cruxeval_o/score", "gsm8k/score"]
  assert [step for step, _ in groups["eval"]["cruxeval_o/score"]] == [0, 1, 2]

  # The same benchmarks on the step-2 checkpoint, reloaded by experiments/evaluate.py.
  reloaded = _run(
      workdir,
      "experiments.evaluate",
      "--model=evalrun",
      "--benchmarks=cruxeval_o,gsm8k",
      "--limit=2",
      "--max_new_tokens=6",
      "--output=reloaded.json",
      "--sandbox_workers=2",
  )
  assert reloaded.returncode == 0, reloaded.stderr[-3000:]
  theirs = json.loads((workdir / "reloaded.json").read_text())["benchmarks"]
  ours = json.loads((run / "eval" / "step_2.json").read_text())["benchmarks"]
  for name in ("cruxeval_o", "gsm8k"):
    assert [(r["prediction"], r["correct"]) for r in ours[name]["records"]] == [
        (r["prediction"], r["correct"]) for r in theirs[name]["records"]
    ], name


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--eval_every=-1",), "--eval_every=-1 must be >= 0"),
        (("--eval_benchmarks=cruxeval_o,mbpp",), "--eval_benchmarks: unknown 'mbpp'"),
    ],
)
def test_bad_eval_and_tracking_flags(workdir, args, expected):  # noqa: F811
  line = _error_line(_run(workdir, "experiments.azr", "--log_dir=bad", *args, timeout=120))
  assert expected in line, line


def test_wandb_project_without_wandb_names_the_extra(workdir):  # noqa: F811
  if importlib.util.find_spec("wandb") is not None:
    pytest.skip("wandb is installed")
  line = _error_line(
      _run(workdir, "experiments.azr", "--log_dir=bad", "--wandb_project=azr", timeout=120)
  )
  assert "--wandb_project" in line and "absolute-zero[wandb]" in line
  assert not (workdir / "bad").exists()


def test_offline_wandb_run_resumes_by_id(tmp_path):
  """WandbTracker, offline: one run id per run directory, kept across restarts; steps W&B
  already has are not logged again; the records' numbers reach the offline run files."""
  pytest.importorskip("wandb")
  from absolute_zero.wandb_tracker import RUN_FILE, WandbTracker

  log_dir = str(tmp_path / "run")
  tracker = WandbTracker(log_dir, "azr-test", mode="offline", config={"seed": 3})
  assert not tracker.resumed
  assert tracker.log({"step": 0, "time": 1.0, "eval/cruxeval_o/score": 0.25, "note": "x"})
  assert tracker.log({"step": 1, "time": 2.0, "learner/loss": None, "nonfinite": ["learner/loss"]})
  tracker.finish()
  run_id = tracker.run_id
  assert json.loads((tmp_path / "run" / RUN_FILE).read_text())["id"] == run_id

  again = WandbTracker(log_dir, "azr-test", mode="offline")
  assert again.resumed and again.run_id == run_id
  assert not again.log({"step": 1, "time": 3.0, "learner/loss": 0.5})  # W&B has step 1
  assert again.log({"step": 2, "time": 4.0, "learner/loss": 0.5})
  again.finish()
  offline = sorted((tmp_path / "run" / "wandb").glob(f"offline-run-*-{run_id}*"))
  assert len(offline) == 2, list((tmp_path / "run" / "wandb").iterdir())
  history = _offline_history(offline[0]) + _offline_history(offline[1])
  assert [(h["_step"], h.get("eval/cruxeval_o/score")) for h in history] == [
      (0, 0.25),
      (1, None),
      (2, None),
  ]
  assert history[2]["learner/loss"] == 0.5


def _offline_history(run_dir: Path) -> list[dict]:
  """The history rows of an offline W&B run's .wandb file, read here: W&B's record log
  (':W&B' header, 32 KiB blocks of records with a 7-byte header: crc32, length, type
  full/first/middle/last), each record a wandb_internal_pb2.Record."""
  import struct
  import zlib

  from wandb.proto import wandb_internal_pb2

  (path,) = run_dir.glob("*.wandb")
  data = path.read_bytes()
  assert data[:4] == b":W&B"
  block, pos, pending, rows = 32768, 7, b"", []
  while pos + 7 <= len(data):
    if block - pos % block < 7:  # a block's tail too short for a header is padding
      pos += block - pos % block
      continue
    crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
    chunk = data[pos + 7 : pos + 7 + length]
    pos += 7 + length
    if kind == 0:
      break
    assert crc == zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF
    pending = chunk if kind in (1, 2) else pending + chunk
    if kind in (1, 4):
      record = wandb_internal_pb2.Record()
      record.ParseFromString(pending)
      if record.WhichOneof("record_type") == "history":
        rows.append(
            {
                item.key or "/".join(item.nested_key): json.loads(item.value_json)
                for item in record.history.item
            }
        )
  return rows
