"""Save and restore a whole self-play run with Orbax (`CheckpointManager`).

One checkpoint step holds five items, each in its own sub-directory:
  train_state  the learner's pytree (params, optimizer state, step), as sharded arrays;
  meta         format version, the step, and the RNG key data (`jax.random.key_data`) as JSON;
  buffers      `TaskBuffers.state_dict()` (JSON);
  config       the resolved run configuration (JSON; compared on resume);
  extra        anything else JSON-able (metrics cursor, sampler state, ...).

Why it is safe to kill a run at any moment: Orbax writes a step into
`<step>.orbax-checkpoint-tmp-<time>` and renames it to `<step>` only once every item is on
disk, so a step directory exists only when complete. Leftover tmp directories are ignored
by `latest_step()` and deleted when the next `RunCheckpointer` opens the directory.

Why restores take explicit shardings: Orbax restoring without target shardings puts every
array on one device (or on the saved mesh, which may not exist any more). `restore` takes
an abstract pytree of `jax.ShapeDtypeStruct(..., sharding=...)`, so a checkpoint written on
one mesh lands on any other mesh (or one device) laid out as the caller wants.

Multi-host: every process must call `save`/`restore`/`close` (the arrays are written
collectively; JSON items are written by process 0 only).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import re
import time
import uuid
from pathlib import PurePath
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

FORMAT_VERSION = 1

# Items of one checkpoint step (sub-directory names).
TRAIN_STATE = "train_state"
META = "meta"
BUFFERS = "buffers"
CONFIG = "config"
EXTRA = "extra"

# ModelConfig fields that decide the params' shapes and meaning: a checkpoint whose saved
# config differs in any of these cannot be restored into the current model.
MODEL_SHAPE_FIELDS = (
    "family",
    "vocab_size",
    "embed_dim",
    "num_layers",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "mlp_dim",
    "tie_embeddings",
    "qkv_bias",
    "qk_norm",
    "post_norms",
    "global_every",
)


class CheckpointError(RuntimeError):
  """A checkpoint cannot be written or read as asked."""


class CheckpointDirError(CheckpointError):
  """The checkpoint directory cannot be created or written."""


class IncompatibleCheckpointError(CheckpointError):
  """The checkpoint was written by a different model (or a different state layout)."""


class CheckpointWriteError(CheckpointError):
  """Writing a checkpoint failed (disk full, permissions, a vanished mount).

  The step being written is left as an Orbax tmp directory, which `latest_step()` ignores
  and the next `RunCheckpointer` on the directory removes: the last complete step stays
  the one to resume from.
  """


def complete_steps(directory) -> list[int]:
  """Steps with a complete checkpoint in `directory`, read from the directory names alone
  (Orbax renames `<step>.orbax-checkpoint-tmp-*` to `<step>` once every item is written);
  [] when the directory is missing or unreadable."""
  try:
    return sorted(
        int(p.name) for p in epath.Path(directory).iterdir() if p.name.isdigit() and p.is_dir()
    )
  except OSError:
    return []


def _write_failure(directory, error: BaseException) -> CheckpointWriteError:
  """One readable CheckpointWriteError from what Orbax / TensorStore raised: the OS's
  reason when the message carries its code (TensorStore ends it with
  `[os_error_code='27']`), else the message's first line."""
  text = str(error)
  errno = error.errno if isinstance(error, OSError) else None
  found = re.search(r"\[os_error_code='(\d+)'\]", text)
  if found:  # TensorStore: the OS's code at the end (after a spec of the store, at times)
    errno = int(found.group(1))
    reason = f"{os.strerror(errno)} (errno {errno})"
  else:
    reason = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    if len(reason) > 300:
      reason = reason[:300] + " ..."
  full = errno == 28 or "no space left" in text.lower() or "resource_exhausted" in text.lower()
  hint = " (the disk is full: free space, or keep fewer checkpoints)" if full else ""
  return CheckpointWriteError(f"writing a checkpoint in {directory} failed{hint}: {reason}")


class RestoredRun(NamedTuple):
  """What `RunCheckpointer.restore` returns."""

  train_state: Any  # same pytree type as the abstract target, arrays on its shardings
  rng: jax.Array | None  # typed key (or raw uint32 key data, as saved); None if not saved
  buffers: dict  # TaskBuffers state_dict
  config: dict  # resolved config as saved
  extra: dict


# ------------------------------------------------------------------ pure helpers


