"""Sandbox work overlapped with generation, and the clocks of a step (issue 22).

A self-play step alternates device work (generation) and host work in the sandbox
(validating proposals, grading answers). `SandboxLane` runs the sandbox work of one phase
on a background thread while the main thread goes on to generate the next phase, as
asynchronous actor-learners keep the accelerator busy (Mnih et al. 2016, A3C). What may run
concurrently is decided by the data, never by timing: a piece of grading is submitted only
once its inputs exist, and the main thread waits for it before anything that reads its
results (the next step's proposals, the rewards, the buffers). Sampling keys and buffer
draws are the same in both modes, so a step gives the same results with overlap on or off
(tests/selfplay/test_selfplay_e2e.py checks it).

`compile_seconds()` is the process's total JAX compilation time so far (tracing, lowering,
and XLA compilation or the persistent cache's load), read from `jax.monitoring`.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any, Callable, Sequence


class SandboxLane:
  """Runs sandbox work in submission order, on one background thread or inline.

  `overlap=True`: `submit` queues the work on one worker thread and returns at once (one
  thread, so the sandbox pool, which is not thread-safe, is used by one thread at a time;
  the caller must not use the pool itself while work is pending: `drain()` first).
  `overlap=False`: `submit` runs the work before returning (the serial order).
  `wait_seconds` sums the time the calling thread spent in the work or waiting for it:
  the sandbox time left on the step's critical path.
  """

  def __init__(self, overlap: bool = True):
    self.overlap = bool(overlap)
    self.wait_seconds = 0.0
    self._pending: list[concurrent.futures.Future] = []
    self._executor = (
        concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sandbox-lane")
        if overlap
        else None
    )

  def submit(self, fn: Callable[..., Any], *args) -> concurrent.futures.Future:
    """fn(*args) as a future (already done without overlap; its exception is raised by
    `wait`/`result`)."""
    if self._executor is not None:
      future = self._executor.submit(fn, *args)
      self._pending.append(future)
      return future
    future: concurrent.futures.Future = concurrent.futures.Future()
    start = time.perf_counter()
    try:
      future.set_result(fn(*args))
    except BaseException as e:  # re-raised by result(), where the serial code raised it
      future.set_exception(e)
    finally:
      self.wait_seconds += time.perf_counter() - start
    return future

  def wait(self, futures: Sequence[concurrent.futures.Future]) -> list:
    """The futures' results in order (raises the first failure), timing the wait."""
    start = time.perf_counter()
    try:
      return [f.result() for f in futures]
    finally:
      self.wait_seconds += time.perf_counter() - start
      done = set(map(id, futures))
      self._pending = [f for f in self._pending if id(f) not in done and not f.done()]

  def run(self, fn: Callable[..., Any], *args) -> Any:
    """fn(*args) on the lane, waited for: sandbox work nothing can overlap."""
    return self.wait([self.submit(fn, *args)])[0]

  def drain(self) -> None:
    """Waits for all submitted work, failures included (they were or will be raised by
    the `wait` of their owner). Call before using the pool from another thread."""
    pending, self._pending = self._pending, []
    concurrent.futures.wait(pending)

  def close(self) -> None:
    self.drain()
    if self._executor is not None:
      self._executor.shutdown(wait=True)


_compile_lock = threading.Lock()
_compile_total = [0.0]
_listening = [False]
# Tracing to a jaxpr, lowering to StableHLO, and XLA compilation (which includes a load
# from the persistent compilation cache on a hit): jax/_src/dispatch.py.
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


def _on_duration(event: str, duration: float, **kwargs) -> None:
  if event in COMPILE_EVENTS:
    with _compile_lock:
      _compile_total[0] += duration


def compile_seconds() -> float:
  """Seconds this process has spent compiling JAX programs since the first call here
  (the listener is registered then, once per process)."""
  if not _listening[0]:
    import jax.monitoring

    with _compile_lock:
      if not _listening[0]:
        jax.monitoring.register_event_duration_secs_listener(_on_duration)
        _listening[0] = True
  with _compile_lock:
    return _compile_total[0]
