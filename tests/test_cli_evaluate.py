"""experiments.evaluate and experiments.plot_run as a user types them.

Each command runs as a subprocess from a temporary working directory with relative paths
(and `~` against a temporary HOME): every bad input must give exit status 2 and exactly
one stderr line that names the flag and the file, with no traceback, before any model
loads where the input allows. One evaluation of a tiny self-play run's checkpoint by its
relative run directory (through a symbolic link), with no data flag, must succeed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _env(home: Path) -> dict:
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "AZR_DATA_DIR")}
  env.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", HOME=str(home))
  return env


def _run(module: str, *args: str, cwd: Path, timeout: float = 300):
  return subprocess.run(
      [sys.executable, "-m", f"experiments.{module}", *args],
      capture_output=True,
      text=True,
      cwd=cwd,
      env=_env(cwd / "home"),
      timeout=timeout,
  )


def _error_line(proc, prog: str) -> str:
  """The one stderr line of a bad-input exit; fails on anything else."""
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1, proc.stderr[-3000:]
  assert lines[0].startswith(f"{prog}: error: "), lines[0]
  return lines[0]


def _truncate_files(directory: Path, match) -> None:
  for path in directory.rglob("*"):
    if path.is_file() and match(path):
      os.truncate(path, path.stat().st_size // 2)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
  """A working directory holding a tiny run (run/checkpoints/2) and broken look-alikes."""
  import jax

  from absolute_zero import learner, sharding
  from absolute_zero.checkpointing import RunCheckpointer, to_jsonable
  from absolute_zero.models import get_config, init_params
  from tests.selfplay import teaching

  pytest.importorskip("tokenizers")
  root = tmp_path_factory.mktemp("cwd")
  (root / "home").mkdir()
  tokenizer = root / "tokenizer.json"
  teaching.train_bpe(
      ["def f(x):\n    return x + 1\n", "What is 2 + 3? The answer is 5."] * 5,
      tokenizer,
      vocab_size=300,
  )
  config = get_config("tiny-llama").replace(vocab_size=320, rope_scaling=None, max_position=8192)
  learner_config = learner.LearnerConfig(learning_rate=1e-3)
  state = learner.init_train_state(
      init_params(config, jax.random.key(0)), learner_config, sharding.single_device_mesh(), config
  )
  saved = to_jsonable(
      {
          "model": dataclasses.asdict(config),
          "learner": dataclasses.asdict(learner_config),
          "model_source": str(tokenizer),
      }
  )
  with RunCheckpointer(root / "run" / "checkpoints", async_save=False) as ckpt:
    ckpt.save(2, state, jax.random.key(0), {}, saved, {})
  os.symlink("run", root / "link")

  (root / "empty").mkdir()
  (root / "torn" / "1.orbax-checkpoint-tmp-1764490000").mkdir(parents=True)
  (root / "foreign").mkdir()
  (root / "foreign" / "notes.txt").write_text("not a model")
  (root / "emptyrun" / "checkpoints").mkdir(parents=True)
  (root / "hf_fields").mkdir()
  (root / "hf_fields" / "config.json").write_text(
      json.dumps({"model_type": "llama", "hidden_size": 64, "vocab_size": 320})
  )
  (root / "hf_json").mkdir()
  (root / "hf_json" / "config.json").write_text('{"model_type": "llama", "hidden_')
  for name, match in (
      ("trunc_data", lambda p: p.parent.name == "d"),
      ("trunc_config", lambda p: p.parent.name == "config"),
  ):
    shutil.copytree(root / "run", root / name)
    _truncate_files(root / name, match)
  (root / "blocker").write_text("a file where a directory is needed")
  (root / "nodata").mkdir()
  return root


# (arguments, what the error line must contain besides the flag)
BAD_EVALUATE = {
    "missing_path": (
        ["--model=nope/model"],
        ["--model=nope/model", "no such file or directory", "{root}/nope/model"],
    ),
    "missing_gguf": (["--model=absent.gguf"], ["no such file or directory", "{root}/absent.gguf"]),
    "missing_home": (
        ["--model=~/absent"],
        ["--model=~/absent", "no such file or directory", "{root}/home/absent"],
    ),
    "unknown_name": (["--model=qwen-9000"], ["cannot interpret model source 'qwen-9000'"]),
    "preset_without_weights": (["--model=qwen2.5-7b"], ["preset without weights"]),
    "empty_dir": (["--model=empty"], ["{root}/empty", "the directory is empty"]),
    "torn_save_only": (
        ["--model=torn"],
        ["{root}/torn", "unfinished saves", "1.orbax-checkpoint-tmp-1764490000"],
    ),
    "foreign_dir": (["--model=foreign"], ["{root}/foreign", "notes.txt"]),
    "run_dir_without_checkpoint": (
        ["--model=emptyrun"],
        ["{root}/emptyrun/checkpoints", "the directory is empty"],
    ),
    "hf_missing_fields": (
        ["--model=hf_fields"],
        [
            "{root}/hf_fields/config.json",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
        ],
    ),
    "hf_corrupt_config": (["--model=hf_json"], ["{root}/hf_json/config.json", "not valid JSON"]),
    "truncated_arrays": (
        ["--model=trunc_data", "--benchmarks=gsm8k", "--limit=1"],
        ["{root}/trunc_data/checkpoints/2", "cannot be read"],
    ),
    "truncated_config": (
        ["--model=trunc_config"],
        ["{root}/trunc_config/checkpoints/2", "cannot be read"],
    ),
    "missing_tokenizer": (
        ["--model=run", "--tokenizer=tok/absent.json"],
        ["--tokenizer=tok/absent.json", "{root}/tok/absent.json"],
    ),
    "n_samples_0": (["--n_samples=0"], ["--n_samples=0", ">= 1"]),
    "limit_negative": (["--limit=-1"], ["--limit=-1", ">= 1"]),
    "limit_0": (["--limit=0"], ["--limit=0", ">= 1"]),
    "ks_above_n": (["--ks=1,5"], ["--ks", "--n_samples=1", "[5]"]),
    "ks_not_int": (["--ks=one"], ["--ks", "'one'"]),
    "top_p_0": (["--top_p=0"], ["--top_p=0"]),
    "unknown_benchmark": (["--benchmarks=gsm8k,mbpp"], ["--benchmarks", "'mbpp'", "cruxeval_o"]),
    "stray_positional": (["--model=run", "gsm8k"], ["unexpected positional", "'gsm8k'"]),
    "unknown_flag": (["--steps=3"], ["steps"]),
    "bad_dtype": (["--dtype=float16"], ["dtype", "float16"]),
    "output_under_a_file": (
        ["--output=blocker/report.json"],
        ["--output=blocker/report.json", "{root}/blocker"],
    ),
    "output_is_a_dir": (["--output=empty"], ["--output=empty", "{root}/empty", "directory"]),
    "missing_data_dir": (
        ["--data_dir=absent_data"],
        ["--data_dir=absent_data", "{root}/absent_data"],
    ),
    "data_dir_without_files": (
        ["--data_dir=nodata", "--benchmarks=gsm8k"],
        ["{root}/nodata/math/gsm8k/test.jsonl"],
    ),
    "mesh_too_big": (["--mesh=2,2,2"], ["--mesh=2,2,2", "needs 8 devices"]),
}


@pytest.mark.parametrize("case", sorted(BAD_EVALUATE))
def test_evaluate_bad_input(workdir, case):
  args, expected = BAD_EVALUATE[case]
  line = _error_line(_run("evaluate", *args, cwd=workdir), "evaluate")
  for text in expected:
    assert text.format(root=workdir) in line, (text, line)


def test_evaluate_gs_path_without_gcsfs(workdir):
  if importlib.util.find_spec("gcsfs") is not None:
    pytest.skip("gcsfs is installed")
  line = _error_line(_run("evaluate", "--model=gs://bucket/run", cwd=workdir), "evaluate")
  assert "--model=gs://bucket/run" in line and "gcsfs" in line


def test_bad_input_fails_before_the_model_loads(workdir):
  """A bad flag after a valid, loadable model: refused in the time of an import."""
  proc = _run("evaluate", "--model=run", "--n_samples=0", cwd=workdir)
  _error_line(proc, "evaluate")
  assert "loaded" not in proc.stdout


def test_evaluate_a_run_directory_by_relative_link_with_packaged_data(workdir):
  """--model=<run dir> (azr's --log_dir) through a symlink, no data flag, ~ in --output."""
  proc = _run(
      "evaluate",
      "--model=link",
      "--benchmarks=gsm8k",
      "--limit=1",
      "--max_new_tokens=2",
      "--batch_size=1",
      "--output=~/reports/r.json",
      cwd=workdir,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  report = json.loads((workdir / "home" / "reports" / "r.json").read_text())
  # The link is kept as typed (made absolute), not resolved to run/.
  assert report["model"]["source"] == str(workdir / "link" / "checkpoints")
  assert report["model"]["kind"] == "run"
  assert report["benchmarks"]["gsm8k"]["n"] == 1
  from absolute_zero.evaluation.data import PACKAGED_DATA_DIR

  assert report["config"]["data_dir"] == PACKAGED_DATA_DIR


# ------------------------------------------------------------------ plot_run


@pytest.fixture(scope="module")
def plot_dirs(workdir) -> Path:
  from absolute_zero.metrics import MetricsWriter

  with MetricsWriter(workdir / "plotted", tensorboard=False) as writer:
    for step in (1, 2, 3):
      writer.write(step, {"deduction/solve/reward_mean": 0.1 * step, "learner/loss": 1.0})
  (workdir / "no_metrics").mkdir()
  (workdir / "empty_metrics").mkdir()
  (workdir / "empty_metrics" / "metrics.jsonl").write_text("")
  os.symlink("plotted", workdir / "plot_link")
  return workdir


BAD_PLOT = {
    "no_run_dir": ([], ["--run_dir is required"]),
    "missing_dir": (
        ["--run_dir=absent_run"],
        ["--run_dir=absent_run", "{root}/absent_run", "no such file or directory"],
    ),
    "dir_without_metrics": (
        ["--run_dir=no_metrics"],
        ["--run_dir=no_metrics", "no metrics.jsonl in {root}/no_metrics"],
    ),
    "empty_metrics": (
        ["--run_dir=empty_metrics"],
        ["{root}/empty_metrics/metrics.jsonl", "no numeric metrics"],
    ),
    "stray_positional": (["--run_dir=plotted", "extra"], ["unexpected positional", "'extra'"]),
    "out_under_a_file": (
        ["--run_dir=plotted", "--out=blocker/p.png"],
        ["--out=blocker/p.png", "{root}/blocker"],
    ),
    "columns_0": (["--run_dir=plotted", "--columns=0"], ["--columns=0"]),
}


@pytest.mark.parametrize("case", sorted(BAD_PLOT))
def test_plot_run_bad_input(plot_dirs, case):
  args, expected = BAD_PLOT[case]
  line = _error_line(_run("plot_run", *args, cwd=plot_dirs), "plot_run")
  for text in expected:
    assert text.format(root=plot_dirs) in line, (text, line)


def test_plot_run_default_file_and_relative_paths(plot_dirs):
  from absolute_zero.metrics import PLOT_FILE

  proc = _run("plot_run", "--run_dir=plot_link", cwd=plot_dirs)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.split() == [str(plot_dirs / "plot_link" / PLOT_FILE)]
  assert PLOT_FILE == "plot.png"  # the name azr.py, README and launch/ use
  assert (plot_dirs / "plotted" / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  proc = _run("plot_run", "--run_dir=plotted", "--out=~/figs/p.png", cwd=plot_dirs)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (plot_dirs / "home" / "figs" / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
