"""Load Hugging Face checkpoints: a directory with `config.json` and safetensors shards.

Reads both the classic config keys (`rope_theta`, `rope_scaling`, `rope_local_base_freq`)
and the transformers 5 `rope_parameters` block, for Gemma 3 (text), Qwen2/2.5 and Llama 3.x.
`config_to_hf` is the inverse of `config_from_hf` (used by `hf_export.py`); it writes the
classic keys, which transformers 4 and 5 and other HF-format readers all accept.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import ml_dtypes
import numpy as np

from absolute_zero.models.config import ModelConfig, RopeScaling
from absolute_zero.models.hf_layout import ModelFileError, params_from_hf_tensors

_FAMILIES = {"gemma3_text": "gemma3", "gemma3": "gemma3", "qwen2": "qwen2", "llama": "llama"}


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
        kind="llama3",
        factor=float(scaling["factor"]),
        low_freq_factor=float(scaling["low_freq_factor"]),
        high_freq_factor=float(scaling["high_freq_factor"]),
        original_max_position=int(scaling["original_max_position_embeddings"]),
    )
  raise ModelFileError(f"unsupported RoPE scaling type {kind!r} in config.json")


# config.json fields every supported family must state (no defensible default).
REQUIRED_FIELDS = (
    "model_type",
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
)


def config_from_hf(cfg: dict, name: str = "hf", source: str = "config.json") -> ModelConfig:
  """A ModelConfig from a parsed HF `config.json` dict.

  Raises:
    ModelFileError: naming `source` and every missing field (REQUIRED_FIELDS, or a RoPE
      scaling field), or an unsupported model type / layer pattern.
  """
  if not isinstance(cfg, dict):
    raise ModelFileError(f"{source}: expected a JSON object, got {type(cfg).__name__}")
  where = source
  if "text_config" in cfg and cfg.get("model_type") == "gemma3":
    cfg = {**cfg["text_config"], "model_type": "gemma3_text"}
    where = f"{source} (text_config)"
  missing = [f for f in REQUIRED_FIELDS if f not in cfg]
  if missing:
    raise ModelFileError(
        f"{where} lacks required field{'s' if len(missing) > 1 else ''} "
        f"{', '.join(missing)} (is this a Hugging Face transformers checkpoint?)"
    )
  try:
    return _config_from_hf(cfg, name)
  except KeyError as e:
    raise ModelFileError(f"{where} lacks field {e.args[0]!r}") from None


def _config_from_hf(cfg: dict, name: str) -> ModelConfig:
  model_type = cfg.get("model_type")
  family = _FAMILIES.get(model_type)
  if family is None:
    raise ModelFileError(
        f"config.json model_type {model_type!r} is not supported "
        f"(supported: {', '.join(sorted(_FAMILIES))})"
    )
  heads = cfg["num_attention_heads"]
  head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
  common = dict(
      name=name,
      family=family,
      vocab_size=cfg["vocab_size"],
      embed_dim=cfg["hidden_size"],
      num_layers=cfg["num_hidden_layers"],
      num_heads=heads,
      num_kv_heads=cfg.get("num_key_value_heads", heads),
      head_dim=head_dim,
      mlp_dim=cfg["intermediate_size"],
      rms_norm_eps=cfg.get("rms_norm_eps", 1e-6),
      tie_embeddings=bool(cfg.get("tie_word_embeddings", family != "llama")),
      max_position=cfg.get("max_position_embeddings", 32_768),
  )
  if family == "gemma3":
    layer_types = cfg.get("layer_types")
    pattern = cfg.get("sliding_window_pattern", cfg.get("_sliding_window_pattern", 6))
    if layer_types:
      globals_ = [i for i, t in enumerate(layer_types) if t == "full_attention"]
      expected = [i for i in range(len(layer_types)) if (i + 1) % pattern == 0]
      if globals_ != expected:
        raise ModelFileError(
            f"config.json layer_types put global layers at {globals_}; only a regular "
            f"pattern (every {pattern}th layer) is supported"
        )
    base, scaling = _rope(cfg, "full_attention")
    base_local, _ = _rope(cfg, "sliding_attention")
    return ModelConfig(
        **common,
        activation="gelu_tanh",
        qk_norm=True,
        post_norms=True,
        norm_offset=1.0,
        embed_scale=True,
        rope_base=base,
        rope_base_local=base_local,
        rope_scaling=scaling,
        sliding_window=cfg.get("sliding_window", 512),
        global_every=pattern,
        query_pre_attn_scalar=float(cfg.get("query_pre_attn_scalar", head_dim)),
        final_logit_softcap=cfg.get("final_logit_softcapping"),
    )
  base, scaling = _rope(cfg, None)
  return ModelConfig(
      **common, activation="silu", qkv_bias=family == "qwen2", rope_base=base, rope_scaling=scaling
  )


# The HF model class and model_type of each family (config_to_hf).
_HF_CLASSES = {
    "gemma3": ("Gemma3ForCausalLM", "gemma3_text"),
    "qwen2": ("Qwen2ForCausalLM", "qwen2"),
    "llama": ("LlamaForCausalLM", "llama"),
}
# Switches each family's HF model has fixed: a config that differs cannot be written as
# that family (configs come from the importers or presets, which always match).
_FIXED = {
    "gemma3": dict(
        activation="gelu_tanh",
        qkv_bias=False,
        qk_norm=True,
        post_norms=True,
        norm_offset=1.0,
        embed_scale=True,
    ),
    "qwen2": dict(
        activation="silu",
        qkv_bias=True,
        qk_norm=False,
        post_norms=False,
        norm_offset=0.0,
        embed_scale=False,
        sliding_window=None,
        global_every=0,
        final_logit_softcap=None,
    ),
    "llama": dict(
        activation="silu",
        qkv_bias=False,
        qk_norm=False,
        post_norms=False,
        norm_offset=0.0,
        embed_scale=False,
        sliding_window=None,
        global_every=0,
        final_logit_softcap=None,
    ),
}


def _rope_scaling_to_hf(scaling: RopeScaling | None) -> dict | None:
  """The inverse of `_rope`'s scaling branch (classic `rope_scaling` block)."""
  if scaling is None:
    return None
  if scaling.kind == "linear":
    return {"rope_type": "linear", "factor": scaling.factor}
  return {
      "rope_type": "llama3",
      "factor": scaling.factor,
      "low_freq_factor": scaling.low_freq_factor,
      "high_freq_factor": scaling.high_freq_factor,
      "original_max_position_embeddings": scaling.original_max_position,
  }


