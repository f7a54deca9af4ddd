"""Where the time of a self-play step goes, with the sandbox overlapped or serial (issue 22).

Runs N steps of one fixed self-play configuration on an embedded model (default
SmolLM2-135M; seeded from the shipped seed dataset, so the buffers hold real tasks), each
configuration in its own interpreter, and prints per step the wall seconds of generation,
sandbox work (the pool's busy time, and the part left on the critical path), other host
work, the update, compilation, and the device's idle time (neither generating nor
updating); then first step versus steady state (the median of the later steps), and the
compile share of the whole run.

Three runs by default:
  serial        --overlap_sandbox=false, persistent compilation cache in a fresh directory
                (it compiles everything and fills the cache);
  overlap       overlap on, cache off (the same compile work as the serial run);
  overlap+cache overlap on, the cache the serial run filled (a rerun of the same
                configuration): the compile seconds saved are overlap's minus this run's.
The generate calls and their keys are the same in every run, so all three must give the
same results; the JSON fingerprints (rewards, buffers, parameters) are compared.

  python experiments/bench_selfplay.py                   # 5 steps, 8 tasks per group
  python experiments/bench_selfplay.py --steps=3 --max_solver_tokens=16
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout

from experiments import cli  # noqa: E402

PROG = "bench_selfplay"
FLAGS = flags.FLAGS
flags.DEFINE_string("model", "smollm2-135m", "Embedded model to run (smollm2-135m, gemma3-270m).")
flags.DEFINE_integer("steps", 5, "Self-play steps per run.")
flags.DEFINE_integer("batch_size", 8, "Tasks per (task type, role) per step (reference 64).")
flags.DEFINE_integer("n_solver_samples", 2, "Solver samples per valid proposal (reference 8).")
flags.DEFINE_integer("max_proposer_tokens", 96, "New tokens per proposer response.")
flags.DEFINE_integer("max_solver_tokens", 48, "New tokens per solver response.")
flags.DEFINE_float(
    "learning_rate",
    1e-6,
    "Learner learning rate; 0 skips the gradients (a cheaper update, for a quick look at "
    "the rollout phases on a slow host).",
)
flags.DEFINE_integer("sandbox_workers", 0, "Sandbox worker processes (0: one per CPU core).")
flags.DEFINE_list(
    "runs",
    ["serial", "overlap", "overlap+cache"],
    "Runs, in order: serial, overlap, overlap+cache.",
)
flags.DEFINE_string("json_out", None, "Also write every run's per-step figures here (JSON).")
flags.DEFINE_string("worker", None, "Internal: run one configuration and print its JSON.")
flags.DEFINE_string("cache_dir", "", "Internal: the worker's compilation cache ('' off).")

RUNS = ("serial", "overlap", "overlap+cache")
COLUMNS = (
    ("step_s", "step"),
    ("generation_s", "gen"),
    ("sandbox_s", "sandbox"),
    ("sandbox_critical_s", "sb-crit"),
    ("other_host_s", "host"),
    ("update_s", "update"),
    ("compile_s", "compile"),
    ("device_idle_s", "idle"),
)


def _fingerprint(run) -> str:
  """Hash of what the run computed: rollout texts and rewards, buffers, parameters."""
  import jax
  import numpy as np

  h = hashlib.sha256()
  for role in ("propose", "solve"):
    for r in run.last_rollouts.get(role, []):
      h.update(repr((r.text, r.status, r.reward, r.solve_rate)).encode())
  h.update(json.dumps(run.buffers.state_dict(), sort_keys=True).encode())
  for leaf in jax.tree.leaves(run.train_state.params):
    h.update(np.asarray(leaf).tobytes())
  return h.hexdigest()[:16]


def worker(kind: str) -> None:
  """One run in this interpreter; prints one JSON line."""
  cli.use_compilation_cache(FLAGS.cache_dir)  # '' : off
  from absolute_zero import learner
  from absolute_zero.policy_loading import load_policy
  from absolute_zero.sandbox import SandboxLimits, SandboxPool
  from absolute_zero.selfplay.selfplay_config import SelfPlayConfig
  from absolute_zero.selfplay.overlap import compile_seconds
  from absolute_zero.selfplay.run import SelfPlayRun
  from absolute_zero.tasks.prompts import PromptConfig
  from absolute_zero.tasks.seed_data import DEFAULT_SEED_DATASET

  start = time.perf_counter()
  compile_seconds()  # starts the clock's listener before anything compiles
  model_config, params, tokenizer = load_policy(FLAGS.model)
  model_config = model_config.replace(remat_policy="full")  # as experiments/azr.py
  load_s = time.perf_counter() - start
  config = SelfPlayConfig(
      batch_size=FLAGS.batch_size,
      n_solver_samples=FLAGS.n_solver_samples,
      num_references=1,
      num_induction_inputs=4,
      seed_batch_factor=1,
      max_seed_rounds=1,
      max_prompt_tokens=2048,
      max_proposer_tokens=FLAGS.max_proposer_tokens,
      max_solver_tokens=FLAGS.max_solver_tokens,
      sandbox_timeout_s=5.0,
      prompts=PromptConfig(open_answer=True, single_line_answers=True),  # as experiments/azr.py
      overlap_sandbox=kind != "serial",
  )
  workers = FLAGS.sandbox_workers or os.cpu_count() or 1
  with SandboxPool(workers, SandboxLimits(timeout_s=5.0, cpu_s=5.0)) as pool:
    run = SelfPlayRun(
        model_config,
        params,
        tokenizer,
        config,
        learner.LearnerConfig(learning_rate=FLAGS.learning_rate, micro_batch_size=2),
        pool=pool,
    )
    del params
    seed_start, seed_compile = time.perf_counter(), compile_seconds()
    run.seed_from_dataset(str(DEFAULT_SEED_DATASET))
    seeded = run.seed_buffers()
    seed = dict(
        seconds=time.perf_counter() - seed_start,
        compile_s=compile_seconds() - seed_compile,
        rounds=seeded["seed/rounds"],
        buffers=run.buffers.sizes(),
    )
    steps = []
    for _ in range(FLAGS.steps):
      m = run.run_step()
      steps.append({k.split("/", 1)[1]: v for k, v in m.items() if k.startswith("time/")})
      steps[-1]["solver_tasks"] = sum(
          v for k, v in m.items() if k.endswith("/solve/count")
      )  # solver rollouts this step
      steps[-1]["estimation_samples"] = m["solver/estimation_samples"]
  print(
      json.dumps(
          dict(
              run=kind,
              load_s=load_s,
              seed=seed,
              steps=steps,
              total_s=time.perf_counter() - start,
              compile_total_s=compile_seconds(),
              fingerprint=_fingerprint(run),
          )
      ),
      flush=True,
  )


def _worker_run(kind: str, cache_dir: str) -> dict:
  argv = [sys.executable, os.path.abspath(__file__), f"--worker={kind}", f"--cache_dir={cache_dir}"]
  for name in (
      "model",
      "steps",
      "batch_size",
      "n_solver_samples",
      "max_proposer_tokens",
      "max_solver_tokens",
      "learning_rate",
      "sandbox_workers",
  ):
    argv.append(f"--{name}={FLAGS[name].value}")
  env = {k: v for k, v in os.environ.items() if k != cli.COMPILATION_CACHE_ENV}
  proc = subprocess.run(argv, capture_output=True, text=True, env=env)
  if proc.returncode != 0:
    raise cli.InputError(f"the {kind} run failed: {proc.stderr.strip().splitlines()[-1:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _table(result: dict) -> list[str]:
  lines = [
      f"{result['run']}: load {result['load_s']:.0f}s, seeding {result['seed']['seconds']:.0f}s "
      f"(compile {result['seed']['compile_s']:.0f}s, {result['seed']['rounds']} proposer "
      f"round(s), buffers {result['seed']['buffers']}), total {result['total_s']:.0f}s, "
      f"fingerprint {result['fingerprint']}",
      "  step " + "".join(f"{title:>9}" for _, title in COLUMNS) + "   crit/sandbox",
  ]
  for i, s in enumerate(result["steps"], 1):
    share = s["sandbox_critical_s"] / s["sandbox_s"] if s["sandbox_s"] else float("nan")
    lines.append(
        f"  {i:>4} " + "".join(f"{s[key]:>9.2f}" for key, _ in COLUMNS) + f"   {share:>11.0%}"
    )
  first, later = result["steps"][0], result["steps"][1:]
  if later:
    steady = {key: statistics.median(s[key] for s in later) for key, _ in COLUMNS}
    lines.append(
        "  steady (median of steps 2+) "
        + ", ".join(f"{title} {steady[key]:.2f}s" for key, title in COLUMNS)
    )
    lines.append(f"  first step / steady: {first['step_s'] / max(steady['step_s'], 1e-9):.2f}x")
  return lines


def main(argv) -> None:
  del argv
  if FLAGS.worker:
    cli.one_of("worker", [FLAGS.worker], RUNS)
    worker(FLAGS.worker)
    return
  cli.one_of("runs", FLAGS.runs, RUNS)
  cli.at_least("steps", 1)
  cli.at_least("batch_size", 1)
  cli.at_least("n_solver_samples", 1)
  cli.at_least("max_proposer_tokens", 1)
  cli.at_least("max_solver_tokens", 1)
  cli.at_least("sandbox_workers", 0)
  if FLAGS.json_out:
    cli.ensure_writable_file(cli.resolve(FLAGS.json_out, "--json_out"), "--json_out")
  print(
      f"{FLAGS.model}, {FLAGS.steps} steps, {FLAGS.batch_size} tasks per (type, role), "
      f"{FLAGS.n_solver_samples} estimation samples per valid proposal, new tokens "
      f"{FLAGS.max_proposer_tokens}/{FLAGS.max_solver_tokens}, learning rate "
      f"{FLAGS.learning_rate:g}; load average at start "
      f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
      flush=True,
  )
  results = {}
  with tempfile.TemporaryDirectory(prefix="bench_selfplay_cache-") as cache:
    for kind in FLAGS.runs:
      # The serial run fills a fresh cache; overlap runs without one; overlap+cache
      # reruns with the filled cache (filled by overlap+cache itself if serial was skipped).
      results[kind] = _worker_run(kind, "" if kind == "overlap" else cache)
      print("\n".join(_table(results[kind])), flush=True)
  print()
  for kind, r in results.items():
    sandbox = sum(s["sandbox_s"] for s in r["steps"])
    critical = sum(s["sandbox_critical_s"] for s in r["steps"])
    compile_s = r["compile_total_s"]
    print(
        f"{kind}: sandbox {sandbox:.2f}s busy, {critical:.2f}s on the critical path; steps "
        f"{sum(s['step_s'] for s in r['steps']):.1f}s; compile {compile_s:.1f}s = "
        f"{compile_s / r['total_s']:.0%} of the run's {r['total_s']:.0f}s"
    )
  if "serial" in results and "overlap" in results:
    serial = sum(s["sandbox_s"] for s in results["serial"]["steps"])
    left = sum(s["sandbox_critical_s"] for s in results["overlap"]["steps"])
    print(
        f"sandbox time left on the critical path with overlap: {left:.2f}s = "
        f"{left / max(serial, 1e-9):.0%} of its serial time ({serial:.2f}s)"
    )
  cold = [k for k in ("overlap", "serial") if k in results]
  if cold and "overlap+cache" in results:
    saved = results[cold[0]]["compile_total_s"] - results["overlap+cache"]["compile_total_s"]
    print(
        f"persistent compilation cache: {saved:.1f}s of compilation saved on the rerun "
        f"(against the {cold[0]} run)"
    )
  prints = {r["fingerprint"] for r in results.values()}
  print(
      "results identical in every run"
      if len(prints) == 1
      else f"RESULTS DIFFER between runs: {prints}"
  )
  if FLAGS.json_out:
    with open(cli.resolve(FLAGS.json_out, "--json_out"), "w") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  cli.run(main, PROG)
