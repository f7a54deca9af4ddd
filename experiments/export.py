"""Export a model to the Hugging Face format: config, safetensors shards, tokenizer files.

  python -m experiments.export --checkpoint=runs/azr-default --output=hf/azr-default
  python -m experiments.export --checkpoint=runs/azr-default --step=200 --dtype=bfloat16 \
      --output=hf/azr-step200
  python -m experiments.export --checkpoint=gemma3-270m --output=hf/gemma3-270m

--checkpoint: a self-play run (its run directory, experiments/azr.py --log_dir, or its
checkpoint directory; the latest complete step unless --step), or any model source azr
takes (an embedded model name, a .gguf file, a Hugging Face directory). The output directory
loads with `transformers.AutoModelForCausalLM.from_pretrained(DIR)` and
`AutoTokenizer.from_pretrained(DIR)`; its layout is described in
absolute_zero/models/hf_export.py. The checkpoint is only read (a live run may be writing
to it). Bad input (a missing checkpoint, a step that is not there, an output directory that
is not empty without --overwrite, or one that cannot be written) is one line on stderr and
exit status 2, found before the weights load.
"""

from __future__ import annotations

import os
import sys
import time

from absl import flags
from absl import logging as absl_logging

from absolute_zero import paths
from experiments import cli

PROG = "export"
FLAGS = flags.FLAGS

flags.DEFINE_string(
    "checkpoint",
    None,
    "A self-play run directory (azr's --log_dir) or its "
    "checkpoint directory, or a model source: an embedded model name, a "
    ".gguf file or a Hugging Face directory. Required.",
)
flags.DEFINE_integer(
    "step", None, "Checkpoint step of a run (default: its latest complete " "step)."
)
flags.DEFINE_string(
    "output", None, "Directory to write the Hugging Face checkpoint into " "(created). Required."
)
flags.DEFINE_enum(
    "dtype",
    None,
    ["float32", "bfloat16", "float16"],
    "Dtype of the written "
    "weights (default: the parameters' own, float32 for runs trained in "
    "float32).",
)
flags.DEFINE_string(
    "tokenizer",
    None,
    "Tokenizer source if not the model's own (the run's "
    "--tokenizer or --model): .gguf, tokenizer.json, tokenizer.model, a "
    "directory, or an embedded model name.",
)
flags.DEFINE_bool(
    "overwrite",
    False,
    "Write into an --output directory that is not empty "
    "(files of the same names are replaced, old weight shards removed).",
)
flags.DEFINE_integer(
    "max_shard_size_mb",
    5120,
    "Largest safetensors shard, MiB (a bigger " "tensor gets a shard of its own).",
)


def _output_dir() -> str:
  """--output as an absolute local path; refuses a non-empty directory without --overwrite."""
  cli.check(
      FLAGS.output is not None,
      "--output is required: the directory to write the " "Hugging Face checkpoint into",
  )
  out = cli.path_flag("output", kind="dir")
  cli.check(
      not paths.is_remote(out),
      f"--output={FLAGS.output}: export writes local files; "
      "copy the directory to remote storage afterwards",
  )
  if os.path.isdir(out) and os.listdir(out) and not FLAGS.overwrite:
    raise cli.InputError(
        f"--output={FLAGS.output}: {out} is not empty; pass --overwrite to "
        "write into it, or give a new directory"
    )
  return out


def _source() -> tuple[str, str]:
  """(kind, where) of --checkpoint (see policy_loading.resolve_model_source); InputError if bad."""
  cli.check(
      FLAGS.checkpoint is not None,
      "--checkpoint is required: a run directory, a " "checkpoint directory or a model source",
  )
  from absolute_zero.embedded_models import EMBEDDED_MODELS  # imports JAX: after the check
  from absolute_zero.policy_loading import ModelSourceError, resolve_model_source
  from absolute_zero.models.presets import PRESETS

  value = FLAGS.checkpoint
  if value not in EMBEDDED_MODELS and value not in PRESETS:
    path = cli.resolve(value, "--checkpoint")
    cli.check(
        not paths.is_remote(path),
        f"--checkpoint={value}: export reads local " "checkpoints; copy it to this machine first",
    )
  try:
    kind, where = resolve_model_source(value)
  except (FileNotFoundError, ModelSourceError) as e:
    raise cli.InputError(f"--checkpoint={value}: {e}") from None
  cli.check(
      kind != "preset",
      f"--checkpoint={value} is a preset without weights; give a "
      "run directory, a checkpoint directory or a model source with weights",
  )
  cli.check(
      FLAGS.step is None or kind == "run",
      f"--step={FLAGS.step}: --checkpoint="
      f"{value} is a {kind} model, not a self-play run; --step picks a run's checkpoint",
  )
  return kind, where


