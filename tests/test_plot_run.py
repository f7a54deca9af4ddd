"""plot_run draws the names a real self-play run writes.

A tiny random model runs the real `SelfPlayRun` (seeding and one step, with the sandbox)
and its metrics go through `MetricsWriter` into metrics.jsonl, as experiments/azr.py does.
Every key of that file must land in a subplot that plot_run orders and titles on purpose;
a metric renamed in the run (or a new namespace) that the plot does not know fails here.
A random model proposes nothing valid, and the metrics of valid proposals (solve rate,
task diversity) would never be written; so the proposer's answers are scripted
(`SCRIPT`), while the solver samples from the model. The run has the intrinsic proposer
rewards on, so their metric is written and drawn too.
"""

from __future__ import annotations

import numpy as np
import pytest

from absolute_zero.selfplay import metric_names
from absolute_zero.tasks.types import Role, TaskType

# The per-(task, role) names the run writes, spelled out independently of metric_names.
RUN_GROUP_METRICS = {
    "count",
    "reward_mean",
    "format_failure_rate",
    "response_tokens_mean",
    "validity_rate",
    "solve_rate_of_valid",
    "solve_rate",
    "advantage_mean",
    "advantage_std",
}
RUN_DIVERSITY_METRICS = {
    "distinct_programs",
    "novel_share",
    "nn_distance_mean",
    "ast_nodes_mean",
    "cyclomatic_mean",
    "distinct_messages",
    "intrinsic_reward_mean",
}
# The proposer's answers, per task type, in turn. Deduction: two renamed copies of one
# program; abduction: two different programs.
SCRIPT = {
    TaskType.DEDUCTION: [
        ("def f(a):\n    return a * 2", "3"),
        ("def f(b):\n    # twice\n    return b * 2", "'x'"),
    ],
    TaskType.ABDUCTION: [
        ("def f(c):\n    return c + 1", "2"),
        ("def f(x):\n    if x:\n        return 1\n    return 0", "5"),
    ],
}
INTRINSIC = dict(complexity_reward_weight=1.0, diversity_reward_weight=0.3)


def _scripted_proposer(run, tok):
  """Replaces the sampler's answers to proposer prompts (asked for max_proposer_tokens)
  with SCRIPT's proposals, and induction proposals of ten int inputs."""
  from absolute_zero.sampler import Completion
  from absolute_zero.tasks.prompts import render_induction_proposal, render_triplet_proposal

  generate, config = run.sampler.generate, run.config
  inputs = [str(i) for i in range(config.num_induction_inputs)]
  # phases.propose asks for batch_size proposals per task type, in the run's order.
  kinds = [t for t in config.task_types for _ in range(config.batch_size)]

  def scripted(prompts, *, max_new_tokens, on_finished=None, **kwargs):
    if max_new_tokens != config.max_proposer_tokens:
      return generate(prompts, max_new_tokens=max_new_tokens, on_finished=on_finished, **kwargs)
    # The proposals are replaced after generation, so the sampler must not report its own
    # early: the phases take the returned (scripted) ones.
    out = generate(prompts, max_new_tokens=max_new_tokens, **kwargs)
    assert len(prompts) == len(kinds)
    for k, c in enumerate(out):
      kind = kinds[c.prompt_index]
      if kind in SCRIPT:
        text = render_triplet_proposal(*SCRIPT[kind][c.prompt_index % config.batch_size])
      else:
        text = render_induction_proposal(inputs, "Returns its input.")
      ids = tok.encode(text) + [tok.eos_id]
      out[k] = Completion(
          c.prompt_index,
          c.sample_index,
          c.prompt_token_ids,
          np.asarray(ids, np.int32),
          np.zeros(len(ids), np.float32),
          text,
          "eos",
      )
    return out

  run.sampler.generate = scripted


