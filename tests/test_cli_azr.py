"""experiments.azr as users type it: subprocesses from a temporary working directory.

Relative paths only (the README's default run once died at its first checkpoint because
Orbax refuses relative paths, and every test passed absolute temporary paths). A tiny
random model with a tiny BPE tokenizer keeps the runs short; the seed tasks come from the
shipped seed file, so the buffers hold real tasks without proposer rounds.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from experiments import run_flags
from tests.cli_support import one_error_line, tokenizer_workdir

REPO = Path(__file__).resolve().parents[1]
TINY = (
    "--model=tiny-llama",
    "--random_init",
    "--tokenizer=tok/tokenizer.json",
    "--batch_size=2",
    "--max_proposer_tokens=12",
    "--max_solver_tokens=6",
    "--num_induction_inputs=2",
    "--max_seed_rounds=0",
    "--sandbox_workers=2",
    "--n_solver_samples=2",
    "--plot=false",
)


def _env() -> dict:
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device
  env.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
  return env


def _cmd(module: str, *args) -> list[str]:
  return [sys.executable, "-m", module, *args]


def _run(cwd, module, *args, timeout=600) -> subprocess.CompletedProcess:
  return subprocess.run(
      _cmd(module, *args), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
  )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
  """A working directory holding tok/tokenizer.json (500 tokens, fits tiny-llama's 512)."""
  return tokenizer_workdir(tmp_path_factory)


def _records(path: Path) -> list[dict]:
  return [json.loads(line) for line in path.read_text().splitlines()]


def _error_line(proc: subprocess.CompletedProcess, prog: str = "azr") -> str:
  return one_error_line(proc, prog)


def _check_logs_once(run_dir: Path, steps: int) -> None:
  """metrics.jsonl holds steps 0..steps once; samples.jsonl each step's rollouts once."""
  metrics = _records(run_dir / "metrics.jsonl")
  assert [m["step"] for m in metrics] == list(range(steps + 1))
  samples = Counter(s["step"] for s in _records(run_dir / "samples.jsonl"))
  for m in metrics[1:]:
    expected = sum(v for k, v in m.items() if k.endswith("/count"))
    assert samples[m["step"]] == expected, (m["step"], samples, expected)
  assert set(samples) == set(range(1, steps + 1))


# ------------------------------------------------------------------ the main job


@pytest.mark.slow
def test_main_job_kill_resume_evaluate_plot(workdir):
  """Run, SIGKILL mid-step and right as a save starts, resume, evaluate, plot."""
  run = workdir / "run"
  # 1. Killed in the middle of step 2. Saves are asynchronous, so step 1's save may still
  #    be in flight (an Orbax tmp directory) or complete; either must resume correctly.
  proc = subprocess.Popen(
      _cmd("experiments.azr", *TINY, "--log_dir=run", "--steps=3"),
      cwd=workdir,
      env=_env(),
      stderr=subprocess.PIPE,
      text=True,
  )
  _kill_when(proc, "step 2: proposing")
  assert [m["step"] for m in _records(run / "metrics.jsonl")][:2] == [0, 1]
  # 2. Rerun: killed as the save of step 2 starts.
  had_checkpoint = (run / "checkpoints" / "1").is_dir()
  proc = subprocess.Popen(
      _cmd("experiments.azr", *TINY, "--log_dir=run", "--steps=3"),
      cwd=workdir,
      env=_env(),
      stderr=subprocess.PIPE,
      text=True,
  )
  out = _kill_when(proc, "step 2 |")
  assert ("resuming from" in out) == had_checkpoint
  # A torn save of a later step, as a kill inside Orbax's write leaves it.
  (run / "checkpoints" / "3.orbax-checkpoint-tmp-1234").mkdir()
  # 3. Rerun to the end: each step's logs exactly once.
  done = _run(workdir, "experiments.azr", *TINY, "--log_dir=run", "--steps=3")
  assert done.returncode == 0, done.stderr[-3000:]
  _check_logs_once(run, 3)
  steps = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
  assert steps[-1] == 3
  assert not any("tmp" in p.name for p in (run / "checkpoints").iterdir())
  # Resume semantics: the saved config wins; a flag that changes the method is an error.
  more = _run(
      workdir,
      "experiments.azr",
      "--log_dir=run",
      "--steps=4",
      "--plot=false",
      "--sandbox_workers=2",
  )  # model, tokenizer, batch ... all from the checkpoint
  assert more.returncode == 0, more.stderr[-3000:]
  _check_logs_once(run, 4)
  line = _error_line(
      _run(
          workdir,
          "experiments.azr",
          "--log_dir=run",
          "--steps=5",
          "--batch_size=3",
          "--learning_rate=0.1",
      )
  )
  assert "--batch_size: checkpoint=2" in line and "--learning_rate" in line
  assert "--override_saved_config" in line
  # evaluate on the run's checkpoints by relative path, with no data flag.
  ev = _run(
      workdir,
      "experiments.evaluate",
      "--model=run/checkpoints",
      "--benchmarks=cruxeval_o",
      "--limit=2",
      "--max_new_tokens=4",
      "--output=eval.json",
      "--sandbox_workers=2",
  )
  assert ev.returncode == 0, ev.stderr[-3000:]
  report = json.loads((workdir / "eval.json").read_text())
  assert report["benchmarks"]["cruxeval_o"]["n"] == 2, report["benchmarks"]
  # plot_run on the run directory, by relative path.
  plot = _run(workdir, "experiments.plot_run", "--run_dir=run", "--out=plot.png")
  assert plot.returncode == 0, plot.stderr[-3000:]
  assert (workdir / "plot.png").stat().st_size > 10_000


def _kill_when(proc: subprocess.Popen, marker: str, timeout: float = 600) -> str:
  """SIGKILLs `proc` as soon as its stderr shows `marker`; returns what it printed."""
  seen = []
  deadline = time.monotonic() + timeout
  for line in proc.stderr:
    seen.append(line)
    if marker in line:
      proc.send_signal(signal.SIGKILL)
      break
    assert time.monotonic() < deadline, "".join(seen)[-3000:]
  proc.wait(timeout=60)
  assert proc.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
  return "".join(seen)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--checkpoint_every=0",), "--checkpoint_every=0 must be >= 1"),
        (("--sandbox_timeout=0",), "--sandbox_timeout=0.0 must be > 0"),
        (("--sandbox_timeout=-3",), "--sandbox_timeout=-3.0 must be > 0"),
        (("--sandbox_workers=-1",), "--sandbox_workers=-1 must be >= 0"),
        (("--steps=abc",), "--steps=abc"),
        (("--overlap_sandbox=maybe",), "--overlap_sandbox=maybe"),
        (("--no_such_flag=1",), "no_such_flag"),
        (("stray", "args"), "unexpected positional arguments ['stray', 'args']"),
        (("--model=models/none.gguf",), "--model=models/none.gguf: no such file or directory"),
        (("--model=~/no/such/dir",), "no such file or directory"),
        (("--tokenizer=tok/missing.json",), "--tokenizer=tok/missing.json: no such file"),
        (("--seed_dataset=seeds.jsonl",), "--seed_dataset=seeds.jsonl: no such file"),
        (("--log_dir=gs://bucket/run",), "--log_dir=gs://bucket/run"),
        (("--checkpoint_dir=s3://bucket/run",), "s3:// paths are not supported"),
        (("--kl_coef=0.1",), "--kl_coef must be 0"),
        (
            ("--compilation_cache=tok/tokenizer.json",),
            "--compilation_cache=tok/tokenizer.json: not a directory",
        ),
        (("--task_types=deduction,summary",), "unknown task type 'summary'"),
        (("--batch_size=0",), "batch_size must be >= 1"),
        (("--top_p=1.5",), "top_p must be in (0, 1]"),
        (("--temperature=0",), "temperature must be > 0"),
        (("--learnability=sometimes",), "learnability"),
        (("--induction_min_pairs=1",), "min_pairs must be >= 2"),
        (
            ("--diversity_reward_weight=-1",),
            "--diversity_reward_weight: diversity_reward_weight must be a finite number >= 0",
        ),
    ],
)
def test_bad_flag_values(workdir, args, expected):
  line = _error_line(_run(workdir, "experiments.azr", "--log_dir=bad", *args, timeout=120))
  assert expected in line, line


