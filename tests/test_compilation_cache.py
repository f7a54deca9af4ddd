"""The command line's JAX persistent compilation cache (experiments/cli.py).

Each case runs in a fresh interpreter from a temporary working directory: JAX sets its
cache up once per process, and the test session itself runs with a cache of its own
(tests/conftest.py), which these cases take out of the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Enables the cache as an entry point does, then compiles one program; prints the directory.
SCRIPT = """
import sys
import jax
from experiments import cli
value = None if sys.argv[1] == "<none>" else sys.argv[1]
path = cli.use_compilation_cache(value)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
print(path)
print(float(jax.jit(lambda x: x * 3 + 1)(2.0)))
"""


def _run(cwd: Path, value: str, **env) -> list[str]:
  base = {
      k: v
      for k, v in os.environ.items()
      if k not in ("JAX_COMPILATION_CACHE_DIR", "XDG_CACHE_HOME", "XLA_FLAGS")
  }
  base.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", HOME=str(cwd / "home"), **env)
  proc = subprocess.run(
      [sys.executable, "-c", SCRIPT, value],
      cwd=cwd,
      env=base,
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout.split()


def _entries(directory: Path) -> list[str]:
  return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


@pytest.mark.parametrize(
    "value, env, where",
    [
        ("cache", {}, "cache"),  # relative to the cwd
        ("<none>", {}, "home/.cache/absolute_zero/jax"),  # the default
        ("<none>", {"XDG_CACHE_HOME": "xdg"}, "xdg/absolute_zero/jax"),
        ("<none>", {"JAX_COMPILATION_CACHE_DIR": "envcache"}, "envcache"),
    ],
)
def test_cache_directory_receives_the_compiled_program(tmp_path, value, env, where):
  env = {k: str(tmp_path / v) for k, v in env.items()}
  path, result = _run(tmp_path, value, **env)
  assert result == "7.0"
  assert path == str(tmp_path / where)
  assert any(name.startswith("jit_") for name in _entries(tmp_path / where)), _entries(
      tmp_path / where
  )


def test_empty_value_turns_the_cache_off(tmp_path):
  path, result = _run(tmp_path, "", JAX_COMPILATION_CACHE_DIR=str(tmp_path / "envcache"))
  assert (path, result) == ("None", "7.0")
  assert not (tmp_path / "envcache").exists()
  assert not (tmp_path / "home").exists()
