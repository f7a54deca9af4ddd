"""Test-wide setup: 8 fake CPU devices so sharding tests run on any machine, and one JAX
persistent compilation cache for the session.

XLA_FLAGS must be set before JAX initialises its backend, hence here, at collection.
The cache directory goes into the environment for the same reason, and so every subprocess
(the command-line tests copy os.environ) shares it: those tests start many short runs of
the same tiny configurations, and compiling is most of each run (a 2-step tiny azr run:
55 s of CPU cold, 14 s with the cache warm). Removed at the end of the session; a cache
directory the caller set is used and kept.
Tests that need the real embedded models or benchmark data skip cleanly when absent.
"""

import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

_OWN_CACHE = None
if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
  _OWN_CACHE = tempfile.mkdtemp(prefix="absolute-zero-jax-cache-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
# Store every program, not only those that took >= 1 s (JAX's default): a tiny model's run
# is hundreds of sub-second compilations, and a warm 1-step tiny azr run took 10.2 s with
# them cached against 14.5 s without (same host, one after the other).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import pytest  # noqa: E402


def pytest_unconfigure(config):
  if _OWN_CACHE:
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
  """Skip hardware-marked tests when that hardware is absent."""
  import jax

  backend = jax.default_backend()
  for item in items:
    if "gpu" in item.keywords and backend != "gpu":
      item.add_marker(pytest.mark.skip(reason="needs an NVIDIA GPU"))
    if "tpu" in item.keywords and backend != "tpu":
      item.add_marker(pytest.mark.skip(reason="needs a TPU"))
