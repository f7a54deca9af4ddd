"""Absolute Zero self-play: the main experiment.

    python -m experiments.azr                      # small CPU run on the embedded Gemma 3 270M
    python -m experiments.azr --model=/ckpt/qwen2.5-7b --mesh=1,4,2 --batch_size=64 \
        --n_solver_samples=8 --num_references=6 --max_proposer_tokens=4096 ...

Each step: the proposer proposes for every task type, the sandbox validates, the solver
answers buffer tasks (and `n_solver_samples` answers per new proposal to price it), rewards
become task-relative advantages, and one clipped-surrogate update is applied. Checkpoints
(params, optimizer, step, RNG, buffers, config) go to --checkpoint_dir; a rerun with the
same directory resumes from the last complete checkpoint. Metrics go to --log_dir as
metrics.jsonl and TensorBoard event files (plot them with experiments/plot_run.py), and
every rollout's text, status and reward to samples.jsonl.

Defaults are a small CPU configuration that shows the loop working in minutes; the
reference values (spec §5–6) are given in each flag's help.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags
from absl import logging as absl_logging

FLAGS = flags.FLAGS

# Model and devices.
flags.DEFINE_string("model", "gemma3-270m", "Embedded model name (gemma3-270m, "
                    "smollm2-135m), a .gguf file, an HF checkpoint directory, or a preset "
                    "name with --random_init.")
flags.DEFINE_string("tokenizer", None, "Tokenizer source if not the model's own "
                    "(.gguf, tokenizer.json, tokenizer.model or a directory).")
flags.DEFINE_bool("random_init", False, "Random weights for a preset (benchmarks only).")
flags.DEFINE_string("mesh", "1,1,-1", "Device mesh data,fsdp,tensor; product = device "
                    "count, -1 takes the rest.")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Activation dtype "
                  "(bfloat16 on GPU/TPU; float32 on CPU).")
flags.DEFINE_enum("param_dtype", "float32", ["float32", "bfloat16"], "Parameter dtype.")
# What is trained.
flags.DEFINE_list("task_types", ["deduction", "abduction", "induction"],
                  "Task types to propose and solve (ablation): any of deduction, abduction, "
                  "induction.")
flags.DEFINE_bool("train_proposer", True, "Train the proposer role too (False: solver only).")
# Batch and rollout sizes.
flags.DEFINE_integer("batch_size", 1, "Tasks per (task type, role) per step (reference 64).")
flags.DEFINE_integer("n_solver_samples", 2, "Solver samples per new proposal to estimate "
                     "its solve rate (reference 8).")
flags.DEFINE_integer("num_references", 2, "Reference triplets shown to deduction/abduction "
                     "proposers (reference 6).")
flags.DEFINE_integer("num_induction_inputs", 10, "Inputs asked of the induction proposer.")
flags.DEFINE_integer("seed_batch_factor", 4, "Seeding fills buffers to batch_size x this.")
flags.DEFINE_integer("max_seed_rounds", 2, "Stop seeding after this many proposer rounds "
                     "(reference: until full).")
flags.DEFINE_integer("max_prompt_tokens", 2048, "Prompt budget (reference 6144).")
flags.DEFINE_integer("max_proposer_tokens", 128, "New tokens per proposal (reference 8096).")
flags.DEFINE_integer("max_solver_tokens", 64, "New tokens per answer (reference 8096).")
flags.DEFINE_float("temperature", 1.0, "Sampling temperature (the learner uses the same).")
flags.DEFINE_float("top_p", 1.0, "Nucleus sampling threshold.")
# Learner.
flags.DEFINE_float("learning_rate", 1e-6, "AdamW learning rate (constant).")
flags.DEFINE_float("max_grad_norm", 1.0, "Gradient clipping by global norm.")
flags.DEFINE_integer("micro_batch_size", 2, "Rows per micro-batch (gradients accumulate over "
                     "micro-batches, weighted by tokens); bounds activation memory.")
flags.DEFINE_enum("advantage_mode", "task_relative", ["task_relative", "global"],
                  "Per-(task, role) normalisation, or one global baseline (ablation).")
flags.DEFINE_enum("remat", "full", ["none", "full", "dots", "dots_no_batch"],
                  "Rematerialisation policy of the scanned layers.")
# Run control.
flags.DEFINE_integer("steps", 3, "Self-play steps (policy updates) to reach.")
flags.DEFINE_integer("seed", 0, "Run seed (sampling keys and buffer draws derive from it).")
flags.DEFINE_string("checkpoint_dir", None, "Orbax checkpoints (default: <log_dir>/checkpoints).")
flags.DEFINE_integer("checkpoint_every", 1, "Save every N steps (and at the end).")
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.")
flags.DEFINE_bool("resume", True, "Resume from --checkpoint_dir's latest checkpoint if any.")
flags.DEFINE_integer("sandbox_workers", 0, "Sandbox worker processes (0: one per CPU core).")
flags.DEFINE_float("sandbox_timeout", 5.0, "Wall-clock seconds per sandboxed job "
                   "(reference 10).")
flags.DEFINE_bool("plot", True, "Write plot.png into --log_dir at the end.")


DEFAULT_LOG_DIR = "runs/azr-default"
# --log_dir is absl's own flag (absl.logging defines it); we use it as the run directory:
# metrics.jsonl, TensorBoard events and plot.png go there (default: runs/azr-default).


def run_dirs() -> tuple[str, str]:
  log_dir = FLAGS.log_dir or DEFAULT_LOG_DIR
  return log_dir, FLAGS.checkpoint_dir or os.path.join(log_dir, "checkpoints")


def _fail(error) -> None:
  """Bad input: one clear line on stderr, exit status 2, nothing written or lost."""
  print(f"azr: error: {error}", file=sys.stderr, flush=True)
  sys.exit(2)


def _log(msg: str) -> None:
  """A progress line on stderr, from process 0 only (every process runs the same steps)."""
  from absolute_zero import distributed
  if not distributed.is_primary():
    return
  print(f"[azr {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build_configs():
  """Flags -> (SelfPlayConfig, LearnerConfig); raises ValueError with a clear message."""
  from absolute_zero.learner import LearnerConfig
  from absolute_zero.selfplay.config import SelfPlayConfig, parse_task_types

  selfplay = SelfPlayConfig(
      task_types=parse_task_types(FLAGS.task_types), train_proposer=FLAGS.train_proposer,
      batch_size=FLAGS.batch_size, n_solver_samples=FLAGS.n_solver_samples,
      num_references=FLAGS.num_references, num_induction_inputs=FLAGS.num_induction_inputs,
      seed_batch_factor=FLAGS.seed_batch_factor, max_seed_rounds=FLAGS.max_seed_rounds,
      max_prompt_tokens=FLAGS.max_prompt_tokens,
      max_proposer_tokens=FLAGS.max_proposer_tokens,
      max_solver_tokens=FLAGS.max_solver_tokens, temperature=FLAGS.temperature,
      top_p=FLAGS.top_p, seed=FLAGS.seed)
  learner = LearnerConfig(
      learning_rate=FLAGS.learning_rate, max_grad_norm=FLAGS.max_grad_norm,
      micro_batch_size=FLAGS.micro_batch_size, temperature=FLAGS.temperature,
      advantage_mode=FLAGS.advantage_mode)
  return selfplay, learner


def run_config_dict(model_config, selfplay, learner) -> dict:
  import dataclasses
  from absolute_zero.checkpointing import to_jsonable
  return to_jsonable({"model": dataclasses.asdict(model_config), "model_source": FLAGS.model,
                      "selfplay": selfplay.to_dict(), "learner": dataclasses.asdict(learner),
                      "mesh": FLAGS.mesh})


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS["verbosity"].present:  # Orbax logs every save at INFO; keep the console readable
    absl_logging.set_verbosity(absl_logging.WARNING)
  from absolute_zero import distributed
  distributed.maybe_initialize_distributed()

  import jax
  from absolute_zero import checkpointing, sharding
  from absolute_zero.metrics import MetricsWriter
  from absolute_zero.models.loading import load_policy
  from absolute_zero.sandbox import SandboxLimits, SandboxPool
  from absolute_zero.selfplay.run import SelfPlayRun

  try:  # every bad flag fails here, before anything slow happens
    selfplay_config, learner_config = build_configs()
    mesh = sharding.make_mesh(FLAGS.mesh)
    log_dir, checkpoint_dir = run_dirs()
    checkpointer = checkpointing.RunCheckpointer(checkpoint_dir,
                                                 keep=FLAGS.keep_checkpoints)
    if not FLAGS.resume and checkpointer.latest_step() is not None:
      raise ValueError(f"--resume=false but {checkpoint_dir} already holds step "
                       f"{checkpointer.latest_step()}; use a fresh --checkpoint_dir")
  except (ValueError, checkpointing.CheckpointError) as e:
    _fail(e)
  single_device = mesh.devices.size == 1
  _log(f"devices: {mesh.devices.size} x {jax.default_backend()}, mesh {dict(mesh.shape)}")

  _log(f"loading model {FLAGS.model} ...")
  start = time.perf_counter()
  try:
    model_config, params, tokenizer = load_policy(
        FLAGS.model, FLAGS.tokenizer, param_dtype=FLAGS.param_dtype, dtype=FLAGS.dtype,
        random_init=FLAGS.random_init, seed=FLAGS.seed)
  except (ValueError, FileNotFoundError) as e:  # CheckpointError is a ValueError
    _fail(e)
  model_config = model_config.replace(remat_policy=FLAGS.remat)
  _log(f"loaded {model_config.name} ({model_config.num_params() / 1e6:.0f}M params) in "
       f"{time.perf_counter() - start:.0f}s")
  config_dict = run_config_dict(model_config, selfplay_config, learner_config)

  latest = checkpointer.latest_step() if FLAGS.resume else None
  if latest is not None:
    try:
      checkpointer.check_compatible(config_dict, latest)  # before the slow set-up
    except checkpointing.CheckpointError as e:
      _fail(e)

  workers = FLAGS.sandbox_workers or max(1, os.cpu_count() or 1)
  metrics = MetricsWriter(log_dir, enabled=distributed.is_primary())
  with SandboxPool(num_workers=workers,
                   limits=SandboxLimits(timeout_s=FLAGS.sandbox_timeout)) as pool:
    run = SelfPlayRun(model_config, params, tokenizer, selfplay_config, learner_config,
                      pool=pool, mesh=None if single_device else mesh, log=_log)
    del params
    if latest is not None:
      _log(f"resuming from {checkpoint_dir} step {latest}")
      restored = checkpointer.restore(latest, run.train_state, config=config_dict)
      run.restore(restored.train_state, restored.buffers, latest)
      metrics.truncate_after(latest)
    else:
      _log("seeding buffers from the zero triplet ...")
      seed_metrics = run.seed_buffers()
      _log(f"seeded: {json.dumps(seed_metrics)}")
      metrics.write(0, seed_metrics)
    while run.step < FLAGS.steps:
      step_metrics = run.run_step()
      metrics.write(run.step, step_metrics)
      if distributed.is_primary():
        _write_samples(os.path.join(log_dir, "samples.jsonl"), run)
      _log(_summary(run.step, step_metrics))
      if run.step % FLAGS.checkpoint_every == 0 or run.step == FLAGS.steps:
        checkpointer.save(run.step, run.train_state, run.base_key,
                          run.buffers.state_dict(), config_dict, {"step": run.step})
  checkpointer.close()
  metrics.close()
  if FLAGS.plot and distributed.is_primary():
    from experiments.plot_run import plot_run
    paths = plot_run(log_dir, os.path.join(log_dir, "plot.png"))
    _log(f"plot: {', '.join(map(str, paths))}")
  _log(f"done: {run.step} steps; logs in {log_dir}, checkpoints in "
       f"{checkpoint_dir}")


def _write_samples(path: str, run) -> None:
  """Appends every rollout of the step (text, status, reward) for reading by eye."""
  with open(path, "a", encoding="utf-8") as f:
    for role, rollouts in run.last_rollouts.items():
      for r in rollouts:
        f.write(json.dumps({"step": run.step, "task": r.task_type.value, "role": role,
                            "reward": r.reward, "status": r.status, "valid": r.valid,
                            "finish": r.finish_reason, "text": r.text}) + "\n")


def _summary(step: int, m: dict) -> str:
  parts = [f"step {step}"]
  for key, short in (("deduction/solve/solve_rate", "ded solve"),
                     ("abduction/solve/solve_rate", "abd solve"),
                     ("induction/solve/solve_rate", "ind solve"),
                     ("deduction/propose/validity_rate", "ded valid"),
                     ("abduction/propose/validity_rate", "abd valid"),
                     ("induction/propose/validity_rate", "ind valid")):
    if key in m:
      parts.append(f"{short} {m[key]:.2f}")
  parts.append(f"loss {m.get('learner/loss', float('nan')):.4f}")
  parts.append(f"gen {m['time/generation_s']:.0f}s sandbox {m['time/sandbox_s']:.1f}s "
               f"update {m['time/update_s']:.0f}s")
  return " | ".join(parts)


if __name__ == "__main__":
  app.run(main)
