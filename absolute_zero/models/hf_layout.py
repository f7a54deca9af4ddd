"""Map checkpoint tensors in the Hugging Face layout onto our parameter pytree, and back.

Both importers (HF safetensors and GGUF) first produce a flat `{hf_name: np.ndarray}`
dict in the HF layout (torch `[out, in]` weights, raw Gemma norm weights), then call
`params_from_hf_tensors`, so the shape checks and error messages live in one place. The
exporter (`hf_export.py`) calls the inverse, `hf_tensors_from_params`, over the same table.

One table (`_rules`) says, per family, which of our parameters each HF tensor feeds and
how: the HF tensor is transposed (torch `[out, in]` -> `[in, out]`) when `transpose` is
set, then reshaped to our shape; the inverse reshapes our array to the (transposed) HF
shape and transposes back. Reshapes only split or join axes, so both directions are
exact.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterable, Mapping

import ml_dtypes

import numpy as np

from absolute_zero.models.config import ModelConfig

# Byte alignment at which XLA's CPU client adopts a host buffer instead of copying it: a
# numpy array at a 64-byte-aligned address becomes a jax.Array without a copy
# (`jax.device_put`), one at 16 or 32 past such an address is copied. numpy's own large
# arrays start 16 bytes into their pages, so without this every weight is held twice (numpy
# and device) while the loader's caller keeps the numpy tree (measured: +820 MiB for Gemma 3
# 270M float32 in experiments/bench_sampler.py).
HOST_ALIGNMENT = 64


def aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
  """An uninitialised C-contiguous array whose data starts at a `HOST_ALIGNMENT` address."""
  dtype = np.dtype(dtype)
  nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  raw = np.empty(nbytes + HOST_ALIGNMENT, np.uint8)
  start = -raw.ctypes.data % HOST_ALIGNMENT
  return raw[start : start + nbytes].view(dtype).reshape(shape)


def is_host_aligned(x: np.ndarray) -> bool:
  """x is C-contiguous and starts at a `HOST_ALIGNMENT` address (devices can adopt it)."""
  return x.flags.c_contiguous and x.ctypes.data % HOST_ALIGNMENT == 0


class ModelFileError(ValueError):
  """A model file (Hugging Face directory, GGUF file) does not fit the model, or a model
  cannot be written in the Hugging Face layout: names the offending tensor key or field.

  (A self-play run's checkpoint raises `checkpointing.CheckpointError` instead.)"""


@dataclasses.dataclass(frozen=True)
class _Rule:
  pattern: str  # regex over the HF name; group 1 is the layer index for layer tensors
  target: tuple[str, ...]  # path in our params pytree
  hf_shape: Callable[[ModelConfig], tuple[int, ...]]  # the HF tensor's shape
  ours: Callable[[ModelConfig], tuple[int, ...]]  # our shape (one layer's, for layers)
  transpose: bool = False  # torch [out, in] weight: transposed before the reshape

  def to_ours(self, x: np.ndarray, config: ModelConfig) -> np.ndarray:
    """HF tensor `hf_shape` -> our array `ours` (transpose, then reshape)."""
    return (x.T if self.transpose else x).reshape(self.ours(config))

  def to_hf(self, y: np.ndarray, config: ModelConfig) -> np.ndarray:
    """Our array `ours` -> HF tensor `hf_shape` (the inverse of `to_ours`)."""
    shape = self.hf_shape(config)
    if self.transpose:
      return np.ascontiguousarray(y.reshape(shape[::-1]).T)
    return y.reshape(shape)

  def hf_name(self, layer: int | None = None) -> str:
    """The HF tensor name this rule matches (of `layer`, for per-layer tensors)."""
    name = self.pattern if layer is None else self.pattern.replace(r"(\d+)", str(layer))
    return name.replace("\\", "")

  @property
  def per_layer(self) -> bool:
    return "layers" in self.target


def _rules(config: ModelConfig) -> list[_Rule]:
  c = config
  d, h, k, hd, f = c.embed_dim, c.num_heads, c.num_kv_heads, c.head_dim, c.mlp_dim
  layer = r"model\.layers\.(\d+)\."
  vec = lambda n: (lambda c: (n,))  # noqa: E731 - a 1-D tensor of n entries both ways
  rules = [
      _Rule(
          r"model\.embed_tokens\.weight",
          ("embedding",),
          lambda c: (c.vocab_size, d),
          lambda c: (c.vocab_size, d),
      ),
      _Rule(r"model\.norm\.weight", ("final_norm", "scale"), vec(d), vec(d)),
      _Rule(
          layer + r"self_attn\.q_proj\.weight",
          ("layers", "attn", "q_proj"),
          lambda c: (h * hd, d),
          lambda c: (d, h, hd),
          transpose=True,
      ),
      _Rule(
          layer + r"self_attn\.k_proj\.weight",
          ("layers", "attn", "k_proj"),
          lambda c: (k * hd, d),
          lambda c: (d, k, hd),
          transpose=True,
      ),
      _Rule(
          layer + r"self_attn\.v_proj\.weight",
          ("layers", "attn", "v_proj"),
          lambda c: (k * hd, d),
          lambda c: (d, k, hd),
          transpose=True,
      ),
      _Rule(
          layer + r"self_attn\.o_proj\.weight",
          ("layers", "attn", "o_proj"),
          lambda c: (d, h * hd),
          lambda c: (h, hd, d),
          transpose=True,
      ),
      _Rule(
          layer + r"mlp\.gate_proj\.weight",
          ("layers", "mlp", "gate_proj"),
          lambda c: (f, d),
          lambda c: (d, f),
          transpose=True,
      ),
      _Rule(
          layer + r"mlp\.up_proj\.weight",
          ("layers", "mlp", "up_proj"),
          lambda c: (f, d),
          lambda c: (d, f),
          transpose=True,
      ),
      _Rule(
          layer + r"mlp\.down_proj\.weight",
          ("layers", "mlp", "down_proj"),
          lambda c: (d, f),
          lambda c: (f, d),
          transpose=True,
      ),
      _Rule(
          layer + r"input_layernorm\.weight", ("layers", "pre_attn_norm", "scale"), vec(d), vec(d)
      ),
  ]
  if not c.tie_embeddings:
    rules.append(
        _Rule(
            r"lm_head\.weight",
            ("lm_head",),
            lambda c: (c.vocab_size, d),
            lambda c: (c.vocab_size, d),
        )
    )
  if c.qkv_bias:
    rules += [
        _Rule(
            layer + r"self_attn\.q_proj\.bias",
            ("layers", "attn", "q_bias"),
            vec(h * hd),
            lambda c: (h, hd),
        ),
        _Rule(
            layer + r"self_attn\.k_proj\.bias",
            ("layers", "attn", "k_bias"),
            vec(k * hd),
            lambda c: (k, hd),
        ),
        _Rule(
            layer + r"self_attn\.v_proj\.bias",
            ("layers", "attn", "v_bias"),
            vec(k * hd),
            lambda c: (k, hd),
        ),
    ]
  if c.qk_norm:
    rules += [
        _Rule(
            layer + r"self_attn\.q_norm\.weight",
            ("layers", "attn", "q_norm", "scale"),
            vec(hd),
            vec(hd),
        ),
        _Rule(
            layer + r"self_attn\.k_norm\.weight",
            ("layers", "attn", "k_norm", "scale"),
            vec(hd),
            vec(hd),
        ),
    ]
  if c.post_norms:  # Gemma: post_attention_layernorm is the norm *after* attention
    rules += [
        _Rule(
            layer + r"post_attention_layernorm\.weight",
            ("layers", "post_attn_norm", "scale"),
            vec(d),
            vec(d),
        ),
        _Rule(
            layer + r"pre_feedforward_layernorm\.weight",
            ("layers", "pre_mlp_norm", "scale"),
            vec(d),
            vec(d),
        ),
        _Rule(
            layer + r"post_feedforward_layernorm\.weight",
            ("layers", "post_mlp_norm", "scale"),
            vec(d),
            vec(d),
        ),
    ]
  else:  # Llama/Qwen: post_attention_layernorm is the pre-MLP norm
    rules.append(
        _Rule(
            layer + r"post_attention_layernorm\.weight",
            ("layers", "pre_mlp_norm", "scale"),
            vec(d),
            vec(d),
        )
    )
  return rules


_IGNORED = (r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq",)


def normalise_hf_name(name: str) -> str:
  """Strips wrappers some checkpoints add (multimodal Gemma 3, `language_model.`)."""
  for prefix in ("language_model.model.", "model.language_model."):
    if name.startswith(prefix):
      return "model." + name[len(prefix) :]
  if name.startswith("language_model.lm_head."):
    return name[len("language_model.") :]
  return name


def params_from_hf_tensors(
    tensors: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]],
    config: ModelConfig,
    source: str = "checkpoint",
) -> dict:
  """Builds our params pytree from HF-layout tensors, checking names and shapes.

  `tensors`: a name -> array mapping, or (name, array) pairs, e.g. a generator that
  produces each tensor only when it is converted (the GGUF loader: lower peak memory).

  Every returned array starts at a `HOST_ALIGNMENT` address, so a CPU device adopts it
  (`jax.device_put` makes no copy): a caller keeping this tree holds the weights once.

  Raises ModelFileError naming the key for a missing, unexpected or wrong-shaped
  tensor. A tied model ignores a stored `lm_head.weight` (some exports keep it).
  Vision-tower tensors of multimodal checkpoints are skipped.
  """
  rules = [(re.compile(r.pattern + r"$"), r) for r in _rules(config)]
  layer_slots: dict[tuple[str, ...], tuple[np.ndarray, list[bool]]] = {}
  flat: dict[tuple[str, ...], np.ndarray] = {}
  unexpected = []
  pairs = tensors.items() if isinstance(tensors, Mapping) else tensors
  for raw_name, array in pairs:
    name = normalise_hf_name(raw_name)
    if any(re.fullmatch(p, name) for p in _IGNORED):
      continue
    if name.startswith(
        (
            "vision_tower.",
            "multi_modal_projector.",
            "model.vision_tower.",
            "model.multi_modal_projector.",
        )
    ):
      continue
    if name == "lm_head.weight" and config.tie_embeddings:
      continue
    for regex, rule in rules:
      m = regex.match(name)
      if not m:
        continue
      expected = rule.hf_shape(config)
      if tuple(array.shape) != expected:
        raise ModelFileError(
            f"{source}: tensor {raw_name!r} has shape {tuple(array.shape)} but model "
            f"{config.name!r} expects {expected}"
        )
      value = rule.to_ours(np.asarray(array), config)
      if m.groups():
        idx = int(m.group(1))
        if idx >= config.num_layers:
          raise ModelFileError(
              f"{source}: tensor {raw_name!r} is for layer {idx} but model "
              f"{config.name!r} has {config.num_layers} layers"
          )
        if rule.target not in layer_slots:
          # Preallocated [layers, ...]: each layer is written in place as it is converted,
          # instead of a list of per-layer copies stacked at the end (which held every
          # layer weight twice, on top of the HF tensors, at the loader's peak).
          stacked = aligned_empty((config.num_layers,) + value.shape, value.dtype)
          layer_slots[rule.target] = (stacked, [False] * config.num_layers)
        stacked, filled = layer_slots[rule.target]
        stacked[idx] = value
        filled[idx] = True
      else:
        flat[rule.target] = value
      break
    else:
      unexpected.append(raw_name)
  if unexpected:
    raise ModelFileError(
        f"{source}: unexpected tensor(s) for model {config.name!r}: "
        f"{', '.join(sorted(unexpected)[:10])}"
        + (f" (+{len(unexpected) - 10} more)" if len(unexpected) > 10 else "")
    )
  missing = []
  for _, rule in rules:
    if rule.per_layer:
      filled = layer_slots.get(rule.target, (None, [False] * config.num_layers))[1]
      missing += [rule.hf_name(i) for i, done in enumerate(filled) if not done]
    elif rule.target not in flat:
      missing.append(rule.hf_name())
  if missing:
    raise ModelFileError(
        f"{source}: missing tensor(s) for model {config.name!r}: "
        f"{', '.join(missing[:10])}"
        + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
    )
  for target, (stacked, _) in layer_slots.items():
    flat[target] = stacked
  params: dict = {}
  for path, value in flat.items():
    node = params
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = _cast(value, config.param_dtype)
  return params


