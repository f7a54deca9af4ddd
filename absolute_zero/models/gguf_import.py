"""Load GGUF files (llama.cpp's format) with the `gguf` package, dequantised to float.

Tensors are renamed to the HF layout and handed to `params_from_hf_tensors`, so the
checks and errors are shared with the safetensors importer. Traps handled here:
Llama-architecture Q/K rows are permuted for llama.cpp's interleaved RoPE
and are un-permuted; Gemma norm weights are stored as (1 + w) and get the 1 removed;
Gemma 3's local RoPE base, layer pattern and query scale are not in the file and come
from the family definition.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from absolute_zero.gguf_file import GGUFFile
from absolute_zero.models.config import ModelConfig, RopeScaling
from absolute_zero.models.hf_import import check_config_matches
from absolute_zero.models.hf_layout import (
    ModelFileError,
    aligned_empty,
    params_from_hf_tensors,
)

_ARCH_FAMILY = {"gemma3": "gemma3", "qwen2": "qwen2", "llama": "llama"}

# GGUF tensor name -> HF name; {i} is the layer index.
_COMMON = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "blk.{i}.attn_q.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "blk.{i}.attn_k.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "blk.{i}.attn_v.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "blk.{i}.attn_q.bias": "model.layers.{i}.self_attn.q_proj.bias",
    "blk.{i}.attn_k.bias": "model.layers.{i}.self_attn.k_proj.bias",
    "blk.{i}.attn_v.bias": "model.layers.{i}.self_attn.v_proj.bias",
    "blk.{i}.attn_output.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "blk.{i}.ffn_gate.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "blk.{i}.ffn_up.weight": "model.layers.{i}.mlp.up_proj.weight",
    "blk.{i}.ffn_down.weight": "model.layers.{i}.mlp.down_proj.weight",
    "blk.{i}.attn_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "blk.{i}.attn_q_norm.weight": "model.layers.{i}.self_attn.q_norm.weight",
    "blk.{i}.attn_k_norm.weight": "model.layers.{i}.self_attn.k_norm.weight",
}
_GEMMA = {
    "blk.{i}.post_attention_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "blk.{i}.ffn_norm.weight": "model.layers.{i}.pre_feedforward_layernorm.weight",
    "blk.{i}.post_ffw_norm.weight": "model.layers.{i}.post_feedforward_layernorm.weight",
}
_LLAMA = {"blk.{i}.ffn_norm.weight": "model.layers.{i}.post_attention_layernorm.weight"}


def _name_map(family: str) -> list[tuple[re.Pattern, str]]:
  table = {**_COMMON, **(_GEMMA if family == "gemma3" else _LLAMA)}
  return [(re.compile(re.escape(k).replace(r"\{i\}", r"(\d+)") + "$"), v) for k, v in table.items()]


def open_gguf(path: str | os.PathLike) -> GGUFFile:
  """The file's metadata (without the vocabulary's strings) and memory-mapped tensors, with
  a clear error for a missing, truncated or corrupt file. Close it when done."""
  path = Path(path)
  if not path.exists():
    raise FileNotFoundError(f"GGUF file not found: {path}")
  try:
    return GGUFFile(path, vocabulary=False)
  except ValueError as e:
    raise ModelFileError(
        f"{path}: cannot read GGUF file ({type(e).__name__}: {e}); the file is "
        "truncated or not a GGUF file"
    ) from e


def _field(reader: GGUFFile, key, default=None):
  return reader.metadata.get(key, default)


def config_from_gguf(reader, name: str = "gguf") -> ModelConfig:
  """ModelConfig from GGUF metadata plus the family facts the file does not hold."""
  arch = _field(reader, "general.architecture")
  family = _ARCH_FAMILY.get(arch)
  if family is None:
    raise ModelFileError(
        f"GGUF architecture {arch!r} is not supported "
        f"(supported: {', '.join(sorted(_ARCH_FAMILY))})"
    )
  f = lambda key, default=None: _field(reader, f"{arch}.{key}", default)
  tensors = {t.name: t for t in reader.tensors}
  if "token_embd.weight" not in tensors:
    raise ModelFileError(f"GGUF file has no token_embd.weight tensor")
  d = int(f("embedding_length"))
  heads = int(f("attention.head_count"))
  head_dim = int(f("attention.key_length", d // heads))
  vocab = int(tensors["token_embd.weight"].shape[-1])
  common = dict(
      name=name,
      family=family,
      vocab_size=vocab,
      embed_dim=d,
      num_layers=int(f("block_count")),
      num_heads=heads,
      num_kv_heads=int(f("attention.head_count_kv", heads)),
      head_dim=head_dim,
      mlp_dim=int(f("feed_forward_length")),
      rms_norm_eps=float(np.float32(f("attention.layer_norm_rms_epsilon", 1e-6))),
      tie_embeddings="output.weight" not in tensors,
      max_position=int(f("context_length", 8192)),
  )
  base = float(f("rope.freq_base", 10_000.0))
  if family == "gemma3":
    # Not in the file: local base 1e4, 5 local : 1 global, query scale (HF defaults).
    scaling = None
    factor = f("rope.scaling.factor")
    if factor and float(factor) != 1.0:
      scaling = RopeScaling(kind="linear", factor=float(factor))
    return ModelConfig(
        **common,
        activation="gelu_tanh",
        qk_norm=True,
        post_norms=True,
        norm_offset=1.0,
        embed_scale=True,
        rope_base=base,
        rope_base_local=10_000.0,
        rope_scaling=scaling,
        sliding_window=int(f("attention.sliding_window", 512)),
        global_every=6,
        query_pre_attn_scalar=float(d // heads if d == 5376 else head_dim),
    )
  scaling = None
  if f("rope.scaling.type") == "llama3" or "rope_freqs.weight" in tensors:
    raise ModelFileError(
        "GGUF files with Llama 3.1 RoPE scaling are not supported yet; load the HF "
        "safetensors checkpoint instead"
    )
  return ModelConfig(
      **common, activation="silu", qkv_bias=family == "qwen2", rope_base=base, rope_scaling=scaling
  )


def _unpermute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
  """Undo llama.cpp's Q/K row permutation (interleaved -> rotate-half RoPE)."""
  rows = w.shape[0]
  return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