@pytest.fixture(scope="module")
def run_metrics(tmp_path_factory):
  """(run directory, records) of a tiny real run: seeding (step 0) and one step."""
  import jax

  from absolute_zero import learner
  from absolute_zero.metrics import MetricsWriter, read_metrics
  from absolute_zero.models import get_config, init_params
  from absolute_zero.sandbox import SandboxPool
  from absolute_zero.selfplay.selfplay_config import SelfPlayConfig
  from absolute_zero.tasks.rewards import RewardConfig
  from absolute_zero.selfplay.run import SelfPlayRun
  from absolute_zero.tokenizers import from_tokenizer_json
  from tests.selfplay import teaching

  pytest.importorskip("tokenizers")
  root = tmp_path_factory.mktemp("plotrun")
  teaching.train_bpe(teaching.proposer_prompts(), root / "tokenizer.json", vocab_size=300)
  tok = from_tokenizer_json(root / "tokenizer.json")
  model_config = get_config("tiny-llama").replace(
      vocab_size=320, rope_scaling=None, num_layers=1, max_position=8192
  )
  config = SelfPlayConfig(
      batch_size=2,
      n_solver_samples=1,
      num_references=1,
      max_seed_rounds=0,
      max_prompt_tokens=8000,
      max_proposer_tokens=12,
      max_solver_tokens=8,
      rewards=RewardConfig(**INTRINSIC),
  )
  with SandboxPool(num_workers=2) as pool:
    run = SelfPlayRun(
        model_config,
        init_params(model_config, jax.random.key(0)),
        tok,
        config,
        learner.LearnerConfig(learning_rate=1e-5),
        pool=pool,
    )
    _scripted_proposer(run, tok)
    with MetricsWriter(root / "run", tensorboard=False) as writer:
      writer.write(0, run.seed_buffers())
      writer.write(1, run.run_step())
  return root / "run", read_metrics(root / "run"), run.last_rollouts["propose"]


def test_every_key_a_real_run_writes_has_a_planned_subplot(run_metrics):
  from absolute_zero.metrics_plot import PREFERRED_ORDER, TITLES, group_series, ordered_groups

  _, records, _ = run_metrics
  assert [r["step"] for r in records] == [0, 1]
  groups = group_series(records)
  unplanned = sorted(set(groups) - set(PREFERRED_ORDER))
  assert not unplanned, f"the run writes metrics plot_run does not know: {unplanned}"
  assert all(name in TITLES for name in groups)
  # The per-(task, role) curves the run wrote, one line per (task, role).
  written = {k.split("/")[-1] for k in records[1] if k.split("/")[0] in {t.value for t in TaskType}}
  assert written == RUN_GROUP_METRICS | RUN_DIVERSITY_METRICS
  # One line per (task, role) that had rollouts: every proposer, solvers with buffer tasks.
  lines = set(groups["reward_mean"])
  assert {f"{t.value}/propose" for t in TaskType} <= lines
  assert lines <= {f"{t.value}/{r.value}" for t in TaskType for r in (Role.PROPOSE, Role.SOLVE)}
  order = ordered_groups(groups)
  assert order[:3] == ["reward_mean", "validity_rate", "solve_rate"]
  assert {"buffer", "time", "throughput", "learner", "seed"} <= set(order)
  # Diversity: one line per proposer; value types one subplot per (task, side).
  assert set(groups["distinct_programs"]) == {f"{t.value}/propose" for t in TaskType}
  assert set(groups["intrinsic_reward_mean"]) == {"deduction/propose", "abduction/propose"}
  assert {f"types/{t.value}/{side}" for t in TaskType for side in ("input", "output")} <= set(order)
  assert {"deduction/distinct_programs", "deduction"} <= set(groups["buffer"])


