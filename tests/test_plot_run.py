"""plot_run draws the names a real self-play run writes.

A tiny random model runs the real `SelfPlayRun` (seeding and one step, with the sandbox)
and its metrics go through `MetricsWriter` into metrics.jsonl, as experiments/azr.py does.
Every key of that file must land in a subplot that plot_run orders and titles on purpose;
a metric renamed in the run (or a new namespace) that the plot does not know fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

from absolute_zero.selfplay import metric_names
from absolute_zero.tasks.types import Role, TaskType

# The per-(task, role) names the run writes, spelled out independently of metric_names.
RUN_GROUP_METRICS = {"count", "reward_mean", "format_failure_rate", "response_tokens_mean",
                     "validity_rate", "solve_rate_of_valid", "solve_rate", "advantage_mean",
                     "advantage_std"}


@pytest.fixture(scope="module")
def run_metrics(tmp_path_factory):
  """(run directory, records) of a tiny real run: seeding (step 0) and one step."""
  import jax

  from absolute_zero import learner
  from absolute_zero.metrics import MetricsWriter, read_metrics
  from absolute_zero.models import get_config, init_params
  from absolute_zero.sandbox import SandboxPool
  from absolute_zero.selfplay.config import SelfPlayConfig
  from absolute_zero.selfplay.run import SelfPlayRun
  from absolute_zero.tokenizers import from_tokenizer_json
  from tests.selfplay import teaching

  pytest.importorskip("tokenizers")
  root = tmp_path_factory.mktemp("plotrun")
  teaching.train_bpe(teaching.proposer_prompts(), root / "tokenizer.json", vocab_size=300)
  tok = from_tokenizer_json(root / "tokenizer.json")
  model_config = get_config("tiny-llama").replace(vocab_size=320, rope_scaling=None,
                                                  num_layers=1, max_position=8192)
  config = SelfPlayConfig(batch_size=2, n_solver_samples=1, num_references=1,
                          max_seed_rounds=0, max_prompt_tokens=8000, max_proposer_tokens=8,
                          max_solver_tokens=8)
  with SandboxPool(num_workers=2) as pool:
    run = SelfPlayRun(model_config, init_params(model_config, jax.random.key(0)), tok,
                      config, learner.LearnerConfig(learning_rate=1e-5), pool=pool)
    with MetricsWriter(root / "run", tensorboard=False) as writer:
      writer.write(0, run.seed_buffers())
      writer.write(1, run.run_step())
  return root / "run", read_metrics(root / "run")


def test_every_key_a_real_run_writes_has_a_planned_subplot(run_metrics):
  from experiments.plot_run import PREFERRED_ORDER, TITLES, group_series, ordered_groups

  _, records = run_metrics
  assert [r["step"] for r in records] == [0, 1]
  groups = group_series(records)
  unplanned = sorted(set(groups) - set(PREFERRED_ORDER))
  assert not unplanned, f"the run writes metrics plot_run does not know: {unplanned}"
  assert all(name in TITLES for name in groups)
  # The per-(task, role) curves the run wrote, one line per (task, role).
  written = {k.split("/")[-1] for k in records[1]
             if k.split("/")[0] in {t.value for t in TaskType}}
  assert written <= RUN_GROUP_METRICS
  assert written >= RUN_GROUP_METRICS - {"solve_rate_of_valid"}  # needs a valid proposal
  # One line per (task, role) that had rollouts: every proposer, solvers with buffer tasks.
  lines = set(groups["reward_mean"])
  assert {f"{t.value}/propose" for t in TaskType} <= lines
  assert lines <= {f"{t.value}/{r.value}" for t in TaskType for r in (Role.PROPOSE, Role.SOLVE)}
  order = ordered_groups(groups)
  assert order[:3] == ["reward_mean", "validity_rate", "solve_rate"]
  assert {"buffer", "time", "throughput", "learner", "seed"} <= set(order)


def test_plot_run_draws_the_run_with_the_default_name(run_metrics):
  from absolute_zero.metrics import PLOT_FILE
  from experiments.plot_run import plot_run

  run_dir, _ = run_metrics
  written = plot_run(str(run_dir), per_group=True)
  assert written[0] == str(run_dir / PLOT_FILE)
  names = {p.rsplit("/", 1)[1] for p in written[1:]}
  assert {"plot_reward_mean.png", "plot_solve_rate.png", "plot_validity_rate.png",
          "plot_format_failure_rate.png", "plot_response_tokens_mean.png"} <= names
  for path in written:
    with open(path, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_group_metrics_names_are_the_plotted_ones():
  """_group_metrics on hand-made rollouts (a valid, priced proposal included) writes
  exactly RUN_GROUP_METRICS, all of which plot_run orders and titles."""
  from absolute_zero.selfplay.phases import Rollout
  from absolute_zero.selfplay.run import _group_metrics
  from experiments.plot_run import PREFERRED_ORDER, TITLES

  def rollout(role, **kw):
    return Rollout(TaskType.DEDUCTION, role, (1, 2), np.zeros(3, np.int32),
                   np.zeros(3, np.float32), "text", "eos", **kw)

  proposer = [rollout(Role.PROPOSE, well_formed=True, valid=True, solve_rate=0.5, reward=0.5),
              rollout(Role.PROPOSE, reward=-1.0)]
  solver = [rollout(Role.SOLVE, well_formed=True, solve_rate=1.0, reward=1.0)]
  trained = solver + proposer
  out = _group_metrics(proposer, solver, trained, np.array([0.0, 1.0, -1.0]),
                       (TaskType.DEDUCTION,))
  assert {k.split("/")[-1] for k in out} == RUN_GROUP_METRICS
  # Hand-computed values of the proposer group.
  assert out["deduction/propose/reward_mean"] == pytest.approx(-0.25)
  assert out["deduction/propose/validity_rate"] == 0.5
  assert out["deduction/propose/solve_rate_of_valid"] == 0.5
  assert out["deduction/propose/advantage_std"] == pytest.approx(1.0)
  assert set(metric_names.GROUP_METRICS) == RUN_GROUP_METRICS
  assert RUN_GROUP_METRICS <= set(PREFERRED_ORDER) and RUN_GROUP_METRICS <= set(TITLES)
