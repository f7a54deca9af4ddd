"""Multi-process start-up: join the JAX distributed runtime when launched multi-host.

The launchers in `launch/` start one process per host (TPU VM worker or SLURM node). JAX
finds its coordinator, process count and process id either from the cluster (TPU VM
metadata, SLURM variables) or from the explicit `JAX_COORDINATOR_ADDRESS`,
`JAX_NUM_PROCESSES`, `JAX_PROCESS_ID` variables. A single-process run (laptop, one GPU,
CPU tests) must not call `jax.distributed.initialize()`, so we only call it when one of
those environments is present, or when `AZR_DISTRIBUTED=1` asks for it (TPU VM slices
describe their workers in GCE metadata, not in the environment; `launch/tpu_pod.sh` sets
it).

After start-up every process runs the same program with the same seeds (SPMD). This
module also holds the few helpers that make that work with more than one process:
  * `put_global` / `to_host`: host values -> global `jax.Array`s and back. In a
    multi-process job an array sharded over the mesh spans devices of other processes, so
    `jax.device_put(numpy, sharding)` checks equality across hosts on every call and
    `np.asarray(array)` fails; these helpers build arrays from each process's identical
    host copy and gather results before they are fetched.
  * `allgather_json`: every process's small JSON-able value, on every process;
  * `shard_range`: this process's contiguous part of a batch (the self-play loop's
    `selfplay.host_pool.HostShardedPool` splits sandbox batches with these two).
Every helper has a fast path for one process that does exactly what the code did before.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils

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
      raise ValueError(
          "JAX_NUM_PROCESSES and JAX_PROCESS_ID must be integers, got "
          f"{env['JAX_NUM_PROCESSES']!r} and {env['JAX_PROCESS_ID']!r}"
      ) from None
    if not 0 <= process_id < num_processes:
      raise ValueError(f"JAX_PROCESS_ID={process_id} is outside [0, {num_processes})")
    jax.distributed.initialize(
        coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
        num_processes=num_processes,
        process_id=process_id,
    )
  else:
    # SLURM, TPU VM slices, AZR_DISTRIBUTED=1: JAX's cluster detection reads the rest.
    jax.distributed.initialize()
  _initialized = True
  return True


def is_primary() -> bool:
  """True on the process that writes logs, plots and host-side files (process 0)."""
  return jax.process_index() == 0


def process_count() -> int:
  """Number of JAX processes (1 unless `maybe_initialize_distributed` joined a job)."""
  return jax.process_count()


# ------------------------------------------------------------------ arrays


def put_global(x: Any, sharding: jax.sharding.Sharding) -> jax.Array:
  """`x` (a host value every process holds identically, or a jax.Array) laid out on `sharding`.

  One process, or a sharding of this process's devices only: `jax.device_put` (unchanged
  behaviour). Otherwise a global array is assembled from this process's copy with
  `jax.make_array_from_callback` (each process fills only its own devices' shards: no
  cross-host traffic, and none of the equality check `device_put` makes for host values);
  an array that already spans processes is resharded with `jax.device_put`.
  A host value is copied first, so the result never aliases it.
  """
  if sharding.is_fully_addressable:
    return jax.device_put(x, sharding)
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    return jax.device_put(x, sharding)
  if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    data = put_global(jax.random.key_data(x), sharding)
    return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
  host = np.array(x, copy=True)
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _leaf_to_host(x: Any) -> np.ndarray:
  if isinstance(x, jax.Array) and not (x.is_fully_addressable or x.is_fully_replicated):
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)


def to_host(tree: Any) -> Any:
  """numpy copies of every array in `tree`, whole on every process.

  Arrays sharded over devices of several processes are first all-gathered (a collective:
  every process must call this for the same arrays, which SPMD code does); arrays this
  process holds entirely (one process, or replicated) are fetched directly.
  """
  return jax.tree.map(_leaf_to_host, tree)


# ------------------------------------------------------------------ host data


def _bucket(n: int) -> int:
  """Padded payload size: a power of two >= n (few distinct shapes -> few compilations)."""
  return 1 << max(6, (max(n, 1) - 1).bit_length())


def allgather_json(value: Any) -> list:
  """[value of process 0, value of process 1, ...] on every process; `value` JSON-able.

  For small host-side data (sandbox results, statuses): JSON-encoded (ASCII, so lone
  surrogates in program output survive), padded to a common power-of-two length and
  gathered with `multihost_utils.process_allgather` in two collectives (lengths, then
  bytes). Every process must call it the same number of times. One process: `[value]`
  without any encoding.
  """
  if jax.process_count() == 1:
    return [value]
  data = np.frombuffer(json.dumps(value, separators=(",", ":")).encode("ascii"), np.uint8)
  lengths = np.asarray(multihost_utils.process_allgather(np.asarray([data.size], np.int32)))
  lengths = lengths.reshape(-1)
  padded = np.zeros((_bucket(int(lengths.max())),), np.uint8)
  padded[: data.size] = data
  gathered = np.asarray(multihost_utils.process_allgather(padded))  # [processes, size]
  return [
      json.loads(gathered[i, : int(n)].tobytes().decode("ascii")) for i, n in enumerate(lengths)
  ]


def shard_range(n: int, index: int, count: int) -> tuple[int, int]:
  """[start, stop) of part `index` of `count` contiguous, near-equal parts of range(n).

  Contiguous (not strided) so the two interpreter variants of a determinism check, which
  are adjacent jobs, stay on one host and both variants of its pool stay busy.
  """
  if not 0 <= index < count:
    raise ValueError(f"part {index} is outside [0, {count})")
  base, extra = divmod(n, count)
  start = index * base + min(index, extra)
  return start, start + base + (1 if index < extra else 0)
