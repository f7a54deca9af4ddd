"""The sandbox pool of a multi-process self-play run: each host runs its share of a batch.

Every process runs the same self-play step with the same seeds (SPMD), so every process
asks for the same sandbox batches. `HostShardedPool` splits each batch over the hosts and
gathers the results, so sandbox work scales with the hosts while every process still sees
every result, in order (`distributed.shard_range`, `distributed.allgather_json`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax

from absolute_zero import distributed
from absolute_zero.sandbox.job_types import JobResult


class HostShardedPool:
  """A sandbox pool whose `run_batch` runs only this process's share of the jobs.

  Every process calls `run_batch` with the same jobs (the program is SPMD); each runs its
  contiguous part (`shard_range`) in its own local pool, then the `JobResult`s are
  all-gathered (`allgather_json`) so every process returns the same full list, in input
  order. Sandbox throughput scales with the number of hosts, and everything computed from
  the results (validity, outputs, rewards, buffer additions) is identical everywhere.
  `jobs_run` counts the jobs this process ran, `batches` the non-empty batches it shared.
  Other attributes pass through.
  """

  def __init__(self, pool: Any):
    self._pool = pool
    self.index, self.count = jax.process_index(), jax.process_count()
    self.jobs_run = self.batches = 0

  def __getattr__(self, name):
    return getattr(self._pool, name)

  def run_batch(self, jobs: Sequence[Any]) -> list:
    jobs = list(jobs)
    if not jobs:  # the same on every process: nothing to run, nothing to gather
      return []
    start, stop = distributed.shard_range(len(jobs), self.index, self.count)
    local = self._pool.run_batch(jobs[start:stop]) if stop > start else []
    self.jobs_run += stop - start
    self.batches += 1
    parts = distributed.allgather_json([dataclasses.astuple(r) for r in local])
    results = [JobResult(*fields) for part in parts for fields in part]
    if len(results) != len(jobs):
      raise RuntimeError(f"gathered {len(results)} sandbox results for {len(jobs)} jobs")
    return results
