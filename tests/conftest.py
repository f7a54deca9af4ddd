"""Test-wide setup: 8 fake CPU devices so sharding tests run on any machine.

XLA_FLAGS must be set before JAX initialises its backend, hence here, at collection.
Tests that need the real embedded models or benchmark data skip cleanly when absent.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
  """Skip hardware-marked tests when that hardware is absent."""
  import jax

  backend = jax.default_backend()
  for item in items:
    if "gpu" in item.keywords and backend != "gpu":
      item.add_marker(pytest.mark.skip(reason="needs an NVIDIA GPU"))
    if "tpu" in item.keywords and backend != "tpu":
      item.add_marker(pytest.mark.skip(reason="needs a TPU"))
