"""Does the self-play loop learn? Trained vs control runs from identical seeds.

    python -m experiments.learning_check --out_dir=runs/learning-check --seeds=0,1 \\
        --steps=30 --learning_rate=1e-5 [any flag of experiments.azr]

For every seed, two runs of the real loop (`python -m experiments.azr`: SelfPlayRun, the
sandbox pool, the model): the trained arm at --learning_rate and the control arm at
learning rate 0 (a frozen policy: no gradients, parameters bit-identical), every other
flag equal. Randomness derives from (seed, step), so both arms of a seed sample their
first step identically and later differ only through the updates. Then
<out_dir>/report.json and report.png: per (task, role) group and step the reward,
format-failure rate, validity rate (proposers) and solve rate of both arms (mean and
min-max over seeds), and the verdict: per group, trained vs control mean reward over the
last third of the steps against the seed-to-seed spread (experiments/learning_report.py).

Each run is an ordinary azr run directory, <out_dir>/<arm>/seed-<seed> (metrics.jsonl,
samples.jsonl, checkpoints/, plot.png), made by the same code path as any run, so resume,
checkpoints and logs have one source of truth; runs go in the order seed 0 trained,
seed 0 control, seed 1 trained, ... Rerunning the command continues: finished runs are
skipped, a partial one resumes from its last checkpoint (rerun with a larger --steps to
go further). The flags that define the method are stored in <out_dir>/check_config.json
by the first invocation; a rerun adopts them for flags it leaves out and refuses ones it
changes (and adopts the last --steps and --seeds unless given). The runs share a JAX
compilation cache (--compilation_cache, default <out_dir>/jax_cache), so the first run
pays most of the compilation.
--report_only redraws the report from the run directories.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Sequence

from absl import flags
from absl import logging as absl_logging

from absolute_zero import paths
from absolute_zero.metrics import METRICS_FILE, read_metrics
from experiments import azr, cli, learning_report, run_flags

FLAGS = flags.FLAGS
PROG = "learning_check"
G_CHECK = "0 learning check"

flags.DEFINE_string(
    "out_dir",
    "runs/learning-check",
    "The check's directory: one azr run "
    "directory per arm and seed (<arm>/seed-<seed>), check_config.json, "
    "report.json, report.png. Relative paths are to the working directory.",
    module_name=G_CHECK,
)
flags.DEFINE_list(
    "seeds",
    ["0", "1"],
    "Run seeds; each gets a trained and a control run "
    "(>= 2 for a seed-to-seed spread). May grow on a rerun.",
    module_name=G_CHECK,
)
flags.DEFINE_bool(
    "report_only",
    False,
    "Only (re)write report.json and report.png from the "
    "run directories as they are; runs nothing.",
    module_name=G_CHECK,
)
for _name in (
    "out_dir",
    "seeds",
    "steps",
    "model",
    "learning_rate",
    "batch_size",
    "task_types",
    "temperature",
    "seed_dataset",
):
  flags.declare_key_flag(_name)

CONFIG_FILE = "check_config.json"
REPORT_FILE = "report.json"
PLOT_FILE = "report.png"
# What to use instead of the azr flags the check sets per run (learning_report.PLAN_FLAGS;
# --learning_rate is the trained arm's).
INSTEAD = {
    "seed": "--seeds (each seed gets one run per arm)",
    "log_dir": "--out_dir (each run's directory is <out_dir>/<arm>/seed-<seed>)",
    "checkpoint_dir": "--out_dir (each run keeps its checkpoints in its run directory)",
    "resume": "nothing: the check always resumes its runs",
    "override_saved_config": "a fresh --out_dir: the arms must share one config",
}
# Method flags stored for the whole check (the seed is per run).
CHECK_METHOD_FLAGS = tuple(n for n in azr.METHOD_FLAGS if n != "seed")
AZR_GROUPS = (
    run_flags.G_RUN,
    run_flags.G_ROLLOUT,
    run_flags.G_LEARNER,
    run_flags.G_REWARD,
    run_flags.G_SANDBOX,
    azr.G_BUDGET,
)


def _log(msg: str) -> None:
  print(f"[{PROG} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _fmt_s(seconds: float | None) -> str:
  if seconds is None:
    return "?"
  minutes, secs = divmod(int(seconds + 0.5), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


# ------------------------------------------------------------------ flags


def _seeds() -> list[int]:
  try:
    seeds = [int(s) for s in FLAGS.seeds]
  except ValueError:
    raise cli.InputError(
        f"--seeds={','.join(FLAGS.seeds)}: give comma-separated integers, " "e.g. --seeds=0,1"
    ) from None
  cli.check(bool(seeds), "--seeds is empty: give at least one seed, e.g. --seeds=0,1")
  cli.check(
      len(set(seeds)) == len(seeds),
      f"--seeds={','.join(FLAGS.seeds)}: a seed is " "repeated; give distinct seeds",
  )
  cli.check(min(seeds) >= 0, f"--seeds={','.join(FLAGS.seeds)}: seeds must be >= 0")
  return seeds


def _adopt_saved_config(path: str) -> dict | None:
  """The stored method flags win over flags left out; given flags that differ: error."""
  if not os.path.exists(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      saved = json.load(f)
    if not isinstance(saved.get("flags"), dict):
      raise ValueError("no 'flags' object")
  except (OSError, ValueError) as e:
    raise cli.InputError(
        f"--out_dir: {path} cannot be read ({e}); move it away or use a " "fresh --out_dir"
    ) from None
  conflicts = [c.replace(": checkpoint=", ": stored=", 1) for c in azr.apply_saved_flags(saved)]
  if conflicts:
    raise cli.InputError(
        f"--out_dir holds a check made with other settings: {'; '.join(conflicts)}. Both "
        "arms of every seed must share one config: drop those flags to continue the check "
        "as stored, or use a fresh --out_dir"
    )
  return saved


def _common_args() -> list[str]:
  """Every method flag and --steps explicitly (stored values adopted), then the other azr
  flags given on the command line."""
  args = [FLAGS[name].serialize() for name in CHECK_METHOD_FLAGS if name != "learning_rate"]
  args.append(FLAGS["steps"].serialize())
  by_module = FLAGS.flags_by_module_dict()
  for group in AZR_GROUPS:
    for flag in by_module.get(group, []):
      if (
          flag.present
          and flag.name not in CHECK_METHOD_FLAGS
          and flag.name != "steps"
          and flag.name not in learning_report.PLAN_FLAGS
      ):
        args.append(flag.serialize())
  return [a for a in args if a]


# ------------------------------------------------------------------ running


def latest_checkpoint(directory: str) -> int | None:
  """The newest complete checkpoint step of a run directory (None: none or unreadable;
  the run itself then reports what is wrong)."""
  checkpoints = os.path.join(directory, "checkpoints")
  if not os.path.isdir(checkpoints):
    return None
  from absolute_zero.checkpointing import CheckpointError, RunCheckpointer

  try:
    with cli.quiet_logs():
      with RunCheckpointer(checkpoints, async_save=False, read_only=True) as c:
        return c.latest_step()
  except (CheckpointError, ValueError, OSError):
    return None


def _records(directory: str) -> list[dict]:
  path = os.path.join(directory, METRICS_FILE)
  if not os.path.exists(path):
    return []
  try:
    return read_metrics(path)
  except ValueError:
    return []


# Runs start through this exec wrapper rather than a preexec_fn: the run gets SIGKILL when
# the check dies (PR_SET_PDEATHSIG survives exec), even by SIGKILL, so a killed check never
# leaves a run writing into a directory its rerun resumes. (A preexec_fn would fork this
# process, whose JAX threads Orbax started, and JAX warns of deadlocks on such forks.)
_DIE_WITH_PARENT = """
import ctypes, os, signal, sys
try:
  ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
