"""Absolute Zero self-play: the main experiment.

    python -m experiments.azr                      # small CPU run on the embedded Gemma 3 270M
    python -m experiments.azr --model=/ckpt/qwen2.5-7b --mesh=1,4,2 --batch_size=64
        --n_solver_samples=8 --num_references=6 --max_proposer_tokens=4096 ...

Each step: the proposer proposes for every task type, the sandbox validates, the solver
answers buffer tasks (and `n_solver_samples` answers per new proposal to price it), rewards
become task-relative advantages, and one clipped-surrogate update is applied
(docs/method.md). Checkpoints (params, optimizer state, step, buffers, the run config) go
to --checkpoint_dir; rerunning the same command resumes from the last complete checkpoint,
whose saved config wins over flags left out (a given flag that differs is an error unless
--override_saved_config). Metrics go to --log_dir (the run directory) as metrics.jsonl and
TensorBoard event files, every rollout's text, status and reward to samples.jsonl, and a
plot to plot.png. Paths may be relative, start with ~, or (checkpoints) be gs://.
--eval_every=N scores the current parameters on held-out benchmarks every N steps, in this
process with the run's own sampler (no reload); the scores join that step's metrics
(`eval/{benchmark}/score`) and each report is kept as eval/step_N.json. --wandb_project
also logs the metrics to Weights & Biases (optional extra; offline by default).

Defaults are a small CPU demonstration that shows the loop working in minutes; the
reference values are given in each flag's help (--helpfull lists every flag, grouped).
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import flags
from absl import logging as absl_logging

from absolute_zero import paths
from absolute_zero.metrics import PLOT_FILE
from absolute_zero.models.config import ATTENTION_IMPLS
from experiments import cli, run_flags

FLAGS = flags.FLAGS
PROG = "azr"

# Model and devices.
flags.DEFINE_string(
    "model",
    "gemma3-270m",
    "Embedded model name (gemma3-270m, "
    "smollm2-135m), a .gguf file, a Hugging Face checkpoint directory, or a "
    "preset name with --random_init. Paths may be relative or start with ~.",
    module_name=run_flags.G_RUN,
)
flags.DEFINE_string(
    "tokenizer",
    None,
    "Tokenizer source if not the model's own "
    "(.gguf, tokenizer.json, tokenizer.model or a directory).",
    module_name=run_flags.G_RUN,
)
flags.DEFINE_bool(
    "random_init",
    False,
    "Random weights for a preset (benchmarks only).",
    module_name=run_flags.G_RUN,
)
flags.DEFINE_string(
    "mesh",
    "1,1,-1",
    "Device mesh data,fsdp,tensor; product = device "
    "count, -1 takes the rest. May change on resume.",
    module_name=run_flags.G_RUN,
)
flags.DEFINE_enum(
    "dtype",
    "auto",
    ["auto", "float32", "bfloat16"],
    "Compute (activation) "
    "dtype; weights and AdamW state stay in --param_dtype, log-softmax and "
    "loss in float32. auto: bfloat16 on GPU/TPU, float32 on CPU.",
    module_name=run_flags.G_RUN,
)
flags.DEFINE_enum(
    "param_dtype",
    "float32",
    ["float32", "bfloat16"],
    "Dtype of the weights "
    "the learner updates and of their AdamW moments (the master weights). "
    "Keep float32: in bfloat16 an AdamW step smaller than a weight's bfloat16 "
    "spacing (2^-8 of it) is rounded away (at learning rate 1e-6 one step "
    "changed 141 of 139,584 weights of a tiny model, against 107,968 in "
    "float32); use --dtype=bfloat16 for fast compute instead.",
    module_name=run_flags.G_RUN,
)
flags.DEFINE_string(
    "seed_dataset",
    "builtin",
    "Seed tasks (JSONL: snippet/input/output, "
    "or snippet/inputs/outputs/message for induction) validated in the "
    "sandbox and added to the buffers before seeding from the zero triplet. "
    "'builtin': the small file shipped with the package (no benchmark "
    "programs); '' (empty): none, the method's zero-data start. See "
    "docs/seed_datasets.md.",
    module_name=run_flags.G_RUN,
)
run_flags.define_flags()
flags.DEFINE_enum(
    "remat",
    "full",
    ["none", "full", "dots", "dots_no_batch"],
    "Rematerialisation policy of the scanned layers (may change on resume).",
    module_name=run_flags.G_LEARNER,
)
flags.DEFINE_enum(
    "attention",
    "auto",
    list(ATTENTION_IMPLS),
    "Multi-token attention of training and prefill (absolute_zero/models/"
    "attention.py; may change on resume): blockwise online softmax (any "
    "backend, memory linear in length), cudnn (GPU, bfloat16), splash (TPU "
    "Pallas kernel), dense (the whole score tensor, quadratic). auto: cudnn on "
    "GPU where it applies, splash on TPU, else dense up to 1024 x 1024 scores "
    "per row (faster on CPU for short rows), else blockwise.",
    module_name=run_flags.G_LEARNER,
)
flags.DEFINE_integer(
    "attention_block_size",
    512,
    "Query/key block of the blockwise " "attention (may change on resume).",
    module_name=run_flags.G_LEARNER,
)
# Run control: budget flags, free to change on resume.
G_BUDGET = "6 budget, logging and checkpoints (may change on resume)"
flags.DEFINE_integer(
    "steps",
    2,
    "Self-play steps (policy updates) to reach; rerun with a " "larger value to go further.",
    module_name=G_BUDGET,
)
flags.DEFINE_string(
    "checkpoint_dir",
    None,
    "Orbax checkpoints (default: <log_dir>/"
    "checkpoints). Relative, ~ or gs:// (with the gcs extra).",
    module_name=G_BUDGET,
)
flags.DEFINE_integer(
    "checkpoint_every", 1, "Save every N steps (and at the end).", module_name=G_BUDGET
)
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.", module_name=G_BUDGET)
flags.DEFINE_bool(
    "async_checkpoint",
    True,
    "Write checkpoints in the background (the "
    "train state is copied to host memory first). false: block until written "
    "(measured 0.5 GiB more peak memory on CPU, not less).",
    module_name=G_BUDGET,
)
flags.DEFINE_bool(
    "resume", True, "Resume from --checkpoint_dir's latest checkpoint if any.", module_name=G_BUDGET
)
flags.DEFINE_bool(
    "override_saved_config",
    False,
    "On resume, let flags given on the "
    "command line replace the checkpoint's saved run config where they differ "
    "(otherwise that is an error naming the fields).",
    module_name=G_BUDGET,
)
flags.DEFINE_integer(
    "sandbox_workers", 0, "Sandbox worker processes (0: one per CPU " "core).", module_name=G_BUDGET
)
flags.DEFINE_bool(
    "plot", True, "Write plot.png into the run directory at the end.", module_name=G_BUDGET
)
flags.DEFINE_string(
    "compilation_cache",
    None,
    "JAX persistent compilation cache "
    "directory: a rerun of the same configuration loads its compiled programs "
    "instead of compiling again (default $JAX_COMPILATION_CACHE_DIR, else "
    "~/.cache/absolute_zero/jax; '' (empty): off).",
    module_name=G_BUDGET,
)
# Evaluation during training and run tracking: budget flags too (free on resume; a resumed
# run evaluates on the same schedule when given the same flags, since steps are absolute).
G_EVAL = "7 evaluation during training and run tracking (may change on resume)"
flags.DEFINE_integer(
    "eval_every",
    0,
    "Evaluate the current parameters on --eval_benchmarks "
    "after every N-th step (steps N, 2N, ...; 0: never). Greedy decoding, "
    "in this process with the run's sampler and sandbox.",
    module_name=G_EVAL,
)
flags.DEFINE_list(
    "eval_benchmarks",
    ["cruxeval_o", "cruxeval_i"],
    "Benchmarks evaluated "
    "during training: any of experiments/evaluate.py's (cruxeval_o, "
    "cruxeval_i, humaneval, gsm8k, math500, ...), or 'all'.",
    module_name=G_EVAL,
)
flags.DEFINE_integer(
    "eval_limit", 32, "First N items of each benchmark (0: every item).", module_name=G_EVAL
)
flags.DEFINE_integer(
    "eval_max_new_tokens", 256, "Generation budget per evaluation item.", module_name=G_EVAL
)
flags.DEFINE_bool(
    "eval_before_training",
    False,
    "Also evaluate the starting parameters, "
    "logged at step 0 (a fresh run only: a resumed run has its step 0).",
    module_name=G_EVAL,
)
flags.DEFINE_string(
    "wandb_project",
    None,
    "Also log metrics to this Weights & Biases "
    "project (pip install 'absolute-zero[wandb]'). The run id is kept in "
    "the run directory (wandb_run.json), so a resumed run continues it.",
    module_name=G_EVAL,
)
flags.DEFINE_enum(
    "wandb_mode",
    "offline",
    ["offline", "online", "disabled"],
    "W&B mode: "
    "offline writes <log_dir>/wandb/ for a later `wandb sync` (no network), "
    "online streams to the server, disabled logs nothing.",
    module_name=G_EVAL,
)

# --helpshort lists these (absl's key flags of the main module).
for _name in (
    "model",
    "log_dir",
    "steps",
    "task_types",
    "batch_size",
    "learning_rate",
    "seed",
    "seed_dataset",
    "mesh",
    "checkpoint_dir",
):
  flags.declare_key_flag(_name)

DEFAULT_LOG_DIR = "runs/azr-default"
SAMPLES_FILE = "samples.jsonl"
# --log_dir is absl's own flag (absl.logging defines it, for its log files); we use it as
# the run directory: metrics.jsonl, TensorBoard events, samples.jsonl, plot.png and
# checkpoints/ go there (default: runs/azr-default, relative to the working directory).
FLAGS["log_dir"].help = (
    "The run directory: metrics.jsonl, TensorBoard events, "
    "samples.jsonl, plot.png and checkpoints/ (default "
    f"{DEFAULT_LOG_DIR}). Relative, ~ or gs:// (with the gcs extra)."
)

# Flags that change the run itself; on resume the checkpoint's values are the truth.
RUN_FLAGS = ("model", "tokenizer", "random_init", "dtype", "param_dtype", "seed_dataset")
METHOD_FLAGS = RUN_FLAGS + tuple(
    k.flag
    for k in run_flags.KNOBS
    if k.flag
    not in (
        "micro_batch_size",
        "logprob_row_chunk_size",
        "logprob_vocab_chunk_size",
        "fused_head",
        "sandbox_max_processes",
        "sandbox_memory_mb",
        "sandbox_worker_memory_mb",
        "sandbox_max_output_chars",
        "overlap_sandbox",  # scheduling only: the results are the same either way
    )
)


def _compute_dtype() -> str:
  """--dtype, with auto resolved for this process's JAX backend."""
  if FLAGS.dtype != "auto":
    return FLAGS.dtype
  import jax
  from absolute_zero.models.config import default_compute_dtype

  return default_compute_dtype(jax.default_backend())


