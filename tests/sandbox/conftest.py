"""Shared sandbox pools for the tests (starting workers costs a fraction of a second)."""

import os

import pytest

from absolute_zero.sandbox import SandboxLimits, SandboxPool

# Short limits so that hostile programs that must time out do so quickly.
FAST_LIMITS = SandboxLimits(
    timeout_s=2.0,
    cpu_s=2.0,
    memory_bytes=512 << 20,
    max_output_chars=2_000,
    max_repr_chars=5_000,
    file_bytes=1 << 20,
    max_processes=16,
)


def data_dir() -> str:
  """Benchmark data: $AZR_DATA_DIR, else the copy shipped in the package."""
  from absolute_zero.evaluation.data import default_data_dir

  return default_data_dir()


def processes_of_uids(uids) -> list[int]:
  """Host-side view: pids of live processes owned by any of `uids` (the job uids)."""
  uids, found = set(uids), []
  for name in os.listdir("/proc"):
    if name.isdigit():
      try:
        if os.stat(f"/proc/{name}").st_uid in uids:
          found.append(int(name))
      except OSError:
        pass
  return found


def job_uids(pool) -> set[int]:
  return pool.job_uids()


@pytest.fixture(scope="session")
def pool():
  with SandboxPool(2, FAST_LIMITS) as p:
    yield p
