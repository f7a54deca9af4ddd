"""Load: 10,000 mixed jobs (10 % hostile) finish, in order, with bounded memory."""

import random
import resource
import time

import pytest

from absolute_zero.sandbox import Job, SandboxLimits, SandboxPool
from tests.sandbox.conftest import processes_of_uids
from tests.sandbox.test_hostile import HOSTILE


@pytest.mark.slow
def test_ten_thousand_mixed_jobs():
  limits = SandboxLimits(
      timeout_s=0.5,
      cpu_s=0.5,
      memory_bytes=512 << 20,
      max_output_chars=2_000,
      max_repr_chars=5_000,
      file_bytes=1 << 20,
      max_processes=16,
  )
  rng = random.Random(0)
  hostile = [n for n in HOSTILE if n != "c_stack_overflow"]
  jobs, expected = [], []
  for i in range(10_000):
    if i % 10 == 3:
      name = rng.choice(hostile)
      source, call, statuses, _ = HOSTILE[name]
      jobs.append(Job(source, call))
      expected.append(statuses | {"timeout"})
    else:
      jobs.append(Job(f"def f(x):\n    return [x, x * x + {i % 7}]\n", f"f({i})"))
      expected.append(repr([i, i * i + i % 7]))
  with SandboxPool(2, limits) as pool:
    uids = pool.job_uids()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    results = pool.run_batch(jobs)
    elapsed = time.monotonic() - start
    uids |= pool.job_uids()
    assert len(results) == len(jobs)
    for i, (r, want) in enumerate(zip(results, expected)):
      if isinstance(want, str):
        assert (r.status, r.output) == ("ok", want), (i, r)
      else:
        assert r.status in want, (i, r)
    rss_growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert rss_growth_kb < 200_000, rss_growth_kb
    assert processes_of_uids(uids) == []
    print(
        f"10,000 jobs in {elapsed:.1f} s ({len(jobs) / elapsed:.0f} jobs/s), "
        f"owner max RSS growth {rss_growth_kb} KB"
    )
