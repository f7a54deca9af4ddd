"""Load Hugging Face checkpoints: a directory with `config.json` and safetensors shards.

Reads both the classic config keys (`rope_theta`, `rope_scaling`, `rope_local_base_freq`)
and the transformers 5 `rope_parameters` block, for Gemma 3 (text), Qwen2/2.5 and Llama 3.x.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from absolute_zero.models.config import ModelConfig, RopeScaling
from absolute_zero.models.hf_layout import CheckpointError, params_from_hf_tensors

_FAMILIES = {"gemma3_text": "gemma3", "gemma3": "gemma3", "qwen2": "qwen2",
             "llama": "llama"}


def _rope(cfg: dict, layer_type: str | None) -> tuple[float, RopeScaling | None]:
  """(base, scaling) for a layer type, from either config style."""
  params = cfg.get("rope_parameters")
  if isinstance(params, dict) and layer_type and layer_type in params:
    params = params[layer_type]
  if isinstance(params, dict) and "rope_theta" in params:
    base, scaling = params["rope_theta"], params
  else:
    base = cfg.get("rope_theta", 10_000.0)
    if layer_type == "sliding_attention":
      base = cfg.get("rope_local_base_freq", 10_000.0)
      return float(base), None
    scaling = cfg.get("rope_scaling")
  if not scaling:
    return float(base), None
  kind = scaling.get("rope_type", scaling.get("type", "default"))
  if kind == "default":
    return float(base), None
  if kind == "linear":
    return float(base), RopeScaling(kind="linear", factor=float(scaling["factor"]))
  if kind == "llama3":
    return float(base), RopeScaling(
        kind="llama3", factor=float(scaling["factor"]),
        low_freq_factor=float(scaling["low_freq_factor"]),
        high_freq_factor=float(scaling["high_freq_factor"]),
        original_max_position=int(scaling["original_max_position_embeddings"]))
  raise CheckpointError(f"unsupported RoPE scaling type {kind!r} in config.json")


# config.json fields every supported family must state (no defensible default).
REQUIRED_FIELDS = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers",
                   "num_attention_heads", "intermediate_size")


def config_from_hf(cfg: dict, name: str = "hf", source: str = "config.json") -> ModelConfig:
  """A ModelConfig from a parsed HF `config.json` dict.

  Raises:
    CheckpointError: naming `source` and every missing field (REQUIRED_FIELDS, or a RoPE
      scaling field), or an unsupported model type / layer pattern.
  """
  if not isinstance(cfg, dict):
    raise CheckpointError(f"{source}: expected a JSON object, got {type(cfg).__name__}")
  where = source
  if "text_config" in cfg and cfg.get("model_type") == "gemma3":
    cfg = {**cfg["text_config"], "model_type": "gemma3_text"}
    where = f"{source} (text_config)"
  missing = [f for f in REQUIRED_FIELDS if f not in cfg]
  if missing:
    raise CheckpointError(
        f"{where} lacks required field{'s' if len(missing) > 1 else ''} "
        f"{', '.join(missing)} (is this a Hugging Face transformers checkpoint?)")
  try:
    return _config_from_hf(cfg, name)
  except KeyError as e:
    raise CheckpointError(f"{where} lacks field {e.args[0]!r}") from None


def _config_from_hf(cfg: dict, name: str) -> ModelConfig:
  model_type = cfg.get("model_type")
  family = _FAMILIES.get(model_type)
  if family is None:
    raise CheckpointError(
        f"config.json model_type {model_type!r} is not supported "
        f"(supported: {', '.join(sorted(_FAMILIES))})")
  heads = cfg["num_attention_heads"]
  head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
  common = dict(
      name=name, family=family, vocab_size=cfg["vocab_size"],
      embed_dim=cfg["hidden_size"], num_layers=cfg["num_hidden_layers"],
      num_heads=heads, num_kv_heads=cfg.get("num_key_value_heads", heads),
      head_dim=head_dim, mlp_dim=cfg["intermediate_size"],
      rms_norm_eps=cfg.get("rms_norm_eps", 1e-6),
      tie_embeddings=bool(cfg.get("tie_word_embeddings", family != "llama")),
      max_position=cfg.get("max_position_embeddings", 32_768))
  if family == "gemma3":
    layer_types = cfg.get("layer_types")
    pattern = cfg.get("sliding_window_pattern", cfg.get("_sliding_window_pattern", 6))
    if layer_types:
      globals_ = [i for i, t in enumerate(layer_types) if t == "full_attention"]
      expected = [i for i in range(len(layer_types)) if (i + 1) % pattern == 0]
      if globals_ != expected:
        raise CheckpointError(
            f"config.json layer_types put global layers at {globals_}; only a regular "
            f"pattern (every {pattern}th layer) is supported")
    base, scaling = _rope(cfg, "full_attention")
    base_local, _ = _rope(cfg, "sliding_attention")
    return ModelConfig(
        **common, activation="gelu_tanh", qk_norm=True, post_norms=True,
        norm_offset=1.0, embed_scale=True, rope_base=base, rope_base_local=base_local,
        rope_scaling=scaling, sliding_window=cfg.get("sliding_window", 512),
        global_every=pattern,
        query_pre_attn_scalar=float(cfg.get("query_pre_attn_scalar", head_dim)),
        final_logit_softcap=cfg.get("final_logit_softcapping"))
  base, scaling = _rope(cfg, None)
  return ModelConfig(**common, activation="silu", qkv_bias=family == "qwen2",
                     rope_base=base, rope_scaling=scaling)


def read_safetensors_dir(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """All tensors of a safetensors checkpoint (single file or sharded with an index)."""
  from safetensors.numpy import load_file  # local import: optional for GGUF-only users

  path = Path(path)
  index = path / "model.safetensors.index.json"
  if index.exists():
    weight_map = json.loads(index.read_text())["weight_map"]
    shards = sorted(set(weight_map.values()))
    missing = [s for s in shards if not (path / s).exists()]
    if missing:
      raise CheckpointError(
          f"{path}: shard(s) listed in model.safetensors.index.json are missing: "
          f"{', '.join(missing)}")
  else:
    shards = sorted(p.name for p in path.glob("*.safetensors"))
    if not shards:
      raise CheckpointError(f"{path}: no *.safetensors files found")
  tensors: dict[str, np.ndarray] = {}
  for shard in shards:
    try:
      tensors.update(_load_shard(path / shard, load_file))
    except CheckpointError:
      raise
    except Exception as e:  # corrupt or truncated shard
      raise CheckpointError(f"{path / shard}: cannot read safetensors shard: {e}") from e
  return tensors


def _load_shard(file: Path, load_file) -> dict[str, np.ndarray]:
  try:
    return load_file(str(file))
  except (TypeError, ValueError) as e:
    if "bfloat16" not in str(e).lower() and "bf16" not in str(e).lower():
      raise
  # numpy has no bfloat16: read the raw bytes through ml_dtypes.
  import ml_dtypes
  header_len = int.from_bytes(file.read_bytes()[:8], "little")
  with open(file, "rb") as fh:
    fh.seek(8)
    header = json.loads(fh.read(header_len))
    data = np.memmap(file, dtype=np.uint8, mode="r", offset=8 + header_len)
  dtypes = {"BF16": ml_dtypes.bfloat16, "F16": np.float16, "F32": np.float32,
            "I64": np.int64, "I32": np.int32}
  out = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    start, end = info["data_offsets"]
    out[name] = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(
        info["shape"]).astype(np.float32)
  return out


def load_hf_checkpoint(path: str | os.PathLike, config: ModelConfig | None = None,
                       param_dtype: str | None = None) -> tuple[ModelConfig, dict]:
  """(config, params) from an HF directory. A given `config` must match config.json."""
  path = Path(path)
  cfg_file = path / "config.json"
  if not cfg_file.exists():
    raise CheckpointError(f"{path}: no config.json (is this a Hugging Face checkpoint?)")
  try:
    parsed = json.loads(cfg_file.read_text(encoding="utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise CheckpointError(f"{cfg_file}: not valid JSON ({e}); the file is corrupt or "
                          "truncated") from None
  file_config = config_from_hf(parsed, name=path.name, source=str(cfg_file))
  if config is not None:
    check_config_matches(config, file_config, str(cfg_file))
    file_config = config
  if param_dtype:
    file_config = file_config.replace(param_dtype=param_dtype)
  tensors = read_safetensors_dir(path)
  return file_config, params_from_hf_tensors(tensors, file_config, source=str(path))


_SHAPE_FIELDS = ("family", "vocab_size", "embed_dim", "num_layers", "num_heads",
                 "num_kv_heads", "head_dim", "mlp_dim", "tie_embeddings")


def check_config_matches(expected: ModelConfig, found: ModelConfig, source: str) -> None:
  diffs = [f"{f}: model {getattr(expected, f)!r} vs {getattr(found, f)!r}"
           for f in _SHAPE_FIELDS if getattr(expected, f) != getattr(found, f)]
  if diffs:
    raise CheckpointError(
        f"{source} does not match model config {expected.name!r}: " + "; ".join(diffs))


