"""Draws a run's curves from its metrics.jsonl into PNG files (matplotlib, Agg backend).

  python -m experiments.plot_run --run_dir=runs/azr-default [--out=FILE.png] [--per_group]

One subplot per metric: `{task}/{role}/{metric}` keys are grouped by `{metric}` with one
line per (task, role) (mean reward, validity rate, solve rate, format-failure rate,
advantage stats, response lengths, ...); `buffer/...`, `time/...`, `throughput/...`,
`learner/...`, `seed/...` and `solver/...` keys each get one subplot per namespace;
`types/{task}/{side}/{type}` keys one subplot per (task, side) with a line per type. The
names, their order and titles come from absolute_zero/selfplay/metric_names.py, where the
run takes them from too. Whatever keys the log holds are drawn; null (non-finite) values
leave gaps. The default output is <run_dir>/plot.png (metrics.PLOT_FILE, the file
experiments/azr.py writes); `--per_group` also writes one PNG per subplot beside it.
Paths are relative to the working directory, with `~` expanded. Bad input (a missing run
directory, no metrics.jsonl, nothing to plot) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import math
import os
import re
from collections import defaultdict

from absl import flags
from absl import logging as absl_logging

from absolute_zero.metrics import METRICS_FILE, PLOT_FILE
from absolute_zero.selfplay import metric_names
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "Run directory holding metrics.jsonl (the --log_dir), "
                    "or the metrics.jsonl file itself.")
flags.DEFINE_string("out", None, f"Output PNG (default: <run_dir>/{PLOT_FILE}).")
flags.DEFINE_bool("per_group", False, "Also write one PNG per subplot next to --out.")
flags.DEFINE_integer("columns", 3, "Subplots per row.")

PROG = "plot_run"
# Namespaces plotted as one subplot each (lines: the rest of the key).
NAMESPACES = metric_names.NAMESPACES
# `{namespace}/.../{value}` keys: one subplot per key without its last part, one line per
# value (the value-type shares `types/{task}/{side}/{type}`).
DISTRIBUTIONS = metric_names.DISTRIBUTIONS
# Subplot order: these first (when present), the rest alphabetically.
PREFERRED_ORDER = metric_names.PLOT_ORDER
TITLES = metric_names.TITLES


def group_series(records: list[dict]) -> dict[str, dict[str, list[tuple[int, float]]]]:
  """{subplot: {line label: [(step, value), ...]}} from metrics records; numbers only."""
  groups: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
  for record in records:
    step = record.get("step")
    if not isinstance(step, int):
      continue
    for key, value in record.items():
      if key in ("step", "time", "nonfinite") or isinstance(value, (str, list, dict)):
        continue
      if isinstance(value, bool):
        value = float(value)
      y = math.nan if value is None else float(value)
      parts = key.split("/")
      if len(parts) > 2 and parts[0] in DISTRIBUTIONS:  # one subplot per distribution
        group, label = "/".join(parts[:-1]), parts[-1]
      elif len(parts) > 1 and parts[0] in NAMESPACES:
        group, label = parts[0], "/".join(parts[1:])
      elif len(parts) > 1:
        group, label = parts[-1], "/".join(parts[:-1])
      else:
        group, label = key, key
      groups[group][label].append((step, y))
  return {g: dict(lines) for g, lines in groups.items()}


def ordered_groups(groups) -> list[str]:
  rank = {name: i for i, name in enumerate(PREFERRED_ORDER)}
  return sorted(groups, key=lambda g: (rank.get(g, len(rank)), g))


def _draw(ax, title: str, lines: dict[str, list[tuple[int, float]]]) -> None:
  for label in sorted(lines):
    points = sorted(lines[label])
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="." if len(points) < 30
            else None, label=label)
  ax.set_title(TITLES.get(title, title.replace("_", " ")), fontsize=10)
  ax.set_xlabel("step", fontsize=8)
  ax.tick_params(labelsize=7)
  ax.grid(alpha=0.3)
  if len(lines) > 1 or next(iter(lines)) != title:
    ax.legend(fontsize=6, loc="best")


def metrics_path(run_dir: str) -> str:
  """The metrics file of `run_dir` (a run directory or a .jsonl file)."""
  return run_dir if run_dir.endswith(".jsonl") else os.path.join(run_dir, METRICS_FILE)


def plot_run(run_dir: str, out: str | None = None, *, per_group: bool = False,
             columns: int = 3) -> list[str]:
  """Writes the grid PNG (and per-group PNGs); returns the paths written.

  Raises:
    FileNotFoundError: no metrics file at `run_dir`.
    ValueError: the file holds no numeric metrics, or a line that is not JSON.
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from absolute_zero.metrics import read_metrics

  path = metrics_path(run_dir)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no metrics file at {path}")
  groups = group_series(read_metrics(path))
  if not groups:
    raise ValueError(f"{path} holds no numeric metrics to plot")
  names = ordered_groups(groups)
  out = out or os.path.join(os.path.dirname(path), PLOT_FILE)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)

  columns = max(1, min(columns, len(names)))
  rows = math.ceil(len(names) / columns)
  fig, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows), squeeze=False)
  for ax, name in zip(axes.flat, names):
    _draw(ax, name, groups[name])
  for ax in list(axes.flat)[len(names):]:
    ax.set_visible(False)
  fig.suptitle(os.path.basename(os.path.abspath(os.path.dirname(path))), fontsize=11)
  fig.tight_layout()
  fig.savefig(out, dpi=100)
  plt.close(fig)
  written = [out]

  if per_group:
    stem, ext = os.path.splitext(out)
    for name in names:
      fig, ax = plt.subplots(figsize=(6, 4))
      _draw(ax, name, groups[name])
      fig.tight_layout()
      group_path = f"{stem}_{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}{ext or '.png'}"
      fig.savefig(group_path, dpi=100)
      plt.close(fig)
      written.append(group_path)
  return written