def test_diversity_metrics_of_the_scripted_proposals_by_hand(run_metrics):
  """SCRIPT's proposals, measured against the zero triplet (def f(x): return x)."""
  _, records, proposer = run_metrics
  m = records[1]
  assert m["deduction/propose/validity_rate"] == m["abduction/propose/validity_rate"] == 1.0
  # Deduction: one program (renamed copies, comment dropped), new to the buffer; tokens
  # Module, FunctionDef v0, arguments, arg v1, Return, BinOp, Name v1, Mult, Constant:
  # 9 nodes, 8 bigrams of which 4 are the identity's (5): distance 1 - 4/9.
  assert m["deduction/propose/distinct_programs"] == 1
  assert m["deduction/propose/novel_share"] == 1.0
  assert m["deduction/propose/ast_nodes_mean"] == 9
  assert m["deduction/propose/cyclomatic_mean"] == 1
  assert m["deduction/propose/nn_distance_mean"] == pytest.approx(5 / 9)
  assert m["types/deduction/input/int"] == m["types/deduction/input/str"] == 0.5
  assert m["types/deduction/output/int"] == m["types/deduction/output/str"] == 0.5
  # Abduction: c + 1 (distance 5/9, cyclomatic 1) and the branch (10 nodes, 9 bigrams,
  # 3 shared with the identity: 1 - 3/11; cyclomatic 2).
  assert m["abduction/propose/distinct_programs"] == 2
  assert m["abduction/propose/cyclomatic_mean"] == 1.5
  assert m["abduction/propose/nn_distance_mean"] == pytest.approx((5 / 9 + 8 / 11) / 2)
  # Induction: both proposals carry the same message; the induction buffer was empty.
  assert m["induction/propose/distinct_messages"] == 1
  assert m["induction/propose/nn_distance_mean"] == 1.0
  assert m["types/induction/input/int"] == 1.0
  assert m["buffer/deduction/distinct_programs"] == 2  # identity and a * 2
  assert m["buffer/abduction/distinct_programs"] == 3
  # Intrinsic rewards (w_c = 1, w_d = 0.3, cap 1 / (2 x 1)): with one solver sample a
  # proposal is never learnable, so each valid one is -0.5 + its bonus.
  bonus = {
      TaskType.DEDUCTION: [0.3 * 5 / 9] * 2,
      TaskType.ABDUCTION: [0.3 * 5 / 9, 0.1 + 0.3 * 8 / 11],
      TaskType.INDUCTION: [0.0, 0.0],
  }
  for t, expected in bonus.items():
    got = [r.reward for r in proposer if r.task_type is t]
    assert got == pytest.approx([-0.5 + b for b in expected]), t
  assert m["abduction/propose/intrinsic_reward_mean"] == pytest.approx(
      (0.3 * 5 / 9 + 0.1 + 0.3 * 8 / 11) / 2
  )


def test_plot_run_draws_the_run_with_the_default_name(run_metrics):
  from absolute_zero.metrics import PLOT_FILE
  from absolute_zero.metrics_plot import plot_run

  run_dir, _, _ = run_metrics
  written = plot_run(str(run_dir), per_group=True)
  assert written[0] == str(run_dir / PLOT_FILE)
  names = {p.rsplit("/", 1)[1] for p in written[1:]}
  assert {
      "plot_reward_mean.png",
      "plot_solve_rate.png",
      "plot_validity_rate.png",
      "plot_format_failure_rate.png",
      "plot_response_tokens_mean.png",
      "plot_distinct_programs.png",
      "plot_novel_share.png",
      "plot_nn_distance_mean.png",
      "plot_cyclomatic_mean.png",
      "plot_types_deduction_input.png",
      "plot_intrinsic_reward_mean.png",
  } <= names
  for path in written:
    with open(path, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_group_metrics_names_are_the_plotted_ones():
  """_group_metrics on hand-made rollouts (a valid, priced proposal included) writes
  exactly RUN_GROUP_METRICS, all of which plot_run orders and titles."""
  from absolute_zero.selfplay.phases import Rollout
  from absolute_zero.selfplay.run import _group_metrics
  from absolute_zero.metrics_plot import PREFERRED_ORDER, TITLES

  def rollout(role, **kw):
    return Rollout(
        TaskType.DEDUCTION,
        role,
        (1, 2),
        np.zeros(3, np.int32),
        np.zeros(3, np.float32),
        "text",
        "eos",
        **kw,
    )

  proposer = [
      rollout(Role.PROPOSE, well_formed=True, valid=True, solve_rate=0.5, reward=0.5),
      rollout(Role.PROPOSE, reward=-1.0),
  ]
  solver = [rollout(Role.SOLVE, well_formed=True, solve_rate=1.0, reward=1.0)]
  trained = solver + proposer
  out = _group_metrics(proposer, solver, trained, np.array([0.0, 1.0, -1.0]), (TaskType.DEDUCTION,))
  assert {k.split("/")[-1] for k in out} == RUN_GROUP_METRICS
  # Hand-computed values of the proposer group.
  assert out["deduction/propose/reward_mean"] == pytest.approx(-0.25)
  assert out["deduction/propose/validity_rate"] == 0.5
  assert out["deduction/propose/solve_rate_of_valid"] == 0.5
  assert out["deduction/propose/advantage_std"] == pytest.approx(1.0)
  assert set(metric_names.GROUP_METRICS) == RUN_GROUP_METRICS
  assert RUN_GROUP_METRICS <= set(PREFERRED_ORDER) and RUN_GROUP_METRICS <= set(TITLES)
