"""One entry point to get a policy from whatever a researcher points at.

`load_policy(source)` returns (config, params, tokenizer) and `load_model(source)`
(config, params) for an embedded model name (`gemma3-270m`, `smollm2-135m`), a GGUF file,
a Hugging Face directory (`config.json` + safetensors), or a self-play run's checkpoint
directory (or the run directory holding it). A preset name that has no embedded weights
(e.g. `qwen2.5-7b`) gets random weights only when asked for with `random_init=True`
(benchmarks, shape tests) — never silently.

This module also owns the run-config schema: the resolved configuration a self-play run
saves with every checkpoint (`run_config`, written by experiments/azr.py) and its reading
back (`model_config_from_run_config`, `learner_config_from_run_config`). It sits above
`models`, `learner`, `checkpointing` and `tokenizers`, which it combines.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

import jax

from absolute_zero import checkpointing, learner, sharding
from absolute_zero.models.config import ModelConfig, RopeScaling
from absolute_zero.embedded_models import EMBEDDED_MODELS, embedded_gguf_path
from absolute_zero.models.gguf_import import load_gguf
from absolute_zero.models.hf_import import load_hf_checkpoint
from absolute_zero.models.presets import PRESETS, get_config
from absolute_zero.models.transformer import init_params
from absolute_zero.tokenizers import check_tokenizer_matches_model, load_tokenizer

DEFAULT_MODEL = "gemma3-270m"


class ModelSourceError(ValueError):
  """A model source that names no model: an unknown name, or a directory holding none.

  A source that looks like a path and does not exist raises FileNotFoundError instead.
  """


# The folder of a run directory (experiments/azr.py --log_dir) that holds its checkpoints
# when --checkpoint_dir is not given.
RUN_CHECKPOINTS_SUBDIR = "checkpoints"
# Orbax writes step N into `N.orbax-checkpoint-tmp-<time>` and renames it to `N` when done.
_ORBAX_TMP = ".orbax-checkpoint-tmp"


def is_run_checkpoint_dir(path: str | os.PathLike) -> bool:
  """A self-play run's Orbax directory: numbered steps holding train_state/."""
  path = Path(path)
  if not path.is_dir() or (path / "config.json").exists():
    return False
  return any(p.name.isdigit() and (p / "train_state").is_dir() for p in path.iterdir())


_KINDS = (
    "give an embedded model name, a .gguf file, a Hugging Face directory (config.json "
    "and *.safetensors) or a self-play run directory"
)


def _looks_like_path(source: str) -> bool:
  return (
      os.sep in source
      or "/" in source
      or source.startswith(("~", "."))
      or Path(source).suffix in (".gguf", ".json", ".safetensors", ".model")
  )


def _why_not_a_model_dir(path: Path) -> str:
  """Why directory `path` holds no model we can load (for the error message)."""
  entries = sorted(p.name for p in path.iterdir())
  if not entries:
    return "the directory is empty"
  torn = [e for e in entries if _ORBAX_TMP in e]
  steps = [e for e in entries if e.isdigit()]
  if steps:
    return (
        f"it holds checkpoint step folders {steps[:5]} without train_state/ "
        "(incomplete or not written by experiments/azr.py)"
    )
  if torn:
    return (
        f"it holds no complete checkpoint, only unfinished saves {torn[:3]} "
        "(the run stopped before its first checkpoint finished)"
    )
  shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
  return (
      f"it holds no config.json (Hugging Face) and no numbered checkpoint steps "
      f"(self-play run), only: {shown}"
  )