def _log(msg: str) -> None:
  """A progress line on stderr, from process 0 only (every process runs the same steps)."""
  from absolute_zero import distributed

  if not distributed.is_primary():
    return
  print(f"[azr {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def resolve_paths() -> tuple[str, str]:
  """Every path flag as an absolute path (or checked URL); returns (log_dir,
  checkpoint_dir). Creates nothing.

  Raises:
    cli.InputError: a missing model/tokenizer/seed file, an unwritable directory, gs://
      without gcsfs.
  """
  from absolute_zero.embedded_models import EMBEDDED_MODELS
  from absolute_zero.models.presets import PRESETS

  for name in ("model", "tokenizer"):
    value = FLAGS[name].value
    if value and value not in EMBEDDED_MODELS and value not in PRESETS:  # a path
      if paths.is_remote(value):
        raise cli.InputError(
            f"--{name}={value}: models and tokenizers load from local "
            "paths; copy it to this machine first"
        )
      try:
        FLAGS[name].value = cli.resolve(value, f"--{name}", must_exist=True)
      except cli.InputError as e:
        raise cli.InputError(
            f"{e}; --{name} takes a path, an embedded model ({', '.join(EMBEDDED_MODELS)})"
            + (
                f" or a preset with --random_init ({', '.join(sorted(PRESETS))})"
                if name == "model"
                else ""
            )
        ) from None
  if FLAGS.seed_dataset and FLAGS.seed_dataset != "builtin":
    FLAGS.seed_dataset = cli.resolve(
        FLAGS.seed_dataset, "--seed_dataset", must_exist=True, kind="file"
    )
    from absolute_zero.tasks import seed_data

    try:  # the file's format now, before the model loads; the rows' validity later
      seed_data.read_jsonl(FLAGS.seed_dataset)
    except seed_data.SeedDataError as e:
      raise cli.InputError(f"--seed_dataset: {e}") from None
  log_dir = cli.resolve(FLAGS.log_dir or DEFAULT_LOG_DIR, "--log_dir", kind="dir")
  if paths.is_remote(log_dir):
    raise cli.InputError(
        f"--log_dir={log_dir}: the run directory must be local (metrics "
        "and TensorBoard files are appended to); put checkpoints on "
        "remote storage with --checkpoint_dir=gs://..."
    )
  checkpoint_dir = (
      cli.resolve(FLAGS.checkpoint_dir, "--checkpoint_dir", kind="dir")
      if FLAGS.checkpoint_dir
      else paths.join(log_dir, "checkpoints")
  )
  return log_dir, checkpoint_dir


def check_flags() -> None:
  """Range checks of the run-control flags (the configs check their own fields)."""
  cli.at_least("steps", 0)
  cli.at_least("checkpoint_every", 1, hint="save every N steps, N >= 1")
  cli.at_least("keep_checkpoints", 1)
  cli.at_least("sandbox_workers", 0, hint="0 means one per CPU core")
  cli.at_least("attention_block_size", 1)
  cli.positive("sandbox_timeout", hint="seconds per sandboxed job")
  from absolute_zero.sharding import parse_mesh_shape

  try:
    parse_mesh_shape(FLAGS.mesh)  # its fit to the devices is checked once JAX is up
  except ValueError as e:
    raise cli.InputError(e) from None
  check_eval_flags()
  if FLAGS.wandb_project is not None and FLAGS.wandb_mode != "disabled":
    from absolute_zero import wandb_tracker

    cli.check(
        bool(FLAGS.wandb_project.strip()),
        "--wandb_project is empty; give a project " "name, or leave the flag out",
    )
    cli.check(
        wandb_tracker.available(),
        "--wandb_project needs the wandb package: pip "
        "install 'absolute-zero[wandb]' (or pass --wandb_mode=disabled)",
    )


def evaluating() -> bool:
  return FLAGS.eval_every > 0 or FLAGS.eval_before_training


def check_eval_flags() -> list[str]:
  """The evaluation flags in range and the benchmarks' data readable (before the model
  loads); returns the benchmark names. InputError naming the flag otherwise."""
  cli.at_least("eval_every", 0, hint="0 means never")
  cli.at_least("eval_limit", 0, hint="0 means every item")
  cli.at_least("eval_max_new_tokens", 1)
  from absolute_zero.evaluation import runner
  from absolute_zero.evaluation.data import DataNotFoundError

  try:
    names = runner.parse_benchmarks(FLAGS.eval_benchmarks)
  except ValueError as e:
    raise cli.InputError(f"--eval_benchmarks: {e}") from None
  if evaluating():
    try:
      runner.check_benchmark_data(names)
    except (DataNotFoundError, ValueError) as e:
      raise cli.InputError(f"--eval_benchmarks: {e}") from None
  return names


def build_configs():
  """Flags -> (SelfPlayConfig, LearnerConfig, SandboxLimits); InputError on a bad value."""
  try:
    return run_flags.build_configs()
  except ValueError as e:
    raise cli.InputError(run_flags.name_flags(str(e))) from None


def method_flag_values() -> dict:
  """{flag: value} of every flag that changes the method (saved with each checkpoint)."""
  return {name: FLAGS[name].value for name in METHOD_FLAGS}


def apply_saved_flags(saved: dict) -> list[str]:
  """The checkpoint's run config wins: adopt its values for flags not given on the command
  line; returns 'flag: checkpoint=X, command line=Y' for given flags that differ."""
  saved_flags = saved.get("flags") or {}
  conflicts = []
  for name in METHOD_FLAGS:
    if name not in saved_flags:
      continue
    value = saved_flags[name]
    if FLAGS[name].present:
      if FLAGS[name].value != value:
        conflicts.append(f"--{name}: checkpoint={value!r}, command line=" f"{FLAGS[name].value!r}")
    else:
      FLAGS[name].value = value
  return conflicts


def run_config_dict(model_config, selfplay, learner, sandbox) -> dict:
  """The run's resolved config (schema: `policy_loading.run_config`) from these flags."""
  from absolute_zero.policy_loading import run_config

  return run_config(
      model_config,
      selfplay,
      learner,
      sandbox,
      model_source=FLAGS.model,
      tokenizer_source=FLAGS.tokenizer,
      mesh=FLAGS.mesh,
      flags=method_flag_values(),
  )


def _open_checkpoints(checkpoint_dir: str):
  """The run's checkpointer and its latest complete step (None: fresh), or InputError."""
  from absolute_zero import checkpointing

  try:
    checkpointer = checkpointing.RunCheckpointer(
        checkpoint_dir, keep=FLAGS.keep_checkpoints, async_save=FLAGS.async_checkpoint
    )
    latest = checkpointer.latest_step()
  except (ValueError, OSError, checkpointing.CheckpointError) as e:
    raise cli.InputError(f"--checkpoint_dir={checkpoint_dir}: {e}") from None
  try:
    return checkpointer, _check_saved_config(checkpointer, latest, checkpoint_dir)
  except BaseException:
    checkpointer.close()
    raise


def _check_saved_config(checkpointer, latest, checkpoint_dir):
  """Adopts the saved run config (see apply_saved_flags); InputError on conflicts."""
  if latest is not None and not FLAGS.resume:
    raise cli.InputError(
        f"--resume=false but {checkpoint_dir} already holds step {latest}; "
        "use a fresh --log_dir or --checkpoint_dir"
    )
  if latest is None:
    return None
  from absolute_zero.checkpointing import CheckpointError

  try:
    with cli.quiet_logs():
      saved = checkpointer.saved_config(latest)
  except CheckpointError as e:
    raise cli.InputError(
        f"--checkpoint_dir: {e}; it is corrupt or not written by "
        "experiments.azr: move it away or pass a fresh --log_dir"
    ) from None
  if not isinstance(saved, dict) or not {"selfplay", "model"} & set(saved):
    raise cli.InputError(
        f"--checkpoint_dir={checkpoint_dir}: step {latest} holds no "
        "self-play run config (not written by experiments.azr); pass a "
        "fresh --log_dir"
    )
  conflicts = apply_saved_flags(saved)
  if conflicts and not FLAGS.override_saved_config:
    raise cli.InputError(
        f"resuming {checkpoint_dir} (step {latest}): the command line changes the run's "
        f"saved config: {'; '.join(conflicts)}. Drop those flags to continue the run as "
        "saved, pass --override_saved_config to change it, or use a fresh --log_dir"
    )
  for line in conflicts:
    _log(f"override of the saved config: {line}")
  return latest


def main(argv):
  del argv  # cli.run rejects positional arguments
  if not FLAGS["verbosity"].present:  # Orbax logs every save at INFO; keep the console readable
    absl_logging.set_verbosity(absl_logging.WARNING)
  # Every bad flag, path or checkpoint fails here, before anything slow happens.
  # Inputs are checked before anything is created, so bad input leaves no run directory.
  check_flags()
  cache = cli.use_compilation_cache(FLAGS.compilation_cache)
  log_dir, checkpoint_dir = resolve_paths()
  build_configs()  # the flags' values; rebuilt after a resume adopts the saved ones
  cli.ensure_writable_dir(log_dir, "--log_dir")
  cli.ensure_writable_dir(
      checkpoint_dir, "--checkpoint_dir" if FLAGS.checkpoint_dir else "--log_dir"
  )
  from absolute_zero import distributed

  distributed.maybe_initialize_distributed()  # before Orbax asks for the process index
  checkpointer, latest = _open_checkpoints(checkpoint_dir)
  from absolute_zero.checkpointing import CheckpointWriteError
  # A failed background save is reported below as one line; Orbax's own ERROR records of
  # it (with tracebacks, from its threads) would bury that line.
  absl_logging.get_absl_handler().addFilter(_drop_orbax_errors)
  failure = None
  try:
    _run(checkpointer, latest, log_dir, checkpoint_dir, cache)
  except CheckpointWriteError as e:
    failure = e
  finally:
    try:
      checkpointer.close()  # waits for a save in flight; stops Orbax's background threads
    except CheckpointWriteError as e:
      failure = failure or e
  if failure is not None:  # a full disk is not a bug: one line, and how to go on
    from absolute_zero.checkpointing import complete_steps

    resume = (complete_steps(checkpoint_dir) or [None])[-1]
    raise cli.InputError(
        f"{failure}. Nothing before it is lost: rerun the same command to resume from "
        + (f"step {resume}" if resume is not None else "the start")
    )


def _drop_orbax_errors(record) -> bool:
  """logging filter: False for Orbax's ERROR records and asyncio's (only Orbax runs event
  loops here: "exception was never retrieved" of its failed writes). Every Orbax failure
  also raises, and is reported as CheckpointWriteError / CheckpointError."""
  return not (
      record.levelno >= 40
      and (f"{os.sep}orbax{os.sep}" in record.pathname or record.name == "asyncio")
  )


def _run(checkpointer, latest, log_dir, checkpoint_dir, cache: str | None = None) -> None:
  selfplay_config, learner_config, sandbox_limits = build_configs()

  import jax
  from absolute_zero import checkpointing, distributed, sharding
  from absolute_zero.metrics import MetricsWriter, truncate_after
  from absolute_zero.policy_loading import load_policy
  from absolute_zero.sandbox import SandboxPool
  from absolute_zero.selfplay.run import SelfPlayRun

  try:
    mesh = sharding.make_mesh(FLAGS.mesh)
  except ValueError as e:
    raise cli.InputError(str(e) if "--mesh" in str(e) else f"--mesh={FLAGS.mesh}: {e}") from None
  _log(f"run directory {log_dir}" + (f", resuming from step {latest}" if latest else ""))
  _log(f"devices: {mesh.devices.size} x {jax.default_backend()}, mesh {dict(mesh.shape)}")
  _log(f"compilation cache: {cache or 'off'}")

  _log(f"loading model {FLAGS.model} ...")
  start = time.perf_counter()
  try:
    model_config, params, tokenizer = load_policy(
        FLAGS.model,
        FLAGS.tokenizer,
        param_dtype=FLAGS.param_dtype,
        dtype=_compute_dtype(),
        random_init=FLAGS.random_init,
        seed=FLAGS.seed,
    )
  except (ValueError, FileNotFoundError) as e:  # ModelFileError is a ValueError
    raise cli.InputError(f"--model={FLAGS.model}: {e}") from None
  model_config = model_config.replace(
      remat_policy=FLAGS.remat,
      attention=FLAGS.attention,
      attention_block_size=FLAGS.attention_block_size,
  )
  _log(
      f"loaded {model_config.name} ({model_config.num_params() / 1e6:.0f}M params) in "
      f"{time.perf_counter() - start:.0f}s (peak RSS {_peak_rss_gib():.1f} GiB)"
  )
  config_dict = run_config_dict(model_config, selfplay_config, learner_config, sandbox_limits)
  if latest is not None:
    try:
      checkpointer.check_compatible(config_dict, latest)  # before the slow set-up
    except checkpointing.CheckpointError as e:
      raise cli.InputError(e) from None

  workers = FLAGS.sandbox_workers or max(1, os.cpu_count() or 1)
  metrics = MetricsWriter(log_dir, enabled=distributed.is_primary())
  tracker = _tracker(log_dir, config_dict)  # W&B, or None
  samples_path = os.path.join(log_dir, SAMPLES_FILE)
  history = []
  with SandboxPool(num_workers=workers, limits=sandbox_limits) as pool:
    run = SelfPlayRun(
        model_config,
        params,
        tokenizer,
        selfplay_config,
        learner_config,
        pool=pool,
        mesh=mesh,
        log=_log,
    )
    del params
    evaluate = _evaluator(run, log_dir) if evaluating() else None
    if latest is not None:
      _log(f"resuming from {checkpoint_dir} step {latest}")
      try:
        restored = checkpointer.restore(latest, run.train_state, config=config_dict)
      except checkpointing.CheckpointError as e:
        raise cli.InputError(
            f"--checkpoint_dir: {e}; move that step away to resume from "
            "an earlier one, or pass a fresh --log_dir"
        ) from None
      run.restore(restored.train_state, restored.buffers, latest)
      metrics.truncate_after(latest)
      if distributed.is_primary():
        truncate_after(samples_path, latest)
    else:
      if distributed.is_primary():
        truncate_after(samples_path, None)  # a run killed before its first checkpoint
      seed_metrics = {}
      if FLAGS.seed_dataset:
        from absolute_zero.tasks.seed_data import SeedDataError

        try:
          seed_metrics.update(run.seed_from_dataset(_seed_dataset_path()))
        except SeedDataError as e:  # e.g. no row passes validation
          raise cli.InputError(f"--seed_dataset: {e}") from None
      _log("seeding buffers from the zero triplet ...")
      seed_metrics.update(run.seed_buffers())
      _log(f"seeded: buffers {run.buffers.sizes()} (peak RSS {_peak_rss_gib():.1f} GiB)")
      if FLAGS.eval_before_training:
        seed_metrics.update(evaluate(0))
      _write_metrics(metrics, tracker, 0, seed_metrics)
      metrics.flush()
    while run.step < FLAGS.steps:
      # The previous asynchronous save holds a host copy of the train state until written;
      # let it finish (seconds) before a step whose update needs the memory (measured: the
      # overlap raised the default run's peak from 7.5 to 8.5 GiB).
      checkpointer.wait_until_finished()
      step_metrics = run.run_step()
      if FLAGS.eval_every and run.step % FLAGS.eval_every == 0:
        step_metrics.update(evaluate(run.step))
      history.append(step_metrics)
      _write_metrics(metrics, tracker, run.step, step_metrics)
      if distributed.is_primary():
        _write_samples(samples_path, run)
      _log(_summary(run.step, step_metrics))
      if run.step % FLAGS.checkpoint_every == 0 or run.step == FLAGS.steps:
        metrics.flush()  # synced to disk before the checkpoint that covers it
        checkpointer.save(
            run.step,
            run.train_state,
            None,
            run.buffers.state_dict(),
            config_dict,
            {"step": run.step},
        )
  checkpointer.wait_until_finished()
  metrics.close()
  if tracker is not None:
    tracker.finish()
  plot_path = None
  if FLAGS.plot and distributed.is_primary():
    from absolute_zero.metrics_plot import plot_run

    try:
      plot_path = plot_run(log_dir, os.path.join(log_dir, PLOT_FILE))[0]
    except ValueError as e:  # nothing numeric to plot yet
      _log(f"no plot: {e}")
  if distributed.is_primary():
    _closing_summary(
        run, history, log_dir, checkpoint_dir, samples_path, plot_path, time.perf_counter() - start
    )


EVAL_DIR = "eval"  # <log_dir>/eval/step_N.json: each in-training evaluation's report


def _evaluator(run, log_dir: str):
  """evaluate(step) -> metrics: the run's live sampler (the current parameters, no reload)
  and sandbox on --eval_benchmarks; the report goes to <log_dir>/eval/step_<step>.json."""
  from absolute_zero import distributed
  from absolute_zero.evaluation import report as report_lib
  from absolute_zero.evaluation import runner

  benchmarks = runner.parse_benchmarks(FLAGS.eval_benchmarks)
  config = runner.EvalConfig(max_new_tokens=FLAGS.eval_max_new_tokens, seed=FLAGS.seed)

  def evaluate(step: int) -> dict:
    _log(f"step {step}: evaluating on {', '.join(benchmarks)} ...")
    start = time.perf_counter()
    report = runner.run_evaluation(
        run.sampler,
        run.pool,
        benchmarks,
        None,
        FLAGS.eval_limit or None,
        config,
        model={"source": FLAGS.model, "kind": "self-play run", "step": step},
    )
    seconds = time.perf_counter() - start
    if distributed.is_primary():
      report_lib.write_report(report, os.path.join(log_dir, EVAL_DIR, f"step_{step}.json"))
    scores = ", ".join(
        f"{name} {section['score']:.3f} (n={section['n']})"
        for name, section in report["benchmarks"].items()
    )
    _log(f"step {step} eval: {scores} in {seconds:.0f}s")
    return {**runner.eval_metrics(report), "time/eval_s": seconds}

  return evaluate


def _write_metrics(metrics, tracker, step: int, values: dict) -> None:
  """One step's metrics to metrics.jsonl and TensorBoard, and to W&B when tracking."""
  record = metrics.write(step, values)
  if tracker is not None and record is not None:
    tracker.log(record)


def _tracker(log_dir: str, config_dict: dict):
  """The W&B tracker (process 0, with --wandb_project and a mode other than disabled)."""
  from absolute_zero import distributed

  if FLAGS.wandb_project is None or FLAGS.wandb_mode == "disabled":
    return None
  if not distributed.is_primary():
    return None
  from absolute_zero.wandb_tracker import WandbTracker

  try:
    tracker = WandbTracker(log_dir, FLAGS.wandb_project, mode=FLAGS.wandb_mode, config=config_dict)
  except ValueError as e:  # an unreadable wandb_run.json
    raise cli.InputError(f"--wandb_project: {e}") from None
  _log(
      f"W&B run {tracker.run_id} ({FLAGS.wandb_mode}"
      + (", resumed" if tracker.resumed else "")
      + f"), project {FLAGS.wandb_project}"
  )
  return tracker


def _seed_dataset_path() -> str:
  if FLAGS.seed_dataset == "builtin":
    from absolute_zero.tasks.seed_data import DEFAULT_SEED_DATASET

    return DEFAULT_SEED_DATASET
  return FLAGS.seed_dataset


def _write_samples(path: str, run) -> None:
  """Appends every rollout of the step (text, status, reward) for reading by eye."""
  with open(path, "a", encoding="utf-8") as f:
    for role, rollouts in run.last_rollouts.items():
      for r in rollouts:
        f.write(
            json.dumps(
                {
                    "step": run.step,
                    "task": r.task_type.value,
                    "role": role,
                    "reward": r.reward,
                    "status": r.status,
                    "valid": r.valid,
                    "finish": r.finish_reason,
                    "text": r.text,
                }
            )
            + "\n"
        )


def _nonzero_advantage_groups(m: dict) -> list[str]:
  """'{task}/{role}' groups whose advantages were not all zero in step metrics `m`."""
  return sorted(
      k[: -len("/advantage_std")]
      for k, v in m.items()
      if k.endswith("/advantage_std") and v and v > 0
  )


def _closing_summary(
    run, history, log_dir, checkpoint_dir, samples_path, plot_path, seconds
) -> None:
  """What happened, where the time went, and where to look next."""
  lines = [
      f"done: step {run.step} in {seconds / 60:.1f} min, peak RSS " f"{_peak_rss_gib():.1f} GiB"
  ]
  if history:
    valid = sum(
        int(
            round(
                m.get(f"{t.value}/propose/validity_rate", 0) * m.get(f"{t.value}/propose/count", 0)
            )
        )
        for m in history
        for t in run.config.task_types
    )
    proposed = sum(
        m.get(f"{t.value}/propose/count", 0) for m in history for t in run.config.task_types
    )
    lines.append(f"  proposals: {valid}/{proposed} valid over {len(history)} steps")
    for t in run.config.task_types:
      rates = [
          m[f"{t.value}/solve/solve_rate"] for m in history if f"{t.value}/solve/solve_rate" in m
      ]
      fails = [
          m[f"{t.value}/solve/format_failure_rate"]
          for m in history
          if f"{t.value}/solve/format_failure_rate" in m
      ]
      if rates:
        lines.append(
            f"  {t.value} solver: solve rate {sum(rates) / len(rates):.2f}, "
            f"format failures {sum(fails) / len(fails):.2f} (mean over steps)"
        )
    groups = [len(_nonzero_advantage_groups(m)) for m in history]
    lines.append(
        f"  groups with nonzero advantages per step: {groups} "
        f"(mean {sum(groups) / len(groups):.1f} of {2 * len(run.config.task_types)})"
    )
    phases = {
        name: sum(m.get(f"time/{name}", 0.0) for m in history)
        for name in ("generation_s", "sandbox_s", "update_s", "other_host_s")
    }
    lines.append(
        "  time in steps: "
        + ", ".join(f"{name[:-2]} {value:.0f}s" for name, value in phases.items())
    )
  lines.append(f"  run directory: {log_dir}")
  lines.append(
      f"  checkpoints: {checkpoint_dir} (rerun the same command with a larger "
      "--steps to continue)"
  )
  lines.append(f"  rollouts: {samples_path}")
  if evaluating():
    lines.append(
        f"  evaluations: {os.path.join(log_dir, EVAL_DIR)}/step_N.json (scores in "
        "metrics.jsonl as eval/<benchmark>/score)"
    )
  if FLAGS.wandb_project is not None and FLAGS.wandb_mode == "offline":
    lines.append(f"  W&B (offline): wandb sync {os.path.join(log_dir, 'wandb')}/offline-run-*")
  if plot_path:
    lines.append(f"  plot: {plot_path}")
  lines.append(f"  TensorBoard (pip install tensorboard): tensorboard --logdir {log_dir}")
  for line in lines:
    _log(line)


def _peak_rss_gib() -> float:
  """This process's peak resident memory so far, GiB (Linux ru_maxrss is in KiB)."""
  import resource

  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _summary(step: int, m: dict) -> str:
  parts = [f"step {step}"]
  for key, short in (
      ("deduction/solve/solve_rate", "ded solve"),
      ("abduction/solve/solve_rate", "abd solve"),
      ("induction/solve/solve_rate", "ind solve"),
      ("deduction/propose/validity_rate", "ded valid"),
      ("abduction/propose/validity_rate", "abd valid"),
      ("induction/propose/validity_rate", "ind valid"),
  ):
    if key in m:
      parts.append(f"{short} {m[key]:.2f}")
  parts.append(f"loss {m.get('learner/loss', float('nan')):.4f}")
  parts.append(f"nonzero-advantage groups {len(_nonzero_advantage_groups(m))}")
  parts.append(
      f"gen {m['time/generation_s']:.0f}s sandbox {m['time/sandbox_s']:.1f}s "
      f"(waited {m.get('time/sandbox_critical_s', 0.0):.1f}s) "
      f"update {m['time/update_s']:.0f}s | peak RSS {_peak_rss_gib():.1f} GiB"
  )
  return " | ".join(parts)


if __name__ == "__main__":
  cli.run(main, PROG)
