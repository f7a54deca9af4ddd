"""Multi-process self-play for real: two JAX processes on CPU, one job, one mesh.

Two subprocesses (tests/selfplay/multiprocess_worker.py), 2 fake CPU devices each, join one
JAX job through `distributed.maybe_initialize_distributed` (gloo CPU collectives) and run
the same self-play program on a (data=2, fsdp=2, tensor=1) mesh over all 4 devices, with
the real sandbox; a third runs the same config as one process with 4 devices. Checked:
  * both processes finish, with identical params (bit for bit) and buffers;
  * each ran only its share of the sandbox jobs, and the two shares add up to the jobs of
    the one-process run;
  * the result equals the one-process run: buffers equal, params within a tolerance;
  * Orbax saves and restores the sharded state collectively.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("tokenizers")

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "multiprocess_worker.py")
TIMEOUT_S = 240
STEPS = 2


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices: int) -> dict:
  env = {
      k: v
      for k, v in os.environ.items()
      if not k.startswith(
          (
              "JAX_COORDINATOR",
              "JAX_NUM_PROCESSES",
              "JAX_PROCESS_ID",
              "AZR_DISTRIBUTED",
              "SLURM_",
              "TPU_WORKER",
          )
      )
  }
  # Optimisation level 0: compilation is most of the time here; same flags for all runs.
  env["XLA_FLAGS"] = (
      f"--xla_force_host_platform_device_count={devices} " "--xla_backend_optimization_level=0"
  )
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = os.pathsep.join(
      p for p in (os.path.dirname(os.path.dirname(HERE)), env.get("PYTHONPATH")) if p
  )
  return env


def _tail(path: str, chars: int = 3000) -> str:
  try:
    with open(path, errors="replace") as f:
      return f.read()[-chars:]
  except OSError:
    return "<no stderr file>"


def _failure(procs: dict) -> str | None:
  """Which processes exited with an error (None while all are fine or running)."""
  bad = {n: p.poll() for n, p in procs.items() if p.poll() not in (None, 0)}
  return f"exit status {bad}" if bad else None


def _run_workers(commands: dict[str, tuple[list[str], dict]], log_dir: str) -> None:
  """Starts every command at once and waits for all; on a failure or a timeout kills them
  all and fails with the tail of each one's output."""
  procs, logs, failed = {}, [], None
  try:
    for name, (cmd, env) in commands.items():
      logs.append(open(os.path.join(log_dir, f"{name}.stderr"), "w"))
      procs[name] = subprocess.Popen(cmd, env=env, stdout=logs[-1], stderr=subprocess.STDOUT)
    deadline = time.monotonic() + TIMEOUT_S
    while failed is None and any(p.poll() is None for p in procs.values()):
      failed = _failure(procs)
      if failed is None and time.monotonic() > deadline:
        failed = f"timed out after {TIMEOUT_S}s"
      time.sleep(0.2)
    failed = failed or _failure(procs)
  finally:
    for p in procs.values():
      if p.poll() is None:
        p.kill()
        p.wait()
    for log in logs:
      log.close()
  if failed:
    tails = "\n".join(
        f"--- {n} (exit {p.returncode}) ---\n" f"{_tail(os.path.join(log_dir, f'{n}.stderr'))}"
        for n, p in procs.items()
    )
    pytest.fail(f"multi-process self-play failed: {failed}\n{tails}")


def _params(path: str) -> list[np.ndarray]:
  with np.load(path + ".params.npz") as data:
    return [data[f"leaf{i}"] for i in range(len(data.files))]


def _finite(metrics: dict) -> bool:
  return all(math.isfinite(v) for v in metrics.values() if isinstance(v, (int, float)))


def _comparable(metrics: dict) -> dict:
  """Metrics that do not measure time."""
  return {
      k: v for k, v in metrics.items() if not k.startswith("time/") and not k.endswith("_per_s")
  }