def test_gs_without_gcsfs_names_the_extra(workdir):
  pytest.importorskip  # noqa: B018 (documentation: gcsfs is not installed in CI)
  if __import__("importlib").util.find_spec("gcsfs") is not None:
    pytest.skip("gcsfs is installed")
  line = _error_line(_run(workdir, "experiments.azr", "--checkpoint_dir=gs://b/ckpt", timeout=120))
  assert "gcsfs" in line and ".[gcs]" in line


def test_unwritable_log_dir(workdir):
  (workdir / "afile").write_text("x")
  line = _error_line(_run(workdir, "experiments.azr", "--log_dir=afile/run", timeout=120))
  assert "--log_dir" in line and "not writable" in line


def test_seed_dataset_that_is_not_jsonl(workdir):
  (workdir / "seeds.csv").write_text("snippet,input,output\nx,y,z\n")
  line = _error_line(
      _run(workdir, "experiments.azr", "--log_dir=bad", "--seed_dataset=seeds.csv", timeout=120)
  )
  assert "seeds.csv" in line and "line 1" in line


def test_hf_directory_whose_config_lacks_fields(workdir):
  hf = workdir / "hf_model"
  hf.mkdir(exist_ok=True)
  (hf / "config.json").write_text(json.dumps({"model_type": "llama"}))
  line = _error_line(
      _run(workdir, "experiments.azr", "--log_dir=bad", "--model=hf_model", timeout=300)
  )
  assert "--model=" in line and "config.json" in line


