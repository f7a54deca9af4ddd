"""Device mesh and shardings: logical axis names -> mesh axes `('data', 'fsdp', 'tensor')`.

Every parameter carries logical axis names (set where it is created in the model); two
rule tables map them onto the mesh:
  * TRAIN_RULES: FSDP + tensor parallelism: weights sharded over `fsdp` on their embed
    dimension and over `tensor` on heads / MLP / vocab; the batch over `data` x `fsdp`.
  * SAMPLE_RULES: weights replicated over `data`/`fsdp` (gathered once, not per decode
    step), sharded over `tensor` only; the batch over `data` x `fsdp`.
A mesh axis that does not divide a dimension is dropped for that dimension (e.g. Gemma 3
270M has one KV head, which cannot be split over `tensor=2`) — replication is always
correct, an uneven split is an error in JAX.
The mesh is always passed explicitly; nothing here sets a global mesh. One device is the
1 x 1 x 1 mesh (`single_device_mesh`), through the same code as many. The mapping of logical
names and the one sharding-constraint helper live in `models.partitioning` (the model uses
them) and are re-exported here.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from absolute_zero.models.partitioning import MESH_AXES, Rules, constrain, logical_to_spec
from absolute_zero.models.transformer import Transformer, logical_axes

__all__ = [
    "MESH_AXES",
    "Rules",
    "SAMPLE_RULES",
    "TRAIN_RULES",
    "batch_sharding",
    "constrain",
    "data_parallel_size",
    "logical_to_spec",
    "make_mesh",
    "param_shardings",
    "parse_mesh_shape",
    "replicated",
    "single_device_mesh",
    "tree_shardings",
]

_ACTIVATION_RULES: Rules = (
    ("activation_batch", ("data", "fsdp")),
    ("activation_length", None),
    ("activation_embed", None),
    ("activation_heads", "tensor"),
    ("activation_kv_heads", "tensor"),
    ("activation_mlp", "tensor"),
    ("activation_vocab", "tensor"),
)

_WEIGHT_RULES: Rules = (
    ("vocab", "tensor"),
    ("mlp", "tensor"),
    ("q_heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("layers", None),
    ("norm", None),
)

# The two tables differ only in where the weights' embed dimension goes.
TRAIN_RULES: Rules = _ACTIVATION_RULES + _WEIGHT_RULES + (("embed", "fsdp"),)
SAMPLE_RULES: Rules = _ACTIVATION_RULES + _WEIGHT_RULES + (("embed", None),)


def parse_mesh_shape(spec: str | Sequence[int]) -> tuple[int, int, int]:
  """'1,4,2' -> (1, 4, 2) for ('data', 'fsdp', 'tensor'); -1 takes the remaining devices."""
  if isinstance(spec, str):
    try:
      dims = tuple(int(x) for x in spec.split(","))
    except ValueError:
      raise ValueError(
          f"--mesh must be three integers like '1,4,2' " f"(data,fsdp,tensor), got {spec!r}"
      ) from None
  else:
    dims = tuple(int(x) for x in spec)
  if len(dims) != 3 or any(d == 0 or d < -1 for d in dims) or dims.count(-1) > 1:
    raise ValueError(
        f"mesh shape must be three positive sizes (one may be -1) for " f"{MESH_AXES}, got {spec!r}"
    )
  return dims  # type: ignore[return-value]


def make_mesh(
    shape: str | Sequence[int] = (1, 1, -1), devices: Sequence[jax.Device] | None = None
) -> Mesh:
  """A ('data', 'fsdp', 'tensor') mesh; the product must equal the device count."""
  devices = list(devices if devices is not None else jax.devices())
  dims = list(parse_mesh_shape(shape))
  if -1 in dims:
    known = int(np.prod([d for d in dims if d != -1]))
    if len(devices) % known:
      raise ValueError(f"mesh {shape!r} does not fit {len(devices)} devices")
    dims[dims.index(-1)] = len(devices) // known
  if int(np.prod(dims)) != len(devices):
    raise ValueError(
        f"mesh {tuple(dims)} for axes {MESH_AXES} needs {int(np.prod(dims))} devices, "
        f"but {len(devices)} are available ({jax.default_backend()}); pass a --mesh whose "
        "product is the device count"
    )
  return Mesh(np.asarray(devices).reshape(dims), MESH_AXES)


def tree_shardings(logical_tree, shapes_tree, mesh: Mesh, rules: Rules):
  """NamedSharding for every leaf, from a pytree of logical names and one of shapes."""

  def one(names, shaped):
    return NamedSharding(mesh, logical_to_spec(tuple(names), rules, mesh, shaped.shape))

  return jax.tree.map(
      one, logical_tree, shapes_tree, is_leaf=lambda x: isinstance(x, PartitionSpec)
  )


def param_shardings(config, mesh: Mesh, rules: Rules = TRAIN_RULES):
  """NamedShardings matching the params pytree of `config`."""
  tokens = jnp.zeros((1, 1), jnp.int32)
  shapes = jax.eval_shape(
      lambda: nn.meta.unbox(Transformer(config).init(jax.random.key(0), tokens, tokens))
  )["params"]
  return tree_shardings(logical_axes(config), shapes, mesh, rules)


def batch_sharding(mesh: Mesh, rules: Rules = TRAIN_RULES, ndim: int = 2) -> NamedSharding:
  """Sharding of a [batch, ...] array: batch over the batch axes, the rest replicated."""
  names = ("activation_batch",) + (None,) * (ndim - 1)
  return NamedSharding(mesh, logical_to_spec(names, rules, mesh))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def data_parallel_size(mesh: Mesh, rules: Rules = TRAIN_RULES) -> int:
  """How many parts the batch dimension is split into on `mesh` under `rules`.

  The product of the mesh axes `'activation_batch'` maps to (`data` x `fsdp` in both rule
  tables): batches, micro-batches and sampling groups are padded to multiples of it.
  """
  spec = batch_sharding(mesh, rules).spec[0]
  axes = () if spec is None else ((spec,) if isinstance(spec, str) else tuple(spec))
  return int(np.prod([mesh.shape[a] for a in axes]))


def single_device_mesh() -> Mesh:
  """The 1 x 1 x 1 mesh of the first device: what a one-device run uses (same code path
  as a pod slice; sharding constraints on it add nothing, see `constrain`)."""
  return make_mesh((1, 1, 1), jax.devices()[:1])
