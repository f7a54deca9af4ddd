"""Write a model as a Hugging Face checkpoint directory (the inverse of `hf_import.py`).

`export_hf(config, params, output_dir, tokenizer_source=...)` writes what
`transformers.AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained`
load, for Gemma 3 (text), Qwen2/2.5 and Llama 3.x:

  config.json                     `hf_import.config_to_hf` (classic keys);
  model.safetensors               or `model-0000i-of-0000N.safetensors` shards plus
                                  `model.safetensors.index.json` past `max_shard_bytes`;
                                  tensor names and layouts from `hf_layout`'s table, the
                                  same one the importers read through;
  generation_config.json          BOS, the stop ids (EOS and end-of-turn) and PAD;
  tokenizer.json, tokenizer_config.json, (tokenizer.model)
                                  `absolute_zero.tokenizer_export.write_hf_tokenizer`.

Weights are written with `safetensors`' numpy writer (float32, bfloat16 through
ml_dtypes, or float16), one tensor converted at a time.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Iterable

import ml_dtypes
import numpy as np

from absolute_zero.models.config import ModelConfig
from absolute_zero.models.hf_import import config_to_hf
from absolute_zero.models.hf_layout import ModelFileError, hf_tensors_from_params
from absolute_zero.tokenizer_export import write_hf_tokenizer
from absolute_zero.tokenizers import check_tokenizer_matches_model, load_tokenizer

EXPORT_DTYPES = {
    "float32": np.dtype(np.float32),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float16": np.dtype(np.float16),
}
DEFAULT_MAX_SHARD_BYTES = 5 * 2**30  # transformers' save_pretrained default (5 GB)
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
# HF tokenizer class per family, for generated tokenizer_config.json files.
_TOKENIZER_CLASS = {"gemma3": "GemmaTokenizer"}


@dataclasses.dataclass(frozen=True)
class ExportResult:
  """What `export_hf` wrote."""

  directory: str
  files: tuple[str, ...]  # names inside `directory`
  dtype: str
  num_tensors: int
  num_bytes: int  # tensor bytes written


def export_hf(
    config: ModelConfig,
    params: dict,
    output_dir: str | os.PathLike,
    *,
    tokenizer_source: str | os.PathLike | None,
    dtype: str | None = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
) -> ExportResult:
  """Writes `params` of `config` as an HF checkpoint into `output_dir` (created).

  Args:
    config: the model's config (family switches must be the family's own, see
      `config_to_hf`).
    params: our parameter pytree (numpy or JAX arrays).
    output_dir: the directory; files of the names written are replaced, stale weight
      shards (`model*.safetensors`, the index) are removed first.
    tokenizer_source: as for `load_tokenizer`; None writes no tokenizer files (and no
      token ids in the configs).
    dtype: 'float32', 'bfloat16' or 'float16'; None: the config's param_dtype.
    max_shard_bytes: tensor bytes per shard; a bigger tensor gets a shard of its own.

  Raises:
    ModelFileError: the config cannot be written as its family's HF model, or `params`
      does not fit it.
    ValueError: an unknown dtype or a tokenizer that does not fit the vocabulary.
    FileNotFoundError: a missing tokenizer source.
  """
  dtype = dtype or config.param_dtype
  if dtype not in EXPORT_DTYPES:
    raise ValueError(f"export dtype must be one of {', '.join(EXPORT_DTYPES)}, got {dtype!r}")
  if max_shard_bytes < 1:
    raise ValueError(f"max_shard_bytes must be >= 1, got {max_shard_bytes}")
  tokenizer = None
  if tokenizer_source is not None:
    tokenizer = load_tokenizer(tokenizer_source)
    check_tokenizer_matches_model(tokenizer, config.vocab_size)
  ids = {}
  if tokenizer is not None:
    stops = list(tokenizer.stop_ids)
    ids = dict(
        bos_token_id=tokenizer.bos_id,
        pad_token_id=tokenizer.pad_id,
        eos_token_id=stops[0] if len(stops) == 1 else (stops or None),
    )
  hf_config = config_to_hf(config, torch_dtype=dtype, **ids)  # raises before any write

  out = Path(output_dir)
  out.mkdir(parents=True, exist_ok=True)
  for stale in list(out.glob("model*.safetensors")) + [out / INDEX_FILE]:
    if stale.is_file():
      stale.unlink()
  try:
    weight_files, num_tensors, num_bytes = _write_shards(
        hf_tensors_from_params(params, config), out, EXPORT_DTYPES[dtype], max_shard_bytes
    )
  finally:  # a failed export leaves no half-written shard behind
    for partial in out.glob(".shard-*.safetensors.partial"):
      partial.unlink()
  files = list(weight_files)
  _write_json(out / "config.json", hf_config)
  files.append("config.json")
  generation = {key: value for key, value in ids.items() if value is not None}
  _write_json(out / "generation_config.json", generation)
  files.append("generation_config.json")
  if tokenizer_source is not None:
    files += write_hf_tokenizer(
        tokenizer_source,
        out,
        model_max_length=config.max_position,
        tokenizer_class=_TOKENIZER_CLASS.get(config.family),
    )
  return ExportResult(
      directory=str(out),
      files=tuple(files),
      dtype=dtype,
      num_tensors=num_tensors,
      num_bytes=num_bytes,
  )


def _write_json(path: Path, value: dict) -> None:
  path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def _write_shards(
    tensors: Iterable[tuple[str, np.ndarray]], out: Path, dtype: np.dtype, max_shard_bytes: int
) -> tuple[list[str], int, int]:
  """Writes (name, array) pairs into shards of at most `max_shard_bytes` tensor bytes.

  Shards are written as they fill (one shard's tensors in memory at a time) under
  temporary names, then renamed to HF's `model-0000i-of-0000N.safetensors` once N is known
  (or `model.safetensors` when one shard holds everything), with the index file.
  Returns (file names, tensor count, tensor bytes).
  """
  from safetensors.numpy import save_file  # on use: export only

  metadata = {"format": "pt"}  # transformers reads only files marked as PyTorch layout
  shard: dict[str, np.ndarray] = {}
  shard_bytes = 0
  temp_names: list[str] = []
  weight_map: dict[str, int] = {}
  total_bytes = 0

  def flush() -> None:
    nonlocal shard, shard_bytes
    if not shard:
      return
    name = f".shard-{len(temp_names)}.safetensors.partial"
    save_file(shard, str(out / name), metadata=metadata)
    temp_names.append(name)
    shard, shard_bytes = {}, 0

  for name, array in tensors:
    array = np.ascontiguousarray(array.astype(dtype, copy=False))
    if shard and shard_bytes + array.nbytes > max_shard_bytes:
      flush()
    shard[name] = array
    shard_bytes += array.nbytes
    total_bytes += array.nbytes
    weight_map[name] = len(temp_names)
  flush()
  if len(temp_names) == 1:
    os.replace(out / temp_names[0], out / SINGLE_FILE)
    return [SINGLE_FILE], len(weight_map), total_bytes
  n = len(temp_names)
  final = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
  for temp, name in zip(temp_names, final):
    os.replace(out / temp, out / name)
  index = {
      "metadata": {"total_size": total_bytes},
      "weight_map": {name: final[i] for name, i in weight_map.items()},
  }
  _write_json(out / INDEX_FILE, index)
  return final + [INDEX_FILE], len(weight_map), total_bytes


__all__ = [
    "ModelFileError",
    "DEFAULT_MAX_SHARD_BYTES",
    "EXPORT_DTYPES",
    "ExportResult",
    "export_hf",
]