except (OSError, AttributeError):
  pass  # elsewhere a killed check's run finishes its step alone
if os.getppid() != int(sys.argv[1]):  # the check died before prctl took effect
  sys.exit(1)
os.execv(sys.executable, [sys.executable] + sys.argv[2:])
"""


Run = learning_report.Run
run_dir = learning_report.run_dir


class Check:
  """Runs the plan in order with progress lines; keeps the ETA's measurements."""

  def __init__(self, runs: list[Run], steps: int, env: dict[str, str]):
    self.runs, self.steps, self.env = runs, steps, env
    self.start = time.monotonic()
    self.done_steps = {r.name: 0 for r in runs}  # steps covered by a checkpoint or logged
    self.step_times: dict[str, list[float]] = {}  # run name -> time/step_s of its steps
    self.startups: list[float] = []  # seconds from a run's start to its first step

  def note(self, run: Run, records: list[dict], done: int | None = None) -> int:
    """Takes a run's step times from its records, and its progress: `done`, or else its
    last logged step; returns the last logged step."""
    last = max((r["step"] for r in records if isinstance(r.get("step"), int)), default=0)
    self.done_steps[run.name] = min(last if done is None else done, self.steps)
    self.step_times[run.name] = [
        r["time/step_s"]
        for r in records
        if isinstance(r.get("step"), int)
        and r["step"] >= 1
        and isinstance(r.get("time/step_s"), (int, float))
    ]
    return last

  def eta(self, current: Run | None = None) -> float | None:
    """Seconds left for every unfinished run (see eta_seconds)."""
    per_arm: dict[str, list[float]] = {}
    for run in self.runs:
      per_arm.setdefault(run.arm, []).extend(self.step_times.get(run.name, []))
    means = {arm: sum(t) / len(t) for arm, t in per_arm.items() if t}
    startup = sum(self.startups) / len(self.startups) if self.startups else 0.0
    remaining = [
        (r.arm, self.steps - self.done_steps[r.name], r is current)
        for r in self.runs
        if self.done_steps[r.name] < self.steps
    ]
    return learning_report.eta_seconds(remaining, means, startup)

  def progress(self, index: int, run: Run) -> None:
    _log(
        f"run {index + 1}/{len(self.runs)} {run.name}: step {self.done_steps[run.name]}/"
        f"{self.steps} | elapsed {_fmt_s(time.monotonic() - self.start)} | ETA "
        f"{_fmt_s(self.eta(run))}"
    )

  def execute(self, index: int, run: Run) -> None:
    """Runs (or resumes) one run to --steps, streaming its output with a prefix."""
    cmd = [
        sys.executable,
        "-c",
        _DIE_WITH_PARENT,
        str(os.getpid()),
        "-m",
        "experiments.azr",
        *run.args,
    ]
    launched, launched_wall = time.monotonic(), time.time()
    printed = self.done_steps[run.name]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=self.env,
    )
    _log(
        f"run {index + 1}/{len(self.runs)} {run.name}: started (pid {proc.pid})"
        + (f", resuming from step {printed}" if printed else "")
    )
    metrics_path = os.path.join(run.run_dir, METRICS_FILE)
    seen = None
    last_line = ""
    try:
      assert proc.stdout is not None
      for line in proc.stdout:
        line = line.rstrip("\n")
        if line.strip():
          last_line = line
        print(f"  {run.name} | {line}", file=sys.stderr, flush=True)
        try:
          stat = os.stat(metrics_path)
        except OSError:
          continue
        if (stat.st_size, stat.st_mtime_ns) == seen:
          continue
        seen = (stat.st_size, stat.st_mtime_ns)
        records = _records(run.run_dir)
        # Steps this process logged (older lines past the checkpoint are about to be
        # dropped and redone).
        fresh = [
            r
            for r in records
            if isinstance(r.get("step"), int)
            and r["step"] >= 1
            and r.get("time", 0) >= launched_wall
        ]
        last = max((r["step"] for r in fresh), default=printed)
        if last == printed:
          continue
        if len(fresh) == 1:  # this process's first step: what came before it is set-up
          step_s = fresh[0].get("time/step_s")
          if isinstance(step_s, (int, float)):
            self.startups.append(max(0.0, time.monotonic() - launched - step_s))
        self.note(run, records, done=last)
        printed = last
        self.progress(index, run)
      rc = proc.wait()
    except BaseException:
      proc.kill()
      proc.wait()
      raise
    if rc == 2 and f"{azr.PROG}: error:" in last_line:
      raise cli.InputError(f"{run.name}: {last_line.split(': error: ', 1)[1]}")
    if rc != 0:
      _log(
          f"{run.name} failed with exit status {rc}; its output is above. Rerun the same "
          "command to resume once the cause is fixed."
      )
      sys.exit(1)
    self.note(run, _records(run.run_dir))