def _run_tokenizer_source(where: str) -> str | None:
  """The run's recorded tokenizer source, with --step checked (InputError otherwise)."""
  from absolute_zero.checkpointing import CheckpointError
  from absolute_zero.policy_loading import load_run_checkpoint

  try:
    with cli.quiet_logs():
      return load_run_checkpoint(where, FLAGS.step, params_too=False)[2] or None
  except CheckpointError as e:
    flag = f"--step={FLAGS.step}" if FLAGS.step is not None else f"--checkpoint={FLAGS.checkpoint}"
    raise cli.InputError(f"{flag}: {e}") from None
  except (FileNotFoundError, ValueError) as e:
    raise cli.InputError(f"--checkpoint={FLAGS.checkpoint}: {e}") from None


def _tokenizer_source(kind: str, where: str, run_source: str | None) -> str:
  """--tokenizer, else the run's or the model's own; checked readable (InputError)."""
  from absolute_zero.embedded_models import EMBEDDED_MODELS
  from absolute_zero.tokenizers import resolve_tokenizer_source

  if FLAGS.tokenizer is not None:
    value = FLAGS.tokenizer
    source = value if value in EMBEDDED_MODELS else cli.path_flag("tokenizer", must_exist=True)
    flag = f"--tokenizer={value}"
  else:
    source = run_source if kind == "run" else where
    flag = f"--checkpoint={FLAGS.checkpoint}"
    if not source:
      raise cli.InputError(
          f"{flag}: the run does not record its tokenizer source; pass " "--tokenizer"
      )
  try:
    resolve_tokenizer_source(source)
  except (FileNotFoundError, ValueError) as e:
    raise cli.InputError(f"{flag}: no usable tokenizer ({e}); pass --tokenizer") from None
  return source


def _load(kind: str, where: str):
  """(config, params) from the source; unreadable files are bad input (InputError)."""
  from absolute_zero.checkpointing import CheckpointError
  from absolute_zero.policy_loading import load_model, load_run_checkpoint

  try:
    with cli.quiet_logs():
      if kind == "run":
        config, params, _ = load_run_checkpoint(where, FLAGS.step)
        return config, params
      return load_model(where)
  except (FileNotFoundError, ValueError, CheckpointError) as e:  # import errors: ValueError
    raise cli.InputError(f"--checkpoint={FLAGS.checkpoint}: {e}") from None


def main(argv):
  del argv  # cli.run refuses positional arguments
  if not FLAGS["verbosity"].present:  # Orbax logs every restore at INFO
    absl_logging.set_verbosity(absl_logging.WARNING)
  cli.at_least("max_shard_size_mb", 1)
  cli.at_least("step", 0)
  out = _output_dir()
  kind, where = _source()
  run_source = _run_tokenizer_source(where) if kind == "run" else None
  tokenizer_source = _tokenizer_source(kind, where, run_source)
  if kind in ("hf", "run"):
    source_dir = os.path.realpath(where)
    cli.check(
        os.path.commonpath([source_dir, os.path.realpath(out)]) != source_dir,
        f"--output={FLAGS.output} is inside --checkpoint={FLAGS.checkpoint}; write the "
        "export somewhere else",
    )
  cli.ensure_writable_dir(out, "--output")

  from absolute_zero.models.hf_export import export_hf

  start = time.perf_counter()
  config, params = _load(kind, where)
  print(
      f"loaded {FLAGS.checkpoint} ({kind}, {config.family}, "
      f"{config.num_params() / 1e6:.0f}M params) in {time.perf_counter() - start:.1f} s",
      file=sys.stderr,
      flush=True,
  )
  try:
    result = export_hf(
        config,
        params,
        out,
        tokenizer_source=tokenizer_source,
        dtype=FLAGS.dtype,
        max_shard_bytes=FLAGS.max_shard_size_mb << 20,
    )
  except (ValueError, FileNotFoundError) as e:  # a config HF cannot express, a bad tokenizer
    raise cli.InputError(f"--checkpoint={FLAGS.checkpoint}: {e}") from None
  except OSError as e:  # disk full, permissions changed under us
    raise cli.InputError(f"--output={FLAGS.output}: cannot write ({e.strerror or e})") from None
  print(
      f"wrote {result.num_tensors} tensors ({result.num_bytes / 2**20:.1f} MiB, "
      f"{result.dtype}) and {len(result.files)} files to {out} in "
      f"{time.perf_counter() - start:.1f} s",
      file=sys.stderr,
  )
  for name in result.files:
    print(os.path.join(out, name))


if __name__ == "__main__":
  cli.run(main, PROG)
