"""Draws a run's curves from its metrics.jsonl into PNG files (matplotlib, Agg backend).

  python -m experiments.plot_run --run_dir=runs/azr-default [--out=FILE.png] [--per_group]

The subplots are those of `absolute_zero.metrics_plot.plot_run` (one per metric, grouped
by the names in absolute_zero/selfplay/metric_names.py). The default output is
<run_dir>/plot.png (metrics.PLOT_FILE, the file experiments/azr.py writes); `--per_group`
also writes one PNG per subplot beside it. Paths are relative to the working directory, with `~` expanded. Bad input (a missing run
directory, no metrics.jsonl, nothing to plot) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import os

from absl import flags
from absl import logging as absl_logging

from absolute_zero.metrics import METRICS_FILE, PLOT_FILE, read_metrics
from absolute_zero.metrics_plot import group_series, metrics_path, plot_run
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "run_dir",
    None,
    "Run directory holding metrics.jsonl (the --log_dir), " "or the metrics.jsonl file itself.",
)
flags.DEFINE_string("out", None, f"Output PNG (default: <run_dir>/{PLOT_FILE}).")
flags.DEFINE_bool("per_group", False, "Also write one PNG per subplot next to --out.")
flags.DEFINE_integer("columns", 3, "Subplots per row.")

PROG = "plot_run"


def main(argv):
  del argv  # cli.run refuses positional arguments
  if not FLAGS["verbosity"].present:  # matplotlib logs its font-cache build at INFO
    absl_logging.set_verbosity(absl_logging.WARNING)
  cli.check(
      FLAGS.run_dir is not None,
      "--run_dir is required: the run directory (azr's " "--log_dir) that holds metrics.jsonl",
  )
  cli.at_least("columns", 1)
  run_dir = cli.path_flag("run_dir", must_exist=True)
  cli.check(
      not (os.path.isfile(run_dir) and not run_dir.endswith(".jsonl")),
      f"--run_dir={FLAGS.run_dir}: {run_dir} is a file; give the run directory",
  )
  metrics = metrics_path(run_dir)
  cli.check(
      os.path.isfile(metrics),
      f"--run_dir={FLAGS.run_dir}: no {METRICS_FILE} in "
      f"{run_dir}; give the directory a run wrote (azr's --log_dir)",
  )
  out = cli.path_flag("out", kind="file") or os.path.join(os.path.dirname(metrics), PLOT_FILE)
  cli.ensure_writable_file(out, "--out", FLAGS.out)
  try:  # before matplotlib loads
    empty = not group_series(read_metrics(metrics))
  except ValueError as e:
    raise cli.InputError(f"--run_dir={FLAGS.run_dir}: {e}") from None
  cli.check(
      not empty,
      f"--run_dir={FLAGS.run_dir}: {metrics} holds no numeric metrics to "
      "plot (did the run finish a step?)",
  )
  try:
    written = plot_run(run_dir, out, per_group=FLAGS.per_group, columns=FLAGS.columns)
  except (FileNotFoundError, ValueError) as e:
    raise cli.InputError(f"--run_dir={FLAGS.run_dir}: {e}") from None
  for path in written:
    print(path)


if __name__ == "__main__":
  cli.run(main, PROG)