def _foreign_checkpoint(path: Path, config: dict) -> None:
  """An Orbax checkpoint written by someone else (no self-play run config)."""
  code = (
      "import sys, jax, jax.numpy as jnp\n"
      "from absolute_zero.checkpointing import RunCheckpointer\n"
      "with RunCheckpointer(sys.argv[1], async_save=False) as c:\n"
      f"  c.save(1, {{'w': jnp.zeros(2)}}, None, {{}}, {config!r}, {{}})\n"
  )
  subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=_env(), timeout=300)


def test_foreign_checkpoint_directory(workdir):
  _foreign_checkpoint(workdir / "foreign", {"trainer": "someone else"})
  line = _error_line(
      _run(workdir, "experiments.azr", "--log_dir=bad", "--checkpoint_dir=foreign", timeout=300)
  )
  assert "foreign" in line and "not written by experiments.azr" in line


def test_corrupt_checkpoint_directory(workdir):
  _foreign_checkpoint(workdir / "corrupt", {"selfplay": {}})
  for f in (workdir / "corrupt" / "1" / "config").rglob("*"):
    if f.is_file():
      f.write_bytes(b"\x00garbage{")
  line = _error_line(
      _run(workdir, "experiments.azr", "--log_dir=bad", "--checkpoint_dir=corrupt", timeout=300)
  )
  assert "corrupt" in line and "cannot be read" in line