def _cast(x: np.ndarray, dtype: str) -> np.ndarray:
  """x in `dtype` at a `HOST_ALIGNMENT` address; x itself when it already is both (a copy
  of every weight set the peak; an unaligned array is copied again by `jax.device_put`)."""
  dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
  if x.dtype == dtype and is_host_aligned(x):
    return x
  out = aligned_empty(x.shape, dtype)
  np.copyto(out, x, casting="unsafe")  # the conversion `astype` does
  return out


def hf_tensors_from_params(params: dict, config: ModelConfig):
  """Yields (hf_name, np.ndarray) for every tensor of an HF checkpoint of `params`.

  The inverse of `params_from_hf_tensors` over the same table: torch `[out, in]` weights,
  raw Gemma norm weights (HF's Gemma RMSNorm multiplies by 1 + w, as ours does), no
  `lm_head.weight` for tied embeddings. One tensor at a time, in the parameters' dtype, so
  a caller writing shards holds at most one converted tensor beside the parameters.

  Raises:
    ModelFileError: `params` lacks a parameter the config needs, or has a wrong shape.
  """
  for rule in _rules(config):
    node = params
    try:
      for key in rule.target:
        node = node[key]
    except (KeyError, TypeError):
      raise ModelFileError(
          f"parameters of model {config.name!r} lack " f"{'/'.join(rule.target)}"
      ) from None
    array = np.asarray(node)  # a device array comes to the host here, one at a time
    ours = rule.ours(config)
    expected = ((config.num_layers,) + ours) if rule.per_layer else ours
    if array.shape != expected:
      raise ModelFileError(
          f"parameter {'/'.join(rule.target)} of model {config.name!r} has shape "
          f"{array.shape}, expected {expected}"
      )
    if rule.per_layer:
      for i in range(config.num_layers):
        yield rule.hf_name(i), rule.to_hf(array[i], config)
    else:
      yield rule.hf_name(), rule.to_hf(array, config)
