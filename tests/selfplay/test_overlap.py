"""The sandbox lane and the compile clock of selfplay/overlap.py (no model, no sandbox)."""

from __future__ import annotations

import threading
import time

import jax
import jax.numpy as jnp
import pytest

from absolute_zero.selfplay.overlap import SandboxLane, compile_seconds


def test_serial_lane_runs_inline_and_counts_it_as_waiting():
  lane = SandboxLane(overlap=False)
  threads = []
  future = lane.submit(
      lambda x: (threads.append(threading.current_thread()), time.sleep(0.05), x)[2], 7
  )
  assert future.done() and threads == [threading.main_thread()]
  assert lane.wait([future]) == [7]
  assert lane.wait_seconds >= 0.05


def test_overlapped_lane_runs_in_order_off_the_main_thread():
  lane = SandboxLane(overlap=True)
  gate, order = threading.Event(), []
  first = lane.submit(lambda: (gate.wait(5), order.append(1), threading.current_thread())[2])
  second = lane.submit(lambda: order.append(2))
  assert not first.done()  # submit returned while the work waits
  gate.set()
  thread, _ = lane.wait([first, second])
  assert order == [1, 2] and thread is not threading.main_thread()
  lane.close()


@pytest.mark.parametrize("overlap", [False, True])
def test_a_failure_is_raised_by_wait(overlap):
  lane = SandboxLane(overlap=overlap)
  future = lane.submit(lambda: 1 / 0)
  lane.drain()
  with pytest.raises(ZeroDivisionError):
    lane.wait([future])
  lane.close()


def test_compile_clock_counts_a_new_program_and_not_a_cached_one():
  f = jax.jit(lambda x: jnp.sin(x) * 3.0 + 1.0)
  before = compile_seconds()
  f(jnp.ones((7, 5))).block_until_ready()
  compiled = compile_seconds()
  assert compiled > before
  f(jnp.ones((7, 5))).block_until_ready()  # the same shapes: no compilation
  assert compile_seconds() == compiled
