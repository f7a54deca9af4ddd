"""Multi-process helpers, in one process (the real two-process run is
tests/selfplay/test_multiprocess.py, marked slow)."""

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from absolute_zero import distributed, sharding
from absolute_zero.sandbox.job_types import Job, JobResult
from absolute_zero.selfplay.host_pool import HostShardedPool


@pytest.mark.parametrize("n", [0, 1, 2, 5, 7, 64])
@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_shard_range_splits_contiguously_and_evenly(n, count):
  parts = [distributed.shard_range(n, i, count) for i in range(count)]
  assert parts[0][0] == 0 and parts[-1][1] == n
  assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
  sizes = [stop - start for start, stop in parts]
  assert max(sizes) - min(sizes) <= 1


def test_shard_range_rejects_a_bad_part():
  with pytest.raises(ValueError, match="outside"):
    distributed.shard_range(4, 2, 2)


def test_one_process_helpers_are_the_plain_operations():
  value = {"a": [1, "\ud800 x"], "b": None}
  assert distributed.allgather_json(value) == [value]
  mesh = sharding.make_mesh((2, 2, 2))
  x = np.arange(16, dtype=np.float32).reshape(8, 2)
  placed = distributed.put_global(x, NamedSharding(mesh, PartitionSpec(("data", "fsdp"))))
  assert placed.sharding.spec == PartitionSpec(("data", "fsdp"))
  np.testing.assert_array_equal(distributed.to_host({"x": placed})["x"], x)


def test_bucket_is_a_power_of_two_at_least_the_size():
  for n in (0, 1, 63, 64, 65, 1000):
    b = distributed._bucket(n)
    assert b >= max(n, 64) and b & (b - 1) == 0


class _RecordingPool:

  def __init__(self):
    self.calls = []

  def run_batch(self, jobs):
    self.calls.append(list(jobs))
    return [JobResult("ok", repr(i), None, None, 0.0) for i in range(len(jobs))]


def test_host_sharded_pool_in_one_process_runs_everything_in_order():
  inner = _RecordingPool()
  pool = HostShardedPool(inner)
  jobs = [Job("x = 1", "x", None) for _ in range(5)]
  results = pool.run_batch(jobs)
  assert [r.output for r in results] == [repr(i) for i in range(5)]
  assert inner.calls == [jobs] and pool.jobs_run == 5 and pool.batches == 1
  assert pool.run_batch([]) == [] and pool.batches == 1
  assert pool.calls is inner.calls  # other attributes pass through