_DEQUANT_ROWS = 8192  # rows per dequantisation chunk (the embedding has 262,144)


def _dequantize_rows(quants, data: np.ndarray, tensor_type) -> np.ndarray:
  """float32 values of a GGUF tensor, dequantised a block of rows at a time.

  `gguf.quants.dequantize` builds several float temporaries the size of its input; on
  Gemma 3's 262k x 640 embedding that set the loader's peak memory (3.6 GiB for a 1.1 GiB
  model). Rows (the leading axis of the raw data) dequantise independently, so chunks of
  `_DEQUANT_ROWS` cap those temporaries; the result is identical. A chunked result is
  allocated with `aligned_empty`, so the embedding becomes a parameter without a copy.
  """
  if data.ndim < 2 or data.shape[0] <= _DEQUANT_ROWS:
    return np.asarray(quants.dequantize(data, tensor_type), dtype=np.float32)
  first = np.asarray(quants.dequantize(data[:_DEQUANT_ROWS], tensor_type), dtype=np.float32)
  out = aligned_empty((data.shape[0],) + first.shape[1:], np.float32)
  out[:_DEQUANT_ROWS] = first
  for start in range(_DEQUANT_ROWS, data.shape[0], _DEQUANT_ROWS):
    out[start : start + _DEQUANT_ROWS] = quants.dequantize(
        data[start : start + _DEQUANT_ROWS], tensor_type
    )
  return out


def hf_tensors_from_gguf(reader, config: ModelConfig) -> dict[str, np.ndarray]:
  """Dequantised float32 tensors under HF names (fixes permutation and Gemma norms)."""
  return dict(_iter_hf_tensors(reader, config))


def _iter_hf_tensors(reader, config: ModelConfig):
  """(HF name, float32 array) pairs, dequantised one tensor at a time."""
  from gguf import quants  # on use: GGUF paths only

  names = _name_map(config.family)
  for t in reader.tensors:
    for regex, hf in names:
      m = regex.match(t.name)
      if m:
        hf_name = hf.replace("{i}", m.group(1)) if m.groups() else hf
        break
    else:
      raise ModelFileError(f"GGUF tensor {t.name!r} is unexpected for a " f"{config.family} model")
    try:
      array = _dequantize_rows(quants, t.data, t.tensor_type)
    except Exception as e:
      raise ModelFileError(
          f"GGUF tensor {t.name!r} ({t.tensor_type.name}) cannot be " f"dequantised: {e}"
      ) from e
    array = array.reshape(tuple(int(s) for s in reversed(t.shape)))
    if config.family == "llama" and t.name.endswith(("attn_q.weight", "attn_k.weight")):
      n = config.num_heads if "attn_q" in t.name else config.num_kv_heads
      array = _unpermute_rows(array, n)
    if config.norm_offset and "norm" in t.name:
      array = array - np.float32(config.norm_offset)
    yield hf_name, array


def load_gguf(
    path: str | os.PathLike, config: ModelConfig | None = None, param_dtype: str | None = None
) -> tuple[ModelConfig, dict]:
  """(config, params) from a GGUF file. A given `config` must match the file's shapes.

  The file is mapped only while loading; no leaf of the result refers to it.
  """
  with open_gguf(path) as reader:
    file_config = config_from_gguf(reader, name=Path(path).stem)
    if config is not None:
      check_config_matches(config, file_config, str(path))
      file_config = config
    if param_dtype:
      file_config = file_config.replace(param_dtype=param_dtype)
    # Tensors are dequantised as they are converted, so the float32 HF-layout copy of the
    # whole model never exists beside our params (it set the loader's peak memory).
    tensors = _iter_hf_tensors(reader, file_config)
    return file_config, params_from_hf_tensors(tensors, file_config, source=str(path))
