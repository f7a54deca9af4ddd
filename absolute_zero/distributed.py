"""Multi-process start-up: join the JAX distributed runtime when launched multi-host.

The launchers in `launch/` start one process per host (TPU VM worker or SLURM node). JAX
finds its coordinator, process count and process id either from the cluster (TPU VM
metadata, SLURM variables) or from the explicit `JAX_COORDINATOR_ADDRESS`,
`JAX_NUM_PROCESSES`, `JAX_PROCESS_ID` variables. A single-process run (laptop, one GPU,
CPU tests) must not call `jax.distributed.initialize()`, so we only call it when one of
those environments is present, or when `AZR_DISTRIBUTED=1` asks for it (TPU VM slices
describe their workers in GCE metadata, not in the environment; `launch/tpu_pod.sh` sets
it).
"""

from __future__ import annotations

import os
from typing import Mapping

import jax

# Explicit variables (set by launch/slurm_gpu.sbatch, or by hand).
_EXPLICIT_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")

_initialized = False


def multi_process_env(environ: Mapping[str, str] | None = None) -> str | None:
  """Which multi-process environment `environ` describes.

  'explicit' (the three JAX_* variables), 'requested' (AZR_DISTRIBUTED=1: let JAX detect
  the cluster), 'slurm', 'tpu' or None.

  'slurm' needs an `srun` step with more than one task (`SLURM_STEP_NUM_TASKS`; a batch
  script's own shell, or a one-task step, is a plain local run);
  'tpu' needs a TPU VM slice with more than one worker (`TPU_WORKER_HOSTNAMES` lists them).
  """
  env = os.environ if environ is None else environ
  if all(env.get(v) for v in _EXPLICIT_VARS):
    return "explicit"
  if env.get("AZR_DISTRIBUTED", "").lower() in ("1", "true", "yes"):
    return "requested"
  if env.get("SLURM_JOB_ID") and int(env.get("SLURM_STEP_NUM_TASKS", "1") or 1) > 1:
    return "slurm"
  hosts = [h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]
  if len(hosts) > 1:
    return "tpu"
  return None


def maybe_initialize_distributed(environ: Mapping[str, str] | None = None) -> bool:
  """Calls `jax.distributed.initialize()` once when launched multi-process; True if it did.

  Must run before anything touches a JAX device (first `jax.devices()` call).
  """
  global _initialized
  if _initialized:
    return True
  env = os.environ if environ is None else environ
  kind = multi_process_env(env)
  if kind is None:
    return False
  if kind == "explicit":
    try:
      num_processes = int(env["JAX_NUM_PROCESSES"])
      process_id = int(env["JAX_PROCESS_ID"])
    except ValueError:
      raise ValueError("JAX_NUM_PROCESSES and JAX_PROCESS_ID must be integers, got "
                       f"{env['JAX_NUM_PROCESSES']!r} and {env['JAX_PROCESS_ID']!r}") from None
    if not 0 <= process_id < num_processes:
      raise ValueError(f"JAX_PROCESS_ID={process_id} is outside [0, {num_processes})")
    jax.distributed.initialize(coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
                               num_processes=num_processes, process_id=process_id)
  else:
    # SLURM, TPU VM slices, AZR_DISTRIBUTED=1: JAX's cluster detection reads the rest.
    jax.distributed.initialize()
  _initialized = True
  return True


def is_primary() -> bool:
  """True on the process that writes logs, plots and host-side files (process 0)."""
  return jax.process_index() == 0