def to_jsonable(obj: Any) -> Any:
  """Plain JSON types for configs and states: dataclasses, tuples, numpy/jax scalars, paths.

  Non-finite floats are rejected (JSON has no NaN; a config holding one is a bug).
  """
  if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
    return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
  if isinstance(obj, Mapping):
    out = {}
    for k, v in obj.items():
      if not isinstance(k, (str, int)):
        raise TypeError(f"JSON object keys must be str or int, got {type(k).__name__} {k!r}")
      out[str(k)] = to_jsonable(v)
    return out
  if isinstance(obj, (list, tuple)):
    return [to_jsonable(v) for v in obj]
  if isinstance(obj, enum.Enum):
    return to_jsonable(obj.value)
  if isinstance(obj, PurePath):
    return str(obj)
  if isinstance(obj, (bool, np.bool_)):
    return bool(obj)
  if isinstance(obj, (int, np.integer)):
    return int(obj)
  if isinstance(obj, (float, np.floating)):
    if not math.isfinite(obj):
      raise ValueError(f"non-finite float {obj!r} cannot be stored as JSON")
    return float(obj)
  if isinstance(obj, (np.ndarray, jax.Array)) and np.ndim(obj) == 0:
    return to_jsonable(np.asarray(obj).item())
  if obj is None or isinstance(obj, str):
    return obj
  raise TypeError(f"cannot store a {type(obj).__name__} as JSON: {obj!r:.80}")


def rng_to_json(rng: jax.Array) -> dict:
  """Key data of `rng` (typed key or raw uint32 key array) as JSON, with its impl."""
  typed = jnp.issubdtype(rng.dtype, jax.dtypes.prng_key)
  data = np.asarray(jax.random.key_data(rng) if typed else rng)
  if data.dtype != np.uint32:
    raise TypeError(f"rng must be a typed PRNG key or uint32 key data, got dtype {rng.dtype}")
  impl = str(jax.random.key_impl(rng)) if typed else None
  return {
      "typed": bool(typed),
      "impl": impl,
      "shape": list(data.shape),
      "data": data.reshape(-1).tolist(),
  }


def rng_from_json(state: Mapping[str, Any]) -> jax.Array:
  """Inverse of `rng_to_json`: the same key bits, typed again if it was typed."""
  data = np.asarray(state["data"], dtype=np.uint32).reshape(state["shape"])
  if state["typed"]:
    return jax.random.wrap_key_data(jnp.asarray(data), impl=state["impl"])
  return jnp.asarray(data)


def model_section(config: Mapping[str, Any]) -> Mapping[str, Any]:
  """The model part of a run config: `config['model']` if it is a dict, else `config`."""
  model = config.get("model") if isinstance(config, Mapping) else None
  return model if isinstance(model, Mapping) else config


def model_field_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
  """'field: checkpoint=X, current=Y' for every model shape field that differs."""
  saved_m, current_m = model_section(saved), model_section(current)
  diffs = []
  for field in MODEL_SHAPE_FIELDS:
    if field not in saved_m and field not in current_m:
      continue
    a = saved_m.get(field, "<absent>")
    b = current_m.get(field, "<absent>")
    if a != b:
      diffs.append(f"{field}: checkpoint={a!r}, current={b!r}")
  return diffs


def abstract_tree(tree: Any, shardings: Any = None) -> Any:
  """`jax.ShapeDtypeStruct`s with shardings for every leaf of `tree`.

  `tree` may hold arrays (their own sharding is used unless `shardings` is given) or
  ShapeDtypeStructs; `shardings` is a matching pytree of `jax.sharding.Sharding`.
  """
  if shardings is None:
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        tree,
    )
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
  )


def _leaf_name(path) -> str:
  return (
      "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)
      or "<root>"
  )


def _check_abstract_has_shardings(abstract) -> None:
  missing = [
      _leaf_name(p)
      for p, x in jax.tree_util.tree_leaves_with_path(abstract)
      if getattr(x, "sharding", None) is None
  ]
  if missing:
    raise ValueError(
        "restore needs a target sharding on every leaf (without one Orbax puts the array "
        f"on a single device); leaves without: {', '.join(missing[:8])}"
        + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
    )


def _saved_shapes(metadata_tree) -> dict[str, tuple[int, ...]]:
  """Leaf name -> shape from Orbax's saved tree metadata."""
  out = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(
      metadata_tree, is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "dtype")
  ):
    if hasattr(leaf, "shape"):
      out[_leaf_name(path)] = tuple(leaf.shape)
  return out


def ensure_writable(directory: str | os.PathLike) -> epath.Path:
  """Creates `directory` and proves it writable with a probe file, else one clear error."""
  path = epath.Path(directory)
  probe = path / f".write_probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
  try:
    path.mkdir(parents=True, exist_ok=True)
    probe.write_text("probe")
    probe.unlink()
  except OSError as e:
    reason = e.strerror or type(e).__name__
    raise CheckpointDirError(
        f"checkpoint directory {os.fspath(directory)!r} is not writable ({reason}); "
        "pass a --checkpoint_dir you can write to"
    ) from None
  return path


