"""The learning check: its report against hand-computed values, its plan of runs, and the
command end to end on a tiny model (two arms x two seeds x two steps, killed and resumed).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from experiments import learning_report as lr
from tests.cli_support import one_error_line, tokenizer_workdir

# ------------------------------------------------------------------ the report

DED_SOLVE, ABD_PROPOSE, IND_SOLVE = "deduction/solve", "abduction/propose", "induction/solve"
# Rewards per step 1..6 (None: a non-finite value, logged as null). Window: steps 5-6.
REWARDS = {
    DED_SOLVE: {
        # per-seed window means: trained 0.625, 0.25; control -0.75, -0.75
        # -> trained 0.4375, control -0.75, diff 1.1875 > spread max(0.375, 0) = 0.375
        ("trained", 0): [-1, -0.5, 0, 0.25, 0.5, 0.75],
        ("trained", 1): [-1, -1, -0.5, 0, 0.25, 0.25],
        ("control", 0): [-1, -1, -1, -0.5, -0.5, -1],
        ("control", 1): [-1, -0.5, None, -1, -1, -0.5],
    },
    ABD_PROPOSE: {
        # trained -0.5, 0.0 (seed 1 has no step 6: mean of step 5 alone); control -0.5,
        # -0.25 -> trained -0.25, control -0.375, diff 0.125 < spread max(0.5, 0.25) = 0.5
        ("trained", 0): [-0.5, -0.5, -0.5, -0.5, -0.5, -0.5],
        ("trained", 1): [-0.5, -0.5, -0.5, -0.5, 0.0],
        ("control", 0): [-0.5, -0.5, -0.5, -0.5, -0.5, -0.5],
        ("control", 1): [-0.5, -0.5, -0.5, -0.5, -0.25, -0.25],
    },
}


def _records(rewards: dict, arm: str, seed: int, steps: int = 6) -> list[dict]:
  """Metric records as a run logs them: a seeding record at step 0, then one per step."""
  records = [{"step": 0, "time": 0.0, "buffer/deduction": 4}]
  for step in range(1, steps + 1):
    record = {"step": step, "time": float(step), "time/step_s": 10.0}
    for group, by_run in rewards.items():
      values = by_run[(arm, seed)]
      if step <= len(values):
        record[f"{group}/count"] = 4
        record[f"{group}/reward_mean"] = values[step - 1]
        record[f"{group}/format_failure_rate"] = 0.5 if step == 1 else 0.25 * (arm == "control")
      if step == 1 and group == DED_SOLVE:
        record[f"{group}/solve_rate"] = 0.0
      if group == DED_SOLVE and arm == "trained":  # advantages nonzero in 4 of 12 steps
        record[f"{group}/advantage_std"] = 0.5 if step in (2, 3) else 0.0
    records.append(record)
  # A longer run's step beyond the check's steps is ignored.
  records.append({"step": steps + 1, "time": 99.0, f"{DED_SOLVE}/reward_mean": 100.0})
  return records


def _runs(rewards=REWARDS, seeds=(0, 1)) -> dict:
  return {arm: {seed: _records(rewards, arm, seed) for seed in seeds} for arm in lr.ARMS}


@pytest.mark.parametrize(
    "steps, window",
    [(1, (1, 1)), (2, (2, 2)), (3, (3, 3)), (4, (3, 4)), (6, (5, 6)), (50, (34, 50))],
)
def test_last_third(steps, window):
  assert lr.last_third(steps) == window  # the last ceil(steps / 3) steps


def test_report_against_hand_computed_values():
  report = lr.build_report(_runs(), 6, {"batch_size": 4})
  assert report["window"] == [5, 6] and report["config"] == {"batch_size": 4}
  assert list(report["groups"]) == [DED_SOLVE, ABD_PROPOSE]  # the project's task order
  assert report["runs"] == {"trained": {"0": 6, "1": 6}, "control": {"0": 6, "1": 6}}
  assert report["complete"] is True

  ded = report["groups"][DED_SOLVE]["last_third"]["reward_mean"]
  assert ded["trained_per_seed"] == {"0": 0.625, "1": 0.25}
  assert ded["control_per_seed"] == {"0": -0.75, "1": -0.75}
  assert ded["trained_mean"] == 0.4375 and ded["control_mean"] == -0.75
  assert ded["difference"] == 1.1875
  assert ded["trained_range"] == 0.375 and ded["control_range"] == 0.0
  assert ded["spread"] == 0.375
  assert ded["trained_std"] == pytest.approx(0.375 / math.sqrt(2))
  assert ded["paired_differences"] == {"0": 1.375, "1": 1.0}
  assert ded["passes"] is True and report["groups"][DED_SOLVE]["passes"] is True

  abd = report["groups"][ABD_PROPOSE]["last_third"]["reward_mean"]
  assert abd["trained_per_seed"] == {"0": -0.5, "1": 0.0}
  assert abd["control_per_seed"] == {"0": -0.5, "1": -0.25}
  assert abd["difference"] == 0.125 and abd["spread"] == 0.5
  assert abd["passes"] is False

  # Per-step curves: step 4 of the deduction solver, and the null at control step 3.
  curve = report["groups"][DED_SOLVE]["curves"]["reward_mean"]["trained"]
  assert curve["steps"] == [1, 2, 3, 4, 5, 6]  # step 0 and step 7 left out
  i = curve["steps"].index(4)
  assert (curve["mean"][i], curve["min"][i], curve["max"][i], curve["n"][i]) == (
      0.125,
      0.0,
      0.25,
      2,
  )
  assert curve["std"][i] == pytest.approx(0.25 / math.sqrt(2))
  control = report["groups"][DED_SOLVE]["curves"]["reward_mean"]["control"]
  assert control["n"][2] == 1 and control["mean"][2] == -1.0 and control["std"][2] is None
  # Other metrics are reported too, per role.
  assert set(report["groups"][DED_SOLVE]["curves"]) == {
      "reward_mean",
      "format_failure_rate",
      "solve_rate",
  }
  assert set(report["groups"][ABD_PROPOSE]["curves"]) == {
      "reward_mean",
      "format_failure_rate",
      "validity_rate",
      "solve_rate_of_valid",
  }
  fails = report["groups"][DED_SOLVE]["last_third"]["format_failure_rate"]
  assert fails["trained_mean"] == 0.0 and fails["control_mean"] == 0.25
  assert report["groups"][DED_SOLVE]["curves"]["solve_rate"]["trained"]["steps"] == [1]
  assert report["groups"][DED_SOLVE]["signal_share"] == {"trained": 4 / 12, "control": None}

  # One group of the two needed passes.
  assert report["passing_groups"] == [DED_SOLVE]
  assert report["verdict"] == "fail"
  assert report["first_step_identical"] == {"0": True, "1": True}
  json.dumps(report, allow_nan=False)  # plain JSON


def test_verdict_counts_groups_and_needs_two_seeds():
  rewards = dict(REWARDS)
  rewards[IND_SOLVE] = {
      (arm, seed): [0.5] * 6 if arm == "trained" else [-0.5] * 6
      for arm in lr.ARMS
      for seed in (0, 1)
  }  # spread 0, diff 1: passes
  report = lr.build_report(_runs(rewards), 6)
  assert report["passing_groups"] == [DED_SOLVE, IND_SOLVE]
  assert report["verdict"] == "pass"
  # One seed per arm: no spread, so no group can pass or fail.
  one = lr.build_report(_runs(rewards, seeds=(0,)), 6)
  assert all(g["passes"] is None for g in one["groups"].values())
  assert one["groups"][DED_SOLVE]["last_third"]["reward_mean"]["difference"] == 1.375
  assert one["verdict"] == "undetermined"
  # A run that stopped early: a partial report.
  runs = _runs()
  runs["control"][1] = runs["control"][1][:4]  # steps 0-3
  partial = lr.build_report(runs, 6)
  assert partial["complete"] is False and partial["runs"]["control"]["1"] == 3
  assert partial["groups"][DED_SOLVE]["last_third"]["reward_mean"]["control_per_seed"] == {
      "0": -0.75
  }
  assert partial["groups"][DED_SOLVE]["passes"] is None


def test_first_step_differences_are_reported():
  runs = _runs()
  runs["control"][1][1] = {**runs["control"][1][1], f"{DED_SOLVE}/reward_mean": -0.5}
  report = lr.build_report(runs, 6)
  assert report["first_step_identical"] == {"0": True, "1": False}
  assert any("step 1 differs" in line for line in lr.summary_lines(report))


def test_summary_and_plot(tmp_path):
  report = lr.build_report(_runs(), 6)
  lines = lr.summary_lines(report)
  ded = [line for line in lines if DED_SOLVE in line][0]
  assert "trained 0.438" in ded and "control -0.750" in ded and "+1.188" in ded
  assert "spread 0.375" in ded and "PASS" in ded and "nonzero advantages: 33%" in ded
  assert lines[-1].startswith("groups passing: 1 of 2 (needed 2): fail")
  out = lr.plot_report(report, str(tmp_path / "report.png"))
  assert Path(out).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert Path(out).stat().st_size > 20_000
  with pytest.raises(ValueError, match="no groups"):
    lr.plot_report(lr.build_report({}, 3), str(tmp_path / "empty.png"))


# ------------------------------------------------------------------ the plan


def _flag_values(args) -> dict[str, str]:
  return dict((a.lstrip("-").split("=", 1) + ["true"])[:2] for a in args)


def test_plan_pairs_identical_seeds_with_a_zero_rate_control():
  common = ("--model=tiny-llama", "--batch_size=4", "--weight_decay=0.1", "--random_init")
  runs = lr.plan_runs("out", [3, 7], 1e-5, common)
  assert [(r.arm, r.seed) for r in runs] == [
      ("trained", 3),
      ("control", 3),
      ("trained", 7),
      ("control", 7),
  ]
  assert len({r.run_dir for r in runs}) == 4
  assert runs[1].run_dir == os.path.join("out", "control", "seed-3")
  for trained, control in (runs[0:2], runs[2:4]):
    t, c = _flag_values(trained.args), _flag_values(control.args)
    assert t["seed"] == c["seed"] == str(trained.seed) == str(control.seed)
    assert float(t["learning_rate"]) == 1e-5 and float(c["learning_rate"]) == 0.0
    assert t["log_dir"] == trained.run_dir and c["log_dir"] == control.run_dir
    # Everything else equal, in the same order.
    rest = [a for a in trained.args if not a.startswith(("--learning_rate=", "--log_dir="))]
    assert rest == [a for a in control.args if not a.startswith(("--learning_rate=", "--log_dir="))]
    assert tuple(rest[: len(common)]) == common
  with pytest.raises(ValueError, match="> 0"):
    lr.plan_runs("out", [0, 1], 0.0, common)
  with pytest.raises(ValueError, match="distinct"):
    lr.plan_runs("out", [1, 1], 1e-5, common)
  with pytest.raises(ValueError, match="--seed"):
    lr.plan_runs("out", [0], 1e-5, ("--seed=4",))


def test_eta():
  # trained: 2 steps left of a started run + 3 of one not started; control: 3 not started.
  remaining = [("trained", 2, True), ("trained", 3, False), ("control", 3, False)]
  assert (
      lr.eta_seconds(remaining, {"trained": 100.0, "control": 20.0}, 30.0)
      == 2 * 100 + 3 * 100 + 30 + 3 * 20 + 30
  )
  # An arm not measured yet borrows the slowest measured one; nothing measured: unknown.
  assert lr.eta_seconds(remaining, {"trained": 100.0}, 0.0) == 800.0
  assert lr.eta_seconds(remaining, {}, 0.0) is None
  assert lr.eta_seconds([], {}, 0.0) == 0.0


# ------------------------------------------------------------------ the command

REPO = Path(__file__).resolve().parents[1]
TINY = (
    "--model=tiny-llama",
    "--random_init",
    "--tokenizer=tok/tokenizer.json",
    "--task_types=deduction",
    "--batch_size=2",
    "--max_proposer_tokens=12",
    "--max_solver_tokens=6",
    "--num_induction_inputs=2",
    "--max_seed_rounds=0",
    "--n_solver_samples=2",
    "--learning_rate=1e-3",
    "--weight_decay=0.1",
)
BUDGET = ("--sandbox_workers=2", "--plot=false")  # not stored: given on every invocation


def _env() -> dict:
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device
  env.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
  return env


def _cmd(*args) -> list[str]:
  return [sys.executable, "-m", "experiments.learning_check", *args]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
  return tokenizer_workdir(tmp_path_factory)


def _error_line(proc: subprocess.CompletedProcess) -> str:
  return one_error_line(proc, "learning_check")


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--seed=3",), "--seed is set by the check for each run; use --seeds"),
        (("--seeds=0,x",), "--seeds=0,x: give comma-separated integers"),
        (("--learning_rate=0",), "--learning_rate=0.0 must be > 0"),
    ],
)
def test_bad_input(workdir, args, expected):
  proc = subprocess.run(
      _cmd("--out_dir=bad", *args),
      cwd=workdir,
      env=_env(),
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert expected in _error_line(proc)
  assert not (workdir / "bad").exists()  # bad input creates nothing


def _alive(pid: int) -> bool:
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except FileNotFoundError:
    return False


@pytest.mark.slow
def test_two_arms_two_seeds_killed_and_resumed(workdir):
  """The command from a temporary working directory with relative paths: SIGKILLed
  during the control run of seed 0 (its run dies with it), rerun with only --out_dir and
  the budget flags (the stored config is adopted): the finished run is skipped, the
  partial one resumes, then the report; control params are bit-identical to the initial
  ones, the trained ones are not."""
  args = (*TINY, *BUDGET, "--out_dir=lc", "--steps=2", "--seeds=0,1")
  proc = subprocess.Popen(_cmd(*args), cwd=workdir, env=_env(), stderr=subprocess.PIPE, text=True)
  seen, child = [], None
  deadline = time.monotonic() + 900
  for line in proc.stderr:
    seen.append(line)
    if "control/seed-0: started (pid" in line:
      child = int(line.split("(pid ")[1].split(")")[0])
    if "control/seed-0 | " in line and "step 2: proposing" in line:  # step 1 saved
      proc.send_signal(signal.SIGKILL)
      break
    assert time.monotonic() < deadline, "".join(seen)[-3000:]
  proc.wait(timeout=60)
  assert proc.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
  for _ in range(100):  # the run dies with the check (PR_SET_PDEATHSIG)
    if not _alive(child):
      break
    time.sleep(0.1)
  assert not _alive(child)
  # A rerun that changes the method is refused before anything runs.
  conflict = subprocess.run(
      _cmd("--out_dir=lc", "--batch_size=3", *BUDGET),
      cwd=workdir,
      env=_env(),
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert "--batch_size: stored=2, command line=3" in _error_line(conflict)
  # Rerun to the end.
  done = subprocess.run(
      _cmd("--out_dir=lc", *BUDGET),
      cwd=workdir,
      env=_env(),
      capture_output=True,
      text=True,
      timeout=900,
  )
  assert done.returncode == 0, done.stderr[-5000:]
  out = done.stderr
  assert "run 1/4 trained/seed-0: complete (checkpoint step 2), skipped" in out
  assert "run 2/4 control/seed-0: started" in out and "resuming from step 1" in out
  assert "ETA" in out and "groups passing:" in out

  lc = workdir / "lc"
  report = json.loads((lc / "report.json").read_text())
  assert report["complete"] is True and report["steps"] == 2
  assert report["seeds"] == {"trained": [0, 1], "control": [0, 1]}
  assert set(report["groups"]) == {"deduction/propose", "deduction/solve"}
  assert report["first_step_identical"] == {"0": True, "1": True}
  assert report["verdict"] in ("pass", "fail")
  assert (lc / "report.png").stat().st_size > 10_000
  for arm in lr.ARMS:
    for seed in (0, 1):
      lines = (lc / arm / f"seed-{seed}" / "metrics.jsonl").read_text().splitlines()
      assert [json.loads(l)["step"] for l in lines] == [0, 1, 2]  # each step once
  _check_params(lc)


def _check_params(lc: Path) -> None:
  """Saved configs of a seed's arms differ only in the learning rate; the control's
  params equal the initial ones bit for bit, the trained arm's moved."""
  from absolute_zero.checkpointing import RunCheckpointer
  from absolute_zero.policy_loading import load_policy, load_run_checkpoint
  import jax

  for seed in (0, 1):
    saved = {}
    for arm in lr.ARMS:
      with RunCheckpointer(
          lc / arm / f"seed-{seed}" / "checkpoints", read_only=True, async_save=False
      ) as c:
        saved[arm] = c.saved_config(2)
    t, c = saved["trained"], saved["control"]
    assert t["learner"].pop("learning_rate") == 1e-3 and c["learner"].pop("learning_rate") == 0.0
    assert t["flags"].pop("learning_rate") == 1e-3 and c["flags"].pop("learning_rate") == 0.0
    assert t == c
    assert c["flags"]["seed"] == seed and c["learner"]["weight_decay"] == 0.1
    _, initial, _ = load_policy(
        "tiny-llama", str(lc.parent / "tok" / "tokenizer.json"), random_init=True, seed=seed
    )
    initial = [np.asarray(x).tobytes() for x in jax.tree.leaves(initial)]
    for arm in lr.ARMS:
      _, params, _ = load_run_checkpoint(lc / arm / f"seed-{seed}" / "checkpoints")
      final = [np.asarray(x).tobytes() for x in jax.tree.leaves(params)]
      assert len(final) == len(initial)
      if arm == "control":
        assert final == initial
      else:  # weight decay at lr 1e-3 moves every leaf
        assert all(a != b for a, b in zip(final, initial))