def _int_if_whole(x: float) -> int | float:
  """HF configs type query_pre_attn_scalar as int (transformers 5 checks types)."""
  return int(x) if float(x).is_integer() else float(x)


def config_to_hf(
    config: ModelConfig,
    *,
    torch_dtype: str = "float32",
    bos_token_id: int | None = None,
    eos_token_id=None,
    pad_token_id: int | None = None,
) -> dict:
  """The HF `config.json` dict of `config` (the inverse of `config_from_hf`).

  `torch_dtype` names the dtype the weights are stored in; the token ids are the
  tokenizer's (None leaves them out).

  Raises:
    ModelFileError: the config switches a family's fixed feature (e.g. a Llama config
      with QK-norm), which no HF model of that family has.
  """
  c = config
  if c.family not in _HF_CLASSES:
    raise ModelFileError(f"model family {c.family!r} has no Hugging Face export")
  wrong = [
      f"{name}={getattr(c, name)!r} (the HF {c.family} model has {value!r})"
      for name, value in _FIXED[c.family].items()
      if getattr(c, name) != value
  ]
  if wrong:
    raise ModelFileError(
        f"model {c.name!r} cannot be written as a Hugging Face "
        f"{c.family} model: {'; '.join(wrong)}"
    )
  architecture, model_type = _HF_CLASSES[c.family]
  out = {
      "architectures": [architecture],
      "model_type": model_type,
      "vocab_size": c.vocab_size,
      "hidden_size": c.embed_dim,
      "intermediate_size": c.mlp_dim,
      "num_hidden_layers": c.num_layers,
      "num_attention_heads": c.num_heads,
      "num_key_value_heads": c.num_kv_heads,
      "head_dim": c.head_dim,
      "rms_norm_eps": c.rms_norm_eps,
      "max_position_embeddings": c.max_position,
      "tie_word_embeddings": c.tie_embeddings,
      "rope_theta": c.rope_base,
      "rope_scaling": _rope_scaling_to_hf(c.rope_scaling),
      "attention_dropout": 0.0,
      "initializer_range": 0.02,
      "use_cache": True,
      "torch_dtype": torch_dtype,
  }
  if c.family == "gemma3":
    pattern = c.global_every or 1  # 0: every layer global, as a pattern of 1
    out.update(
        hidden_activation="gelu_pytorch_tanh",
        rope_local_base_freq=c.rope_base_local if c.rope_base_local is not None else c.rope_base,
        sliding_window=c.sliding_window if c.sliding_window is not None else c.max_position,
        sliding_window_pattern=pattern,
        layer_types=[
            "full_attention" if not local else "sliding_attention" for local in c.is_local_layer
        ],
        query_pre_attn_scalar=_int_if_whole(c.query_pre_attn_scalar or c.head_dim),
        final_logit_softcapping=c.final_logit_softcap,
        attn_logit_softcapping=None,
        attention_bias=False,
        use_bidirectional_attention=False,
    )
  else:
    out.update(hidden_act="silu")
    if c.family == "qwen2":
      out.update(use_sliding_window=False, sliding_window=None, max_window_layers=c.num_layers)
    else:
      out.update(attention_bias=False, mlp_bias=False, pretraining_tp=1)
  for key, value in (
      ("bos_token_id", bos_token_id),
      ("eos_token_id", eos_token_id),
      ("pad_token_id", pad_token_id),
  ):
    if value is not None:
      out[key] = value
  return out


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
      raise ModelFileError(
          f"{path}: shard(s) listed in model.safetensors.index.json are missing: "
          f"{', '.join(missing)}"
      )
  else:
    shards = sorted(p.name for p in path.glob("*.safetensors"))
    if not shards:
      raise ModelFileError(f"{path}: no *.safetensors files found")
  tensors: dict[str, np.ndarray] = {}
  for shard in shards:
    try:
      tensors.update(_load_shard(path / shard, load_file))
    except ModelFileError:
      raise
    except Exception as e:  # corrupt or truncated shard
      raise ModelFileError(f"{path / shard}: cannot read safetensors shard: {e}") from e
  return tensors