def resolve_model_source(source: str) -> tuple[str, str]:
  """('embedded'|'gguf'|'hf'|'run'|'preset', path or name) for what a user points at.

  Paths are taken relative to the working directory, with `~` expanded. A run directory
  (experiments/azr.py --log_dir) resolves to its `checkpoints/` folder.

  Raises:
    FileNotFoundError: `source` looks like a path (has a '/', starts with '~' or '.', or a
      model file suffix) and nothing exists there.
    ModelSourceError: a name that is neither a model nor an existing path, or a directory
      holding no model (empty, only unfinished checkpoint saves, unrelated files); a
      .gguf path that is a directory.
  """
  if source in EMBEDDED_MODELS:
    return "embedded", source
  path = Path(os.path.abspath(os.path.expanduser(source)))
  if not path.exists():
    if source in PRESETS:
      return "preset", source
    if _looks_like_path(source):
      raise FileNotFoundError(f"no such file or directory: {path}")
    raise ModelSourceError(
        f"cannot interpret model source {source!r}: no file or directory {path}, and not "
        f"an embedded model ({', '.join(EMBEDDED_MODELS)}) or a preset name "
        f"({', '.join(sorted(PRESETS))})"
    )
  if path.suffix == ".gguf" or path.is_file():
    if not path.is_file():
      raise ModelSourceError(f"{path} is a directory, not a GGUF file")
    if path.suffix != ".gguf":
      raise ModelSourceError(f"{path} is not a .gguf file; {_KINDS}")
    return "gguf", str(path)
  if (path / "config.json").exists():
    return "hf", str(path)
  if is_run_checkpoint_dir(path):
    return "run", str(path)
  nested = path / RUN_CHECKPOINTS_SUBDIR
  if nested.is_dir():
    if is_run_checkpoint_dir(nested):
      return "run", str(nested)
    raise ModelSourceError(
        f"{nested} holds no usable checkpoint: " f"{_why_not_a_model_dir(nested)}"
    )
  raise ModelSourceError(f"{path} holds no model: {_why_not_a_model_dir(path)}; {_KINDS}")


def load_model(
    source: str = DEFAULT_MODEL,
    *,
    param_dtype: str | None = None,
    dtype: str | None = None,
    random_init: bool = False,
    seed: int = 0,
) -> tuple[ModelConfig, dict]:
  """(config, params as numpy/jax arrays on the host) for `source`."""
  kind, where = resolve_model_source(source)
  if kind == "embedded":
    config, params = load_gguf(
        embedded_gguf_path(where), config=get_config(where), param_dtype=param_dtype
    )
  elif kind == "gguf":
    config, params = load_gguf(where, param_dtype=param_dtype)
  elif kind == "hf":
    config, params = load_hf_checkpoint(where, param_dtype=param_dtype)
  elif kind == "run":
    config, params, _ = load_run_checkpoint(where)
  else:
    if not random_init:
      raise ValueError(
          f"preset {where!r} has no embedded weights: pass a GGUF file or an HF "
          "checkpoint directory, or ask for random weights explicitly (random_init)"
      )
    config = get_config(where)
    if param_dtype:
      config = config.replace(param_dtype=param_dtype)
    params = init_params(config, jax.random.key(seed))
  if dtype:
    config = config.replace(dtype=dtype)
  return config, params


def load_policy(
    source: str = DEFAULT_MODEL,
    tokenizer_source: str | None = None,
    *,
    param_dtype: str | None = None,
    dtype: str | None = None,
    random_init: bool = False,
    seed: int = 0,
):
  """(config, params, tokenizer), with the tokenizer checked against the embedding.

  The tokenizer comes from `tokenizer_source` when given, else from the model source
  (the GGUF file, or the checkpoint directory's tokenizer.json / tokenizer.model).
  """
  config, params = load_model(
      source, param_dtype=param_dtype, dtype=dtype, random_init=random_init, seed=seed
  )
  kind, where = resolve_model_source(source)
  if tokenizer_source is None and kind == "run":
    tokenizer_source = load_run_checkpoint(where, params_too=False)[2]
  tokenizer = load_tokenizer(tokenizer_source or source)
  check_tokenizer_matches_model(tokenizer, config.vocab_size)
  return config, params, tokenizer


def run_config(
    model_config: ModelConfig,
    selfplay_config,
    learner_config: learner.LearnerConfig,
    sandbox_limits,
    *,
    model_source: str,
    tokenizer_source: str | None,
    mesh: Any,
    flags: Mapping[str, Any],
) -> dict:
  """The resolved configuration a self-play run saves with every checkpoint, as JSON types.

  Sections: `model` (ModelConfig fields), `model_source` and `tokenizer_source` (what the
  run loaded, for the tokenizer of a later reader), `selfplay` (`SelfPlayConfig.to_dict`),
  `learner` (LearnerConfig fields: the optimizer layout of the saved train state),
  `sandbox` (SandboxLimits fields), `mesh` and `flags` (the method flags, compared on
  resume). Read back by `model_config_from_run_config`, `learner_config_from_run_config`.
  """
  return checkpointing.to_jsonable(
      {
          "model": dataclasses.asdict(model_config),
          "model_source": model_source,
          "tokenizer_source": tokenizer_source,
          "selfplay": selfplay_config.to_dict(),
          "learner": dataclasses.asdict(learner_config),
          "sandbox": dataclasses.asdict(sandbox_limits),
          "mesh": mesh,
          "flags": flags,
      }
  )