def write_report(out_dir: str, seeds: Sequence[int], steps: int, config: dict) -> dict:
  """report.json and report.png from the run directories as they are now."""
  runs = {arm: {} for arm in learning_report.ARMS}
  for arm in learning_report.ARMS:
    for seed in seeds:
      records = _records(run_dir(out_dir, arm, seed))
      if records:
        runs[arm][seed] = records
  report = learning_report.build_report(runs, steps, config)
  path = os.path.join(out_dir, REPORT_FILE)
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=1)
  os.replace(tmp, path)
  if report["groups"]:
    learning_report.plot_report(report, os.path.join(out_dir, PLOT_FILE))
  return report


def _child_env(out_dir: str) -> dict[str, str]:
  """The runs' environment: this package importable, unbuffered output, and the shared
  JAX compilation cache (unless the caller set one)."""
  env = dict(os.environ)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env["PYTHONPATH"] = os.pathsep.join(
      [root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
  )
  env["PYTHONUNBUFFERED"] = "1"
  cache = FLAGS.compilation_cache
  if cache is None:
    cache = os.path.join(out_dir, "jax_cache")
  elif cache:
    cache = cli.resolve(cache, "--compilation_cache", kind="dir")
  if cache and "JAX_COMPILATION_CACHE_DIR" not in env:
    env["JAX_COMPILATION_CACHE_DIR"] = cache
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  return env


def main(argv):
  del argv  # cli.run refuses positional arguments
  if not FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.WARNING)
  for name in learning_report.PLAN_FLAGS:
    if name != "learning_rate" and FLAGS[name].present:
      raise cli.InputError(f"--{name} is set by the check for each run; use {INSTEAD[name]}")
  seeds = _seeds()
  azr.check_flags()
  cli.at_least("steps", 1, hint="steps per run")
  out_dir = cli.resolve(FLAGS.out_dir, "--out_dir", kind="dir")
  cli.check(
      not paths.is_remote(out_dir),
      f"--out_dir={FLAGS.out_dir}: the check's " "directory must be local",
  )
  config_path = os.path.join(out_dir, CONFIG_FILE)
  azr.resolve_paths()  # model, tokenizer and seed file as absolute paths, checked
  saved = _adopt_saved_config(config_path)
  if saved is not None:  # the last invocation's steps and seeds, unless given now
    if not FLAGS["steps"].present and isinstance(saved.get("steps"), int):
      FLAGS.steps = saved["steps"]
    if not FLAGS["seeds"].present and isinstance(saved.get("seeds"), list):
      FLAGS.seeds = [str(s) for s in saved["seeds"]]
      seeds = _seeds()
  if FLAGS.report_only:
    cli.check(
        saved is not None,
        f"--out_dir={FLAGS.out_dir}: no {CONFIG_FILE}: not a "
        "learning check's directory (or it never started)",
    )
    report = write_report(out_dir, seeds, FLAGS.steps, saved["flags"])
    for line in learning_report.summary_lines(report):
      _log(line)
    return
  cli.positive("learning_rate", hint="the trained arm's rate (the control arm runs at 0)")
  azr.build_configs()  # every config value checked before anything starts
  config = {
      "flags": {name: FLAGS[name].value for name in CHECK_METHOD_FLAGS},
      "steps": FLAGS.steps,
      "seeds": seeds,
  }
  cli.ensure_writable_dir(out_dir, "--out_dir")
  tmp = config_path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(config, f, indent=1)
  os.replace(tmp, config_path)
  runs = learning_report.plan_runs(out_dir, seeds, FLAGS.learning_rate, _common_args())
  check = Check(runs, FLAGS.steps, _child_env(out_dir))
  _log(
      f"{len(runs)} runs ({len(seeds)} seeds x trained at learning rate "
      f"{FLAGS.learning_rate:g} / control at 0), {FLAGS.steps} steps each, in {out_dir}"
  )
  latest = {}
  for run in runs:  # logged steps past the last checkpoint are redone, so they do not count
    latest[run.name] = latest_checkpoint(run.run_dir)
    check.note(run, _records(run.run_dir), done=latest[run.name] or 0)
  report = None
  try:
    for index, run in enumerate(runs):
      if latest[run.name] is not None and latest[run.name] >= FLAGS.steps:
        _log(
            f"run {index + 1}/{len(runs)} {run.name}: complete (checkpoint step "
            f"{latest[run.name]}), skipped"
        )
        continue
      check.execute(index, run)
      report = write_report(out_dir, seeds, FLAGS.steps, config["flags"])  # so far
  except KeyboardInterrupt:
    _log("interrupted; rerun the same command to continue")
    sys.exit(130)
  if report is None:  # every run was already complete
    report = write_report(out_dir, seeds, FLAGS.steps, config["flags"])
  _log(
      f"done in {_fmt_s(time.monotonic() - check.start)}; report {out_dir}/{REPORT_FILE}, "
      f"plot {out_dir}/{PLOT_FILE}"
  )
  for line in learning_report.summary_lines(report):
    _log(line)


if __name__ == "__main__":
  cli.run(main, PROG)
