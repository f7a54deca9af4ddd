"""The pool's batch API: order, statuses, variants, limits, replacement of dead workers."""

import os
import signal
import time

import pytest

from absolute_zero.sandbox import Job, JobResult, SandboxLimits, SandboxPool
from tests.sandbox.conftest import FAST_LIMITS


def test_results_in_input_order_with_mixed_statuses(pool):
  jobs = []
  for i in range(60):
    kind = i % 4
    if kind == 0:
      jobs.append(Job("def f(x):\n    return [x] * 2\n", f"f({i})"))
    elif kind == 1:
      jobs.append(Job("def f(x):\n    return 1 // (x - x)\n", f"f({i})"))
    elif kind == 2:
      jobs.append(Job(f"print('line {i}')\nX = {i}\n", "X + 1"))
    else:
      jobs.append(Job("def f(:\n", "f()"))
  results = pool.run_batch(jobs)
  assert len(results) == len(jobs)
  for i, r in enumerate(results):
    assert isinstance(r, JobResult)
    kind = i % 4
    if kind == 0:
      assert (r.status, r.output) == ("ok", repr([i, i]))
    elif kind == 1:
      assert (r.status, r.error_type) == ("error", "ZeroDivisionError")
      assert r.error_message == "integer division or modulo by zero"
    elif kind == 2:
      assert (r.status, r.output, r.stdout) == ("ok", str(i + 1), f"line {i}\n")
    else:
      assert (r.status, r.error_type) == ("error", "SyntaxError")
    assert r.seconds >= 0


def test_empty_batch_and_source_only_job(pool):
  assert pool.run_batch([]) == []
  r = pool.run_batch([Job("x = 1\n")])[0]
  assert (r.status, r.output) == ("ok", None)


def test_bad_job_arguments_are_rejected_clearly(pool):
  with pytest.raises(TypeError, match="Job"):
    pool.run_batch(["def f(): pass"])
  with pytest.raises(TypeError, match="source"):
    Job(b"x = 1")
  with pytest.raises(ValueError, match="variant"):
    Job("x = 1", None, 2)
  with pytest.raises(ValueError, match="timeout_s"):
    SandboxLimits(timeout_s=0)


def test_variants_run_with_different_hash_seeds(pool):
  src = "def f():\n    return hash('absolute zero')\n"
  r = pool.run_batch([Job(src, "f()", 0), Job(src, "f()", 0), Job(src, "f()", 1)])
  assert r[0].output == r[1].output  # same interpreter variant, same seed
  assert r[0].output != r[2].output


def test_workers_have_no_accelerator_and_cpu_jax_platform(pool):
  src = "import os\ndef f():\n    return sorted(os.environ.items())\n"
  # Jobs see a scrubbed environment; the worker's own start-up environment is checked
  # through the owner-side handle.
  r = pool.run_batch([Job(src, "f()")])[0]
  assert "CUDA" not in r.output and "JAX" not in r.output
  for pid in pool.worker_pids():
    with open(f"/proc/{pid}/environ", "rb") as fh:
      env = dict(kv.split(b"=", 1) for kv in fh.read().split(b"\0") if b"=" in kv)
    assert env[b"JAX_PLATFORMS"] == b"cpu"
    assert env[b"CUDA_VISIBLE_DEVICES"] == b""


def test_captured_output_is_capped(pool):
  r = pool.run_batch([Job("print('a' * 1999)\n", None), Job("print('a' * 5000)\n", None)])
  assert (r[0].status, len(r[0].stdout)) == ("ok", 2000)
  assert r[1].status == "output_too_large"


def test_dead_worker_is_replaced_and_batch_completes():
  with SandboxPool(2, FAST_LIMITS) as p:
    old = p.worker_pids()
    jobs = [
        Job(
            "import select\ndef f(i):\n    select.select([], [], [], 0.3)\n    return i\n",
            f"f({i})",
        )
        for i in range(8)
    ]
    import threading

    killer = threading.Timer(0.5, lambda: os.kill(old[0], signal.SIGKILL))
    killer.start()
    results = p.run_batch(jobs)
    killer.join()
    assert len(results) == 8
    failed = [r for r in results if r.status != "ok"]
    assert len(failed) <= 1 and all(r.error_type == "SandboxError" for r in failed)
    assert all(r.output == str(i) for i, r in enumerate(results) if r.status == "ok")
    assert p.worker_pids()[0] != old[0]
    assert p.run_batch([Job("x = 2\n", "x * 21")])[0].output == "42"


def test_stopped_worker_is_replaced():
  limits = SandboxLimits(timeout_s=0.5, cpu_s=0.5)
  with SandboxPool(2, limits) as p:
    import absolute_zero.sandbox.pool as pool_module

    old_slack = pool_module._STALL_SLACK_S
    pool_module._STALL_SLACK_S = 1.0
    try:
      os.kill(p.worker_pids()[0], signal.SIGSTOP)
      start = time.monotonic()
      results = p.run_batch([Job("x = 1\n", "x", 0), Job("x = 2\n", "x", 1)])
      assert time.monotonic() - start < 15
    finally:
      pool_module._STALL_SLACK_S = old_slack
    assert results[1].output == "2"
    assert results[0].status in ("ok", "timeout")
    assert p.run_batch([Job("x = 3\n", "x", 0)])[0].output == "3"


def test_close_stops_workers():
  p = SandboxPool(2, FAST_LIMITS)
  pids = p.worker_pids()
  p.close()
  time.sleep(0.1)
  for pid in pids:
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
  with pytest.raises(Exception, match="closed"):
    p.run_batch([Job("x = 1\n")])
