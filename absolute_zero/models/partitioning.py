"""Logical axis names -> mesh axes, and the one sharding-constraint helper.

Arrays name their dimensions with logical names (`'activation_batch'`, `'embed'`, ...); a rule
table (`absolute_zero.sharding.TRAIN_RULES` / `SAMPLE_RULES`) maps each name to mesh axes of
the `('data', 'fsdp', 'tensor')` mesh. This module sits below the model (the transformer
constrains its activations with it) and above nothing but JAX; `absolute_zero.sharding`
re-exports both functions beside the mesh builder and the rule tables.
"""

from __future__ import annotations

from typing import Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

Rules = tuple[tuple[str, str | tuple[str, ...] | None], ...]


def logical_to_spec(
    names: Sequence[str | None], rules: Rules, mesh: Mesh, shape: Sequence[int] | None = None
) -> PartitionSpec:
  """PartitionSpec for logical `names`; drops mesh axes of size 1 and axes that do not divide
  `shape` (replication is always correct, an uneven split is an error in JAX)."""
  table = dict(rules)
  used: set[str] = set()
  out = []
  for i, name in enumerate(names):
    axes = table.get(name) if name is not None else None
    if axes is None:
      out.append(None)
      continue
    axes = (axes,) if isinstance(axes, str) else tuple(axes)
    kept = []
    size = 1
    for axis in axes:
      n = mesh.shape[axis]
      if axis in used or n == 1:
        continue
      if shape is not None and shape[i] % (size * n):
        continue
      kept.append(axis)
      size *= n
    used.update(kept)
    out.append(tuple(kept) if len(kept) > 1 else (kept[0] if kept else None))
  return PartitionSpec(*out)


def constrain(x: jax.Array, names: Sequence[str | None], mesh: Mesh | None, rules: Rules):
  """`x` laid out on `mesh` as its logical dimension `names` say (`with_sharding_constraint`).

  On a one-device mesh every layout is the same one, so nothing is added to the program
  (tracing and eager calls stay as cheap as without a mesh). `mesh=None` is accepted only
  for the model used on its own (parity checks, export): it means one device too.
  """
  if mesh is None or mesh.size == 1:
    return x
  spec = logical_to_spec(names, rules, mesh, x.shape)
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