@pytest.mark.slow
def test_two_processes_match_each_other_and_one_process(tmp_path):
  from tests.selfplay import multiprocess_worker as worker

  start = time.perf_counter()
  assets = tmp_path / "assets"
  assets.mkdir()
  worker.teach_tiny_model(str(assets))

  port = _free_port()
  outs = {n: str(tmp_path / f"{n}.json") for n in ("p0", "p1", "single")}
  base = [sys.executable, WORKER, "--assets", str(assets), "--steps", str(STEPS)]
  commands = {
      f"p{i}": (
          base
          + [
              "--out",
              outs[f"p{i}"],
              "--process_id",
              str(i),
              "--num_processes",
              "2",
              "--coordinator",
              f"127.0.0.1:{port}",
              "--checkpoint_dir",
              str(tmp_path / "ckpt"),
          ],
          _env(2),
      )
      for i in range(2)
  }
  commands["single"] = (base + ["--out", outs["single"]], _env(4))
  _run_workers(commands, str(tmp_path))
  p0, p1, single = (json.load(open(outs[n])) for n in ("p0", "p1", "single"))
  print(
      f"multi-process test: {time.perf_counter() - start:.0f}s in all; workers "
      f"{p0['seconds']:.0f}s / {p1['seconds']:.0f}s / single {single['seconds']:.0f}s; "
      f"sandbox jobs {p0['sandbox_jobs']} + {p1['sandbox_jobs']} vs "
      f"{single['sandbox_jobs']}"
  )

  # One job of two processes, 4 devices in all; the reference is one process of 4.
  assert [p0["process_index"], p1["process_index"]] == [0, 1]
  assert p0["process_count"] == p1["process_count"] == 2
  assert p0["devices"] == single["devices"] == 4 and p0["local_devices"] == 2
  assert p0["step"] == p1["step"] == single["step"] == STEPS

  # The two processes hold the same state: params bit for bit, buffers, metrics.
  assert p0["params"] == p1["params"]
  assert p0["buffers"] == p1["buffers"]
  for run in (p0, p1, single):
    assert _finite(run["seed_metrics"]) and all(_finite(m) for m in run["metrics"])
  assert [_comparable(m) for m in p0["metrics"]] == [_comparable(m) for m in p1["metrics"]]

  # Sandbox work was split: each process ran its contiguous share of every batch.
  jobs0, jobs1, total = p0["sandbox_jobs"], p1["sandbox_jobs"], single["sandbox_jobs"]
  assert total > 0, "the taught model sent nothing to the sandbox"
  assert jobs0 + jobs1 == total
  assert p0["sandbox_batches"] == p1["sandbox_batches"] > 0
  assert abs(jobs0 - jobs1) <= p0["sandbox_batches"]  # each batch splits within one job
  assert jobs0 < total and jobs1 < total

  # Same as one process: buffers equal (the sampled text and every verdict agree) and
  # params close. Tolerance: the gradient all-reduce runs in another order across
  # processes (gloo) than inside one, so gradients agree to float rounding; Adam's update
  # is about lr * m / sqrt(v), so a gradient component that is ~0 can flip sign and move
  # that parameter by up to 2 * lr per step. The bound is that, over all steps.
  assert p0["buffers"] == single["buffers"], (p0["buffer_sizes"], single["buffer_sizes"])
  assert p0["buffer_sizes"] == single["buffer_sizes"]
  assert any(n > 1 for n in single["buffer_sizes"].values()), "no proposal reached a buffer"
  diffs = [
      float(np.max(np.abs(a - b))) for a, b in zip(_params(outs["p0"]), _params(outs["single"]))
  ]
  print(f"largest |param difference| two processes vs one: {max(diffs):.3g}")
  assert max(diffs) <= 2 * worker.LEARNING_RATE * STEPS + 1e-7
  for a, b in zip(p0["metrics"], single["metrics"]):
    a, b = _comparable(a), _comparable(b)
    assert a.keys() == b.keys()
    assert a == pytest.approx(b, rel=1e-3, abs=1e-4)

  # Orbax wrote the sharded state collectively and read it back on both processes.
  for run in (p0, p1):
    assert run["checkpoint"]["restored_params"] == run["params"]
    assert run["checkpoint"]["restored_buffers"]
