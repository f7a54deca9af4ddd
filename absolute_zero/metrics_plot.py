"""A run's curves from its metrics.jsonl as PNG files (matplotlib, Agg backend).

One subplot per metric: `{task}/{role}/{metric}` keys are grouped by `{metric}` with one
line per (task, role) (mean reward, validity rate, solve rate, format-failure rate,
advantage stats, response lengths, ...); `buffer/...`, `time/...`, `throughput/...`,
`learner/...`, `seed/...` and `solver/...` keys each get one subplot per namespace;
`types/{task}/{side}/{type}` keys one subplot per (task, side) with a line per type. The
names, their order and titles come from absolute_zero/selfplay/metric_names.py, where the
run takes them from too. Whatever keys the log holds are drawn; null (non-finite) values
leave gaps. Used by experiments/azr.py (the run's plot.png) and experiments/plot_run.py.
"""

from __future__ import annotations

import math
import os
import re
from collections import defaultdict

from absolute_zero.metrics import METRICS_FILE, PLOT_FILE, read_metrics
from absolute_zero.selfplay import metric_names

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
    ax.plot(
        [p[0] for p in points],
        [p[1] for p in points],
        marker="." if len(points) < 30 else None,
        label=label,
    )
  ax.set_title(TITLES.get(title, title.replace("_", " ")), fontsize=10)
  ax.set_xlabel("step", fontsize=8)
  ax.tick_params(labelsize=7)
  ax.grid(alpha=0.3)
  if len(lines) > 1 or next(iter(lines)) != title:
    ax.legend(fontsize=6, loc="best")


def metrics_path(run_dir: str) -> str:
  """The metrics file of `run_dir` (a run directory or a .jsonl file)."""
  return run_dir if run_dir.endswith(".jsonl") else os.path.join(run_dir, METRICS_FILE)


def plot_run(
    run_dir: str, out: str | None = None, *, per_group: bool = False, columns: int = 3
) -> list[str]:
  """Writes the grid PNG (and per-group PNGs); returns the paths written.

  Raises:
    FileNotFoundError: no metrics file at `run_dir`.
    ValueError: the file holds no numeric metrics, or a line that is not JSON.
  """
  # matplotlib is imported on first plot: a heavy dependency the run needs only here.
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

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
  for ax in list(axes.flat)[len(names) :]:
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