def _load_shard(file: Path, load_file) -> dict[str, np.ndarray]:
  try:
    return load_file(str(file))
  except (TypeError, ValueError) as e:
    if "bfloat16" not in str(e).lower() and "bf16" not in str(e).lower():
      raise
  # numpy has no bfloat16: read the raw bytes through ml_dtypes.
  header_len = int.from_bytes(file.read_bytes()[:8], "little")
  with open(file, "rb") as fh:
    fh.seek(8)
    header = json.loads(fh.read(header_len))
    data = np.memmap(file, dtype=np.uint8, mode="r", offset=8 + header_len)
  dtypes = {
      "BF16": ml_dtypes.bfloat16,
      "F16": np.float16,
      "F32": np.float32,
      "I64": np.int64,
      "I32": np.int32,
  }
  out = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    start, end = info["data_offsets"]
    out[name] = (
        np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]])
        .reshape(info["shape"])
        .astype(np.float32)
    )
  return out


def load_hf_checkpoint(
    path: str | os.PathLike, config: ModelConfig | None = None, param_dtype: str | None = None
) -> tuple[ModelConfig, dict]:
  """(config, params) from an HF directory. A given `config` must match config.json."""
  path = Path(path)
  cfg_file = path / "config.json"
  if not cfg_file.exists():
    raise ModelFileError(f"{path}: no config.json (is this a Hugging Face checkpoint?)")
  try:
    parsed = json.loads(cfg_file.read_text(encoding="utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ModelFileError(
        f"{cfg_file}: not valid JSON ({e}); the file is corrupt or " "truncated"
    ) from None
  file_config = config_from_hf(parsed, name=path.name, source=str(cfg_file))
  if config is not None:
    check_config_matches(config, file_config, str(cfg_file))
    file_config = config
  if param_dtype:
    file_config = file_config.replace(param_dtype=param_dtype)
  tensors = read_safetensors_dir(path)
  return file_config, params_from_hf_tensors(tensors, file_config, source=str(path))


_SHAPE_FIELDS = (
    "family",
    "vocab_size",
    "embed_dim",
    "num_layers",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "mlp_dim",
    "tie_embeddings",
)


def check_config_matches(expected: ModelConfig, found: ModelConfig, source: str) -> None:
  diffs = [
      f"{f}: model {getattr(expected, f)!r} vs {getattr(found, f)!r}"
      for f in _SHAPE_FIELDS
      if getattr(expected, f) != getattr(found, f)
  ]
  if diffs:
    raise ModelFileError(
        f"{source} does not match model config {expected.name!r}: " + "; ".join(diffs)
    )
