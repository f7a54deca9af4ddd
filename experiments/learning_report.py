"""The learning check's pure parts: its plan of runs, its ETA, its report and plot.

No flags and no model here (experiments/learning_check.py is the command line), so all of
it is testable in-process:
  * `plan_runs` -> the (arm, seed) runs and their experiments.azr arguments: both arms of
    a seed share every argument but --learning_rate (control: 0) and the run directory;
  * `eta_seconds` -> the time left from measured step and set-up times;
  * `build_report` -> a JSON-able dict from the runs' metric records
    (`absolute_zero/metrics.py` format, one list per (arm, seed), as read from each run's
    metrics.jsonl); `summary_lines` -> console lines; `plot_report` -> a PNG drawn from
    the report dict alone (so it can be redrawn from report.json).

The verdict (issue 17's "Done when"): for each group, take every run's mean reward over
the last third of the steps (`last_third`); the arm's value is the mean over its seeds,
the seed-to-seed spread is the largest range (max - min over seeds) of those per-seed
means in either arm. A group passes when trained - control > spread (needs >= 2 seeds in
each arm; with fewer the group is undetermined). The check passes when at least
`REQUIRED_GROUPS` groups pass.
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping, NamedTuple, Sequence

from absolute_zero.selfplay import metric_names as mn

TRAINED, CONTROL = "trained", "control"
ARMS = (TRAINED, CONTROL)
REQUIRED_GROUPS = 2  # groups that must pass (issue 17)
TASK_ORDER = ("deduction", "abduction", "induction")
ROLE_ORDER = ("propose", "solve")
# Per role: the curves reported and drawn (the first is the one the verdict uses).
METRICS = {
    "propose": (mn.REWARD_MEAN, mn.FORMAT_FAILURE_RATE, mn.VALIDITY_RATE, mn.SOLVE_RATE_OF_VALID),
    "solve": (mn.REWARD_MEAN, mn.FORMAT_FAILURE_RATE, mn.SOLVE_RATE),
}
VERDICT_METRIC = mn.REWARD_MEAN
# Step-1 rollouts are sampled before any update, so they are equal in both arms of a seed.
FIRST_STEP_METRICS = (
    mn.COUNT,
    mn.REWARD_MEAN,
    mn.FORMAT_FAILURE_RATE,
    mn.RESPONSE_TOKENS_MEAN,
    mn.VALIDITY_RATE,
    mn.SOLVE_RATE,
)

Runs = Mapping[str, Mapping[int, Sequence[Mapping[str, Any]]]]  # {arm: {seed: records}}
# experiments.azr flags the plan sets for each run (common arguments must not).
PLAN_FLAGS = (
    "seed",
    "learning_rate",
    "log_dir",
    "checkpoint_dir",
    "resume",
    "override_saved_config",
)


# ------------------------------------------------------------------ the plan


class Run(NamedTuple):
  arm: str
  seed: int
  run_dir: str
  args: tuple[str, ...]  # experiments.azr's command-line arguments

  @property
  def name(self) -> str:
    return f"{self.arm}/seed-{self.seed}"


def run_dir(out_dir: str, arm: str, seed: int) -> str:
  """The azr run directory of one (arm, seed): <out_dir>/<arm>/seed-<seed>."""
  return os.path.join(out_dir, arm, f"seed-{seed}")


def plan_runs(
    out_dir: str, seeds: Sequence[int], learning_rate: float, common_args: Sequence[str]
) -> list[Run]:
  """Every (arm, seed) run in order (per seed: trained, then control).

  Both arms of a seed get `common_args` plus the same --seed; they differ only in
  --learning_rate (`learning_rate` vs 0) and their run directory (--log_dir).

  Raises:
    ValueError: learning_rate <= 0, no seeds, a repeated seed, or `common_args` setting a
      flag the plan sets (PLAN_FLAGS).
  """
  if not learning_rate > 0:
    raise ValueError(f"the trained arm's learning rate must be > 0, got {learning_rate}")
  if not seeds or len(set(seeds)) != len(seeds):
    raise ValueError(f"seeds must be distinct and at least one, got {list(seeds)}")
  for arg in common_args:
    name = arg.lstrip("-").split("=")[0]
    if name in PLAN_FLAGS:
      raise ValueError(f"common arguments must not set --{name}")
  runs = []
  for seed in seeds:
    for arm, lr in ((TRAINED, learning_rate), (CONTROL, 0.0)):
      directory = run_dir(out_dir, arm, seed)
      runs.append(
          Run(
              arm,
              seed,
              directory,
              (*common_args, f"--seed={seed}", f"--learning_rate={lr!r}", f"--log_dir={directory}"),
          )
      )
  return runs


def eta_seconds(
    remaining: Sequence[tuple[str, int, bool]],
    step_seconds: Mapping[str, float],
    startup_seconds: float,
) -> float | None:
  """Seconds left: `remaining` holds (arm, steps still to run, started?) per unfinished
  run; an arm without a measured step time borrows the slowest measured arm's (None if
  none is measured); each run not yet started also pays `startup_seconds` (model load,
  compilation)."""
  total = 0.0
  for arm, steps, started in remaining:
    per_step = step_seconds.get(arm)
    if per_step is None:
      if not step_seconds:
        return None
      per_step = max(step_seconds.values())
    total += steps * per_step + (0.0 if started else startup_seconds)
  return total


# ------------------------------------------------------------------ the report


def last_third(steps: int) -> tuple[int, int]:
  """(first, last) step of the last third of steps 1..`steps`, inclusive: the last
  ceil(steps / 3) steps (at least one). Raises ValueError if steps < 1."""
  if steps < 1:
    raise ValueError(f"steps must be >= 1, got {steps}")
  return steps - math.ceil(steps / 3) + 1, steps


def _number(value: Any) -> float | None:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return None
  return float(value) if math.isfinite(value) else None


def series(records: Sequence[Mapping[str, Any]], key: str, steps: int) -> dict[int, float]:
  """{step: value} of metric `key` for steps 1..`steps` (finite numbers only; step 0 is
  the seeding, later steps beyond `steps` belong to a longer run)."""
  out = {}
  for record in records:
    step, value = record.get("step"), _number(record.get(key))
    if isinstance(step, int) and 1 <= step <= steps and value is not None:
      out[step] = value
  return out


def groups_of(runs: Runs) -> list[str]:
  """'{task}/{role}' groups with a reward in any record, in task then role order."""
  found = set()
  for by_seed in runs.values():
    for records in by_seed.values():
      for record in records:
        for key in record:
          parts = key.split("/")
          if len(parts) == 3 and parts[2] == VERDICT_METRIC and parts[1] in ROLE_ORDER:
            found.add((parts[0], parts[1]))

  def rank(group):
    task, role = group
    return (
        TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER),
        task,
        ROLE_ORDER.index(role),
    )

  return [f"{t}/{r}" for t, r in sorted(found, key=rank)]


def _mean(values: Sequence[float]) -> float | None:
  return sum(values) / len(values) if values else None


def _std(values: Sequence[float]) -> float | None:
  """Sample standard deviation (n - 1), None below two values."""
  if len(values) < 2:
    return None
  m = sum(values) / len(values)
  return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def per_step(
    by_seed: Mapping[int, Sequence[Mapping[str, Any]]], key: str, steps: int
) -> dict[str, list]:
  """One arm's curve of `key` over its seeds: steps with a value in any seed, and per step
  the mean, min, max, sample std (None below 2 seeds) and the number of seeds."""
  per_seed = [series(records, key, steps) for records in by_seed.values()]
  xs = sorted(set().union(*per_seed)) if per_seed else []
  out: dict[str, list] = {"steps": xs, "mean": [], "min": [], "max": [], "std": [], "n": []}
  for x in xs:
    values = [s[x] for s in per_seed if x in s]
    out["mean"].append(_mean(values))
    out["min"].append(min(values))
    out["max"].append(max(values))
    out["std"].append(_std(values))
    out["n"].append(len(values))
  return out


def window_means(
    by_seed: Mapping[int, Sequence[Mapping[str, Any]]],
    key: str,
    window: tuple[int, int],
    steps: int,
) -> dict[int, float]:
  """{seed: mean of `key` over the steps of `window` it has} (seeds with none left out)."""
  out = {}
  for seed, records in by_seed.items():
    values = [v for s, v in series(records, key, steps).items() if window[0] <= s <= window[1]]
    if values:
      out[seed] = sum(values) / len(values)
  return out


def compare(trained: Mapping[int, float], control: Mapping[int, float]) -> dict[str, Any]:
  """Trained vs control from per-seed window means.

  Returns the arms' means over seeds, their ranges and sample stds, the spread (the larger
  range; None unless both arms have >= 2 seeds), the difference trained - control, the
  paired per-seed differences, and `passes` = difference > spread (None if either is
  None).
  """
  t, c = list(trained.values()), list(control.values())
  t_mean, c_mean = _mean(t), _mean(c)
  t_range = max(t) - min(t) if len(t) >= 2 else None
  c_range = max(c) - min(c) if len(c) >= 2 else None
  spread = None if t_range is None or c_range is None else max(t_range, c_range)
  diff = None if t_mean is None or c_mean is None else t_mean - c_mean
  return {
      "trained_mean": t_mean,
      "control_mean": c_mean,
      "difference": diff,
      "trained_range": t_range,
      "control_range": c_range,
      "spread": spread,
      "trained_std": _std(t),
      "control_std": _std(c),
      "trained_per_seed": {str(k): v for k, v in sorted(trained.items())},
      "control_per_seed": {str(k): v for k, v in sorted(control.items())},
      "paired_differences": {
          str(s): trained[s] - control[s] for s in sorted(set(trained) & set(control))
      },
      "passes": None if diff is None or spread is None else diff > spread,
  }


def signal_share(
    by_seed: Mapping[int, Sequence[Mapping[str, Any]]], key: str, steps: int
) -> float | None:
  """Share of an arm's (seed, step) pairs whose group advantages were not all zero
  (`key`: the group's advantage_std > 0), i.e. steps the update had a signal in that
  group (None: no values)."""
  values = [v for records in by_seed.values() for v in series(records, key, steps).values()]
  return sum(v > 0 for v in values) / len(values) if values else None


def first_step_identical(runs: Runs, groups: Sequence[str]) -> dict[str, bool | None]:
  """Per seed in both arms: whether step 1's group metrics (FIRST_STEP_METRICS) are equal
  in the two arms, as identical seeds before any update must make them (None: a run has
  no step 1)."""
  out = {}
  for seed in sorted(set(runs.get(TRAINED, {})) & set(runs.get(CONTROL, {}))):
    firsts = []
    for arm in ARMS:
      first = [r for r in runs[arm][seed] if r.get("step") == 1]
      firsts.append(first[-1] if first else None)
    if None in firsts:
      out[str(seed)] = None
      continue
    keys = [f"{g}/{m}" for g in groups for m in FIRST_STEP_METRICS]
    out[str(seed)] = all(firsts[0].get(k) == firsts[1].get(k) for k in keys)
  return out


def build_report(runs: Runs, steps: int, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """The check's report from every run's metric records.

  Args:
    runs: {arm: {seed: metric records}} for arms 'trained' and 'control' (records as in
      metrics.jsonl: 'step' plus flat '{task}/{role}/{metric}' keys; missing runs or steps
      are allowed: a partial report).
    steps: the steps each run is to reach (the window is the last third of 1..steps;
      records beyond it are ignored).
    config: stored as is under 'config' (the flags the runs were given).

  Returns:
    {'config', 'steps', 'window': [first, last], 'seeds': {arm: [...]},
     'runs': {arm: {seed: last step logged}}, 'complete': every run reached `steps`,
     'first_step_identical': {seed: bool | None},
     'groups': {group: {'curves': {metric: {arm: per_step(...)}},
                        'last_third': {metric: compare(...)}, 'passes': bool | None,
                        'signal_share': {arm: signal_share(...)}}},
     'passing_groups': [...], 'required_groups', 'verdict': 'pass' | 'fail' |
     'undetermined'}.

  Raises:
    ValueError: steps < 1 or an arm other than 'trained'/'control'.
  """
  unknown = set(runs) - set(ARMS)
  if unknown:
    raise ValueError(f"unknown arms {sorted(unknown)}; expected {ARMS}")
  window = last_third(steps)
  runs = {arm: runs.get(arm, {}) for arm in ARMS}
  groups = groups_of(runs)
  last = {
      arm: {
          str(seed): max(
              [r["step"] for r in records if isinstance(r.get("step"), int) and r["step"] <= steps],
              default=None,
          )
          for seed, records in sorted(by_seed.items())
      }
      for arm, by_seed in runs.items()
  }
  report: dict[str, Any] = {
      "config": dict(config or {}),
      "steps": steps,
      "window": list(window),
      "seeds": {arm: sorted(by_seed) for arm, by_seed in runs.items()},
      "runs": last,
      "complete": all(v == steps for by_seed in last.values() for v in by_seed.values())
      and all(runs[arm] for arm in ARMS),
      "first_step_identical": first_step_identical(runs, groups),
      "groups": {},
  }
  for group in groups:
    role = group.split("/")[1]
    entry: dict[str, Any] = {"curves": {}, "last_third": {}}
    for metric in METRICS[role]:
      key = f"{group}/{metric}"
      entry["curves"][metric] = {arm: per_step(runs[arm], key, steps) for arm in ARMS}
      entry["last_third"][metric] = compare(
          *(window_means(runs[arm], key, window, steps) for arm in ARMS)
      )
    entry["passes"] = entry["last_third"][VERDICT_METRIC]["passes"]
    entry["signal_share"] = {
        arm: signal_share(runs[arm], f"{group}/{mn.ADVANTAGE_STD}", steps) for arm in ARMS
    }
    report["groups"][group] = entry
  passing = [g for g, e in report["groups"].items() if e["passes"]]
  undetermined = [g for g, e in report["groups"].items() if e["passes"] is None]
  report["passing_groups"] = passing
  report["required_groups"] = REQUIRED_GROUPS
  if len(passing) >= REQUIRED_GROUPS:
    verdict = "pass"
  elif len(passing) + len(undetermined) >= REQUIRED_GROUPS:
    verdict = "undetermined"
  else:
    verdict = "fail"
  report["verdict"] = verdict
  return report


def _fmt(value: float | None, signed: bool = False) -> str:
  if value is None:
    return "  n/a "
  return f"{value:+.3f}" if signed else f"{value:.3f}"


def summary_lines(report: Mapping[str, Any]) -> list[str]:
  """Console lines: per group the last-third mean rewards, difference, spread, outcome."""
  first, last = report["window"]
  lines = [
      f"mean reward over steps {first}-{last} (last third of {report['steps']}); "
      "spread = largest seed-to-seed range in either arm"
  ]
  width = max([len(g) for g in report["groups"]] + [5])
  for group, entry in report["groups"].items():
    c = entry["last_third"][VERDICT_METRIC]
    outcome = {True: "PASS", False: "fail", None: "n/a (needs >= 2 seeds per arm)"}[entry["passes"]]
    share = entry.get("signal_share", {}).get(TRAINED)
    lines.append(
        f"  {group:<{width}}  trained {_fmt(c['trained_mean'])}  control "
        f"{_fmt(c['control_mean'])}  diff {_fmt(c['difference'], True)}  spread "
        f"{_fmt(c['spread'])}  {outcome}  (trained steps with nonzero advantages: "
        + ("n/a" if share is None else f"{share:.0%}")
        + ")"
    )
  lines.append(
      f"groups passing: {len(report['passing_groups'])} of {len(report['groups'])}"
      f" (needed {report['required_groups']}): {report['verdict']}"
      + ("" if report["complete"] else " (partial: not every run is complete)")
  )
  same = report["first_step_identical"]
  if any(v is False for v in same.values()):
    lines.append(
        "warning: step 1 differs between the arms for seeds "
        f"{[s for s, v in same.items() if v is False]} (identical seeds should "
        "sample identical first steps)"
    )
  return lines


def plot_report(report: Mapping[str, Any], out: str) -> str:
  """Draws one row per group, one column per metric: both arms' mean over seeds with the
  min-max band, the last-third window shaded. Returns `out`.

  Raises:
    ValueError: the report has no groups (no run logged a step).
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.ticker import MaxNLocator

  groups = list(report["groups"])
  if not groups:
    raise ValueError("the report has no groups to plot (no run has logged a step)")
  columns = max(len(v) for v in METRICS.values())
  fig, axes = plt.subplots(
      len(groups), columns, figsize=(4.2 * columns, 2.9 * len(groups)), squeeze=False
  )
  styles = {
      TRAINED: dict(color="tab:blue", marker="."),
      CONTROL: dict(color="tab:orange", marker="x", linestyle="--"),
  }
  first, last = report["window"]
  for row, group in zip(axes, groups):
    entry = report["groups"][group]
    metrics = list(entry["curves"])
    for ax, metric in zip(row, metrics):
      for arm in ARMS:
        curve = entry["curves"][metric][arm]
        if not curve["steps"]:
          continue
        ax.plot(
            curve["steps"], curve["mean"], label=f"{arm} (mean of {max(curve['n'])})", **styles[arm]
        )
        ax.fill_between(
            curve["steps"],
            curve["min"],
            curve["max"],
            color=styles[arm]["color"],
            alpha=0.2,
            linewidth=0,
        )
      ax.axvspan(first - 0.5, last + 0.5, color="0.9", zorder=0)
      ax.set_xlim(0.5, report["steps"] + 0.5)
      if report["steps"] <= 10:
        ax.set_xticks(range(1, report["steps"] + 1))
      else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
      if metric != VERDICT_METRIC:  # rates
        ax.set_ylim(-0.05, 1.05)
      title = f"{group}: {mn.TITLES.get(metric, metric)}"
      if metric == VERDICT_METRIC:
        c = entry["last_third"][metric]
        title += (
            f"\ndiff {_fmt(c['difference'], True).strip()} vs spread "
            f"{_fmt(c['spread']).strip()}: "
            + {True: "PASS", False: "fail", None: "undetermined"}[entry["passes"]]
        )
      ax.set_title(title, fontsize=9)
      ax.set_xlabel("step", fontsize=8)
      ax.tick_params(labelsize=7)
      ax.grid(alpha=0.3)
      if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, loc="best")
      else:
        ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center", fontsize=8)
    for ax in row[len(metrics) :]:
      ax.set_visible(False)
  fig.suptitle(
      f"learning check: {len(report['passing_groups'])} of {len(groups)} groups "
      f"pass (needed {report['required_groups']}): {report['verdict']}; shaded: "
      f"steps {first}-{last}; bands: min-max over seeds",
      fontsize=11,
  )
  fig.tight_layout()
  fig.savefig(out, dpi=90)
  plt.close(fig)
  return out