def model_config_from_run_config(saved: Any, where: str) -> tuple[ModelConfig, str]:
  """(model config, tokenizer source) from a saved `run_config`; `where` names it in errors.

  ModelConfig fields the current class does not know are ignored. The tokenizer source is
  the run's --tokenizer if it had one, else its --model ("" if neither was recorded).

  Raises:
    checkpointing.CheckpointError: `saved` is not a JSON object.
    ValueError: it has no model or learner section (not written by experiments/azr.py).
  """
  if not isinstance(saved, dict):
    raise checkpointing.CheckpointError(
        f"{where}: the saved config is not a " "JSON object (corrupt checkpoint?)"
    )
  if "model" not in saved or "learner" not in saved:
    raise ValueError(
        f"{where}: the saved config has no model/learner section "
        "(not written by experiments/azr.py?)"
    )
  fields = {f.name for f in dataclasses.fields(ModelConfig)}
  model = {k: v for k, v in saved["model"].items() if k in fields}
  if model.get("rope_scaling"):
    model["rope_scaling"] = RopeScaling(**model["rope_scaling"])
  source = saved.get("tokenizer_source") or saved.get("model_source", "")
  return ModelConfig(**model), source


def learner_fields_from_run_config(section: Mapping[str, Any]) -> dict[str, Any]:
  """LearnerConfig keyword arguments from a saved run config's `learner` section.

  Unknown fields are ignored. Configs saved before the log-prob heads had a knob each
  (#20) hold `logprob_chunk_size`, which meant rows for the fused head and vocabulary
  columns for the autodiff head, and None for the unfused, unchunked head: it becomes
  `logprob_row_chunk_size` and `logprob_vocab_chunk_size` (None: `fused_head=False`), so
  an old run resumes with the head it ran with.
  """
  fields = {f.name for f in dataclasses.fields(learner.LearnerConfig)}
  out = {k: v for k, v in section.items() if k in fields}
  if "logprob_chunk_size" in section and not {
      "logprob_row_chunk_size",
      "logprob_vocab_chunk_size",
  } & set(section):
    chunk = section["logprob_chunk_size"]
    out["logprob_row_chunk_size"] = out["logprob_vocab_chunk_size"] = chunk
    if chunk is None:
      out["fused_head"] = False
  return out


def learner_config_from_run_config(saved: Mapping[str, Any]) -> learner.LearnerConfig:
  """The LearnerConfig of a saved `run_config` (checked by `model_config_from_run_config`
  first): the optimizer layout of the saved train state. Unknown fields are ignored; old
  field names are read as `learner_fields_from_run_config` says."""
  return learner.LearnerConfig(**learner_fields_from_run_config(saved["learner"]))


def load_run_checkpoint(
    directory: str | os.PathLike, step: int | None = None, *, params_too: bool = True
) -> tuple[ModelConfig, dict | None, str]:
  """(config, params, tokenizer source) from a self-play run's checkpoint (default: latest).

  The run saved its resolved config (`run_config`), so the model shapes, the learner's
  optimizer layout (needed to read the train state) and the original model source (for
  the tokenizer) all come from the checkpoint itself. The checkpoint is opened read-only:
  nothing is created, probed or cleaned up (a live run's unfinished save is left alone).
  """
  ckpt = checkpointing.RunCheckpointer(directory, async_save=False, read_only=True)
  try:
    step = ckpt.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{directory}: no complete checkpoint")
    saved = ckpt.saved_config(step)
    config, source = model_config_from_run_config(saved, f"{directory}/{step}")
    if not params_too:
      return config, None, source
    learner_config = learner_config_from_run_config(saved)
    mesh = sharding.single_device_mesh()
    abstract = learner.abstract_train_state(config, learner_config, mesh)
    restored = ckpt.restore(step, abstract)
    return config, restored.train_state.params, source
  finally:
    ckpt.close()