# ------------------------------------------------------------------ the checkpointer


class RunCheckpointer:
  """Keep-last-N checkpoints of a run in one directory (Orbax CheckpointManager)."""

  def __init__(
      self,
      directory: str | os.PathLike,
      *,
      keep: int = 3,
      async_save: bool = True,
      read_only: bool = False,
  ):
    """`read_only`: for readers such as evaluation: nothing is created, probed or cleaned
    up (a live run's unfinished save in the same directory is left alone); `save` fails."""
    if keep < 1:
      raise ValueError(f"keep must be >= 1, got {keep}")
    self.directory = epath.Path(directory) if read_only else ensure_writable(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        create=not read_only,
        enable_async_checkpointing=async_save,
        cleanup_tmp_directories=not read_only,
        read_only=read_only,
    )
    # Handlers named up front so a freshly opened manager can read item metadata.
    # At most ~1 GB of arrays in flight to TensorStore at once: with Orbax's default (96 GB)
    # every array is encoded at the same time, and saving a 3.2 GB train state (Gemma 3
    # 270M with AdamW) held +2.5 GB of host memory on CPU; with 1 GB, +1.2 GB, no slower.
    handlers = {TRAIN_STATE: ocp.StandardCheckpointHandler(save_concurrent_gb=1)}
    handlers.update({name: ocp.JsonCheckpointHandler() for name in (META, BUFFERS, CONFIG, EXTRA)})
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)
    # Orbax deletes leftover tmp directories on a background thread that close() does not
    # wait for; a process that exits soon after (bad input found next) would print that
    # thread's traceback. Wait for it here: it is a directory listing and a few deletes.
    getattr(self._manager, "_maybe_await_cleanup_tmp_directory", lambda: None)()
    self.last_save_blocking_s: float | None = None  # time `save` held the caller

  # -- queries

  def all_steps(self) -> list[int]:
    """Steps of complete checkpoints, ascending."""
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    """The newest complete checkpoint's step, or None if there is none."""
    return self._manager.latest_step()

  def saved_config(self, step: int | None = None) -> dict:
    """The resolved config stored with `step` (default: latest)."""
    step = self._resolve_step(step)
    return self._read(
        step,
        lambda: self._manager.restore(
            step, args=ocp.args.Composite(**{CONFIG: ocp.args.JsonRestore()})
        )[CONFIG],
    )

  def check_compatible(self, config: Mapping[str, Any], step: int | None = None) -> None:
    """Raises IncompatibleCheckpointError naming the model fields that differ."""
    step = self._resolve_step(step)
    diffs = model_field_differences(self.saved_config(step), to_jsonable(config))
    if diffs:
      raise IncompatibleCheckpointError(
          f"checkpoint {self.directory}/{step} was written by a different model: "
          + "; ".join(diffs)
          + ". Use the matching --model or a fresh --checkpoint_dir."
      )

  # -- save

  def save(
      self,
      step: int,
      train_state: Any,
      rng: jax.Array | None,
      buffers_state: Mapping,
      config: Mapping | Any,
      extra: Mapping | None = None,
  ) -> None:
    """Starts writing checkpoint `step` (returns once arrays are copied off the devices).

    With async saving the files are written in the background; the caller may donate or
    delete `train_state` right after this returns. Call `wait_until_finished()` (or
    `close()`) before the process exits.
    """
    step = int(step)
    if step < 0:
      raise ValueError(f"checkpoint step must be >= 0, got {step}")
    latest = self.latest_step()
    if latest is not None and step <= latest:
      raise CheckpointError(
          f"cannot save step {step}: {self.directory} already holds step {latest}; "
          "steps must increase (resume from the latest step, or use a fresh directory)"
      )
    items = {}
    for name, value in ((BUFFERS, buffers_state), (CONFIG, config), (EXTRA, extra or {})):
      try:
        items[name] = to_jsonable(value)
        json.dumps(items[name])
      except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint item {name!r} is not JSON-able: {e}") from None
    # A run whose randomness derives from (seed, step) passes rng=None: nothing to save.
    meta = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "rng": None if rng is None else rng_to_json(rng),
    }
    start = time.perf_counter()
    try:  # also reports a failure of the previous asynchronous save, which Orbax awaits here
      saved = self._manager.save(
          step,
          args=ocp.args.Composite(
              **{
                  TRAIN_STATE: ocp.args.StandardSave(train_state),
                  META: ocp.args.JsonSave(meta),
                  BUFFERS: ocp.args.JsonSave(items[BUFFERS]),
                  CONFIG: ocp.args.JsonSave(items[CONFIG]),
                  EXTRA: ocp.args.JsonSave(items[EXTRA]),
              }
          ),
      )
    except (OSError, ValueError, RuntimeError) as e:
      raise _write_failure(self.directory, e) from e
    self.last_save_blocking_s = time.perf_counter() - start
    if not saved:
      raise CheckpointError(f"Orbax declined to save step {step} in {self.directory}")

  def wait_until_finished(self) -> None:
    """Blocks until every started save is complete on disk.

    Raises CheckpointWriteError if a save failed in the background.
    """
    try:
      self._manager.wait_until_finished()
    except (OSError, ValueError, RuntimeError) as e:
      raise _write_failure(self.directory, e) from e

  # -- restore

  def restore(
      self, step: int | None, abstract_train_state: Any, *, config: Mapping | Any | None = None
  ) -> RestoredRun:
    """Reads checkpoint `step` (None: latest) onto the shardings of `abstract_train_state`.

    `abstract_train_state`: pytree of `jax.ShapeDtypeStruct(shape, dtype, sharding=...)`
    (or arrays, whose shardings are used) with the structure of the saved train state.
    `config`: the current run config; when given, the saved model fields must match it.
    """
    self.wait_until_finished()
    step = self._resolve_step(step)
    abstract = abstract_tree(abstract_train_state)
    _check_abstract_has_shardings(abstract)
    if config is not None:
      self.check_compatible(config, step)
    self._read(step, lambda: self._check_layout(step, abstract))
    restored = self._read(
        step,
        lambda: self._manager.restore(
            step,
            args=ocp.args.Composite(
                **{
                    TRAIN_STATE: ocp.args.StandardRestore(abstract),
                    META: ocp.args.JsonRestore(),
                    BUFFERS: ocp.args.JsonRestore(),
                    CONFIG: ocp.args.JsonRestore(),
                    EXTRA: ocp.args.JsonRestore(),
                }
            ),
        ),
    )
    meta = restored[META]
    if meta.get("format_version") != FORMAT_VERSION or meta.get("step") != step:
      raise CheckpointError(
          f"checkpoint {self.directory}/{step} has unexpected metadata "
          f"{ {k: meta.get(k) for k in ('format_version', 'step')} }"
      )
    rng = None if meta.get("rng") is None else rng_from_json(meta["rng"])
    return RestoredRun(
        train_state=restored[TRAIN_STATE],
        rng=rng,
        buffers=restored[BUFFERS],
        config=restored[CONFIG],
        extra=restored[EXTRA],
    )

  def close(self) -> None:
    """Waits for pending saves, then releases the manager (CheckpointWriteError if a save
    failed; the manager is released either way)."""
    try:
      self.wait_until_finished()
    finally:
      self._manager.close()

  def __enter__(self) -> "RunCheckpointer":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  # -- internals

  def _read(self, step: int, read):
    """`read()`, with the errors of unreadable files (truncated, corrupt: Orbax and
    TensorStore raise them as ValueError/OSError/KeyError) as one CheckpointError naming
    the step."""
    try:
      return read()
    except CheckpointError:
      raise
    except (ValueError, OSError, KeyError) as e:
      detail = " ".join(str(e).split())[:300]
      raise CheckpointError(
          f"checkpoint {self.directory}/{step} cannot be read (truncated or corrupt "
          f"files?): {type(e).__name__}: {detail}"
      ) from e

  def _resolve_step(self, step: int | None) -> int:
    steps = self.all_steps()
    if step is None:
      if not steps:
        raise CheckpointError(f"no complete checkpoint in {self.directory}")
      return steps[-1]
    if int(step) not in steps:
      raise CheckpointError(
          f"no checkpoint for step {step} in {self.directory}; "
          f"complete steps: {steps or 'none'}"
      )
    return int(step)

  def _check_layout(self, step: int, abstract) -> None:
    """Same leaves with the same shapes as saved, or an error naming the differences."""
    saved_tree = self._manager.item_metadata(step)[TRAIN_STATE]
    saved = _saved_shapes(getattr(saved_tree, "tree", saved_tree))
    wanted = {
        _leaf_name(p): tuple(x.shape) for p, x in jax.tree_util.tree_leaves_with_path(abstract)
    }
    problems = [f"{k}: missing in checkpoint" for k in wanted if k not in saved]
    problems += [f"{k}: not in the target state" for k in saved if k not in wanted]
    problems += [
        f"{k}: checkpoint shape {saved[k]}, target shape {wanted[k]}"
        for k in wanted
        if k in saved and saved[k] != wanted[k]
    ]
    if problems:
      raise IncompatibleCheckpointError(
          f"checkpoint {self.directory}/{step} does not match the target train state "
          f"({len(problems)} differences): "
          + "; ".join(problems[:8])
          + ("; ..." if len(problems) > 8 else "")
      )