def test_empty_checkpoint_directory_starts_fresh(workdir):
  """An empty directory is a fresh run, not an error (it is where a new run starts)."""
  (workdir / "empty").mkdir()
  proc = _run(
      workdir,
      "experiments.azr",
      "--log_dir=bad",
      "--checkpoint_dir=empty",
      "--steps=0",
      *TINY,
      timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "done: step 0" in proc.stderr


# ------------------------------------------------------------------ configuration


def test_every_config_field_has_a_flag_or_a_reason():
  assert run_flags.unflagged_fields() == []
  names = [k.flag for k in run_flags.KNOBS]
  assert len(names) == len(set(names))


def test_flags_reach_the_configs():
  """Each knob's flag, set to a non-default value, lands in its config field."""
  from absl import flags

  fv = flags.FlagValues()
  run_flags.define_flags(fv)
  fv(["prog"])
  changed = {}
  for knob in run_flags.KNOBS:
    value = fv[knob.flag].value
    if knob.choices:
      new = [c for c in knob.choices if c != value][0]
    elif isinstance(value, bool):
      new = not value
    elif isinstance(value, int):
      new = value + 3
    elif isinstance(value, float):
      new = value * 0.5 + 0.125
    elif isinstance(value, list):
      new = ["induction", "deduction"]
    else:
      raise AssertionError(knob)
    fv[knob.flag].value = new
    changed[knob] = new
  fv["kl_coef"].value = 0.0
  del changed[[k for k in changed if k.flag == "kl_coef"][0]]
  fv["top_p"].value = changed[[k for k in changed if k.flag == "top_p"][0]] = 0.5
  selfplay, learner, sandbox = run_flags.build_configs(fv)
  sections = {
      "selfplay": selfplay,
      "learner": learner,
      "sandbox": sandbox,
      "prompts": selfplay.prompts,
      "parsing": selfplay.parsing,
      "validation": selfplay.validation,
      "rewards": selfplay.rewards,
  }
  for knob, new in changed.items():
    got = getattr(sections[knob.section], knob.field)
    if knob.flag == "task_types":
      assert [t.value for t in got] == ["deduction", "induction"]
    elif knob.flag.endswith("_mb"):
      assert got == new << 20
    else:
      assert got == new, knob.flag
  # Values used in two places are one value.
  assert selfplay.prompts.num_inputs == selfplay.parsing.num_inputs == selfplay.num_induction_inputs
  assert selfplay.prompts.time_limit_s == selfplay.sandbox_timeout_s == sandbox.timeout_s
  assert selfplay.rewards.n_samples == selfplay.n_solver_samples
  assert learner.temperature == selfplay.temperature


def test_helpfull_groups_the_project_flags_first(workdir):
  proc = _run(workdir, "experiments.azr", "--helpfull", timeout=120)
  text = proc.stdout + proc.stderr
  groups = [
      text.index(g + ":")
      for g in (
          run_flags.G_RUN,
          run_flags.G_ROLLOUT,
          run_flags.G_LEARNER,
          run_flags.G_REWARD,
          run_flags.G_SANDBOX,
      )
  ]
  assert groups == sorted(groups) and groups[-1] < text.index("absl.app:")
  assert "--log_dir: The run directory" in text
  for knob in run_flags.KNOBS:
    assert f"--{knob.flag}" in text or f"--[no]{knob.flag}" in text
  # The intrinsic-reward ablations, off by default, with the reward flags.
  rewards = text[text.index(run_flags.G_REWARD + ":") : text.index(run_flags.G_SANDBOX + ":")]
  for flag in ("complexity_reward_weight", "diversity_reward_weight"):
    help_text = rewards[rewards.index(f"--{flag}:") :]
    assert "(default: '0.0')" in help_text.split("--", 2)[1], help_text[:600]


def test_a_checkpoint_write_failure_is_one_line_and_resumable(workdir):
  """The disk refuses the checkpoint (a file-size limit stands in for a full disk): one
  error line naming the directory, the OS's reason and how to go on, exit 2; the rerun
  without the limit resumes and finishes."""
  args = (*TINY, "--log_dir=full", "--steps=1")
  # bash's `ulimit -S -f` (soft, 1 KiB blocks; the sandbox sets its own limits under the
  # hard one) rather than preexec_fn, which would fork this JAX process. Checkpoint data
  # files of tiny-llama are over 64 KiB, its logs are not.
  shell = "ulimit -S -f 64 && exec " + " ".join(map(shlex.quote, _cmd("experiments.azr", *args)))
  # The failing run reads the session's compilation cache but writes no entry to it (an
  # entry would meet the file-size limit too): JAX skips entries below this size.
  env = {**_env(), "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": str(2**62)}
  failed = subprocess.run(
      ["bash", "-c", shell], cwd=workdir, env=env, capture_output=True, text=True, timeout=600
  )
  line = _error_line(failed)
  assert f"writing a checkpoint in {workdir / 'full' / 'checkpoints'} failed" in line
  assert "File too large (errno 27)" in line and "rerun the same command" in line
  assert not any(p.name.isdigit() for p in (workdir / "full" / "checkpoints").iterdir())
  done = _run(workdir, "experiments.azr", *args)
  assert done.returncode == 0, done.stderr[-3000:]
  assert [m["step"] for m in _records(workdir / "full" / "metrics.jsonl")] == [0, 1]