def main(argv):
  del argv  # cli.run refuses positional arguments
  if not FLAGS["verbosity"].present:  # matplotlib logs its font-cache build at INFO
    absl_logging.set_verbosity(absl_logging.WARNING)
  cli.check(FLAGS.run_dir is not None, "--run_dir is required: the run directory (azr's "
            "--log_dir) that holds metrics.jsonl")
  cli.at_least("columns", 1)
  run_dir = cli.path_flag("run_dir", must_exist=True)
  cli.check(not (os.path.isfile(run_dir) and not run_dir.endswith(".jsonl")),
            f"--run_dir={FLAGS.run_dir}: {run_dir} is a file; give the run directory")
  metrics = metrics_path(run_dir)
  cli.check(os.path.isfile(metrics), f"--run_dir={FLAGS.run_dir}: no {METRICS_FILE} in "
            f"{run_dir}; give the directory a run wrote (azr's --log_dir)")
  out = cli.path_flag("out", kind="file") or os.path.join(os.path.dirname(metrics), PLOT_FILE)
  cli.ensure_writable_file(out, "--out", FLAGS.out)
  from absolute_zero.metrics import read_metrics
  try:  # before matplotlib loads
    empty = not group_series(read_metrics(metrics))
  except ValueError as e:
    raise cli.InputError(f"--run_dir={FLAGS.run_dir}: {e}") from None
  cli.check(not empty, f"--run_dir={FLAGS.run_dir}: {metrics} holds no numeric metrics to "
            "plot (did the run finish a step?)")
  try:
    written = plot_run(run_dir, out, per_group=FLAGS.per_group, columns=FLAGS.columns)
  except (FileNotFoundError, ValueError) as e:
    raise cli.InputError(f"--run_dir={FLAGS.run_dir}: {e}") from None
  for path in written:
    print(path)


if __name__ == "__main__":
  cli.run(main, PROG)
