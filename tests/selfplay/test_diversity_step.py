"""A step's diversity metrics and intrinsic proposer rewards on a hand-made batch.

The proposals, buffers and solve rates are written out here, so every metric and reward
is computed by hand below (token bigrams counted as in tests/tasks/test_diversity.py).
No model and no sandbox: `measure_step` and `score_proposals` see a `ProposeOutcome` as
`phases.propose` returns it.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from absolute_zero.selfplay import step_diversity as diversity
from absolute_zero.selfplay.selfplay_config import SelfPlayConfig
from absolute_zero.selfplay.phases import PhaseContext, ProposeOutcome, Rollout, score_proposals
from absolute_zero.tasks import diversity as div
from absolute_zero.tasks.buffers import TaskBuffers
from absolute_zero.tasks.rewards import (RewardConfig, final_proposer_reward, intrinsic_bonus)
from absolute_zero.tasks.types import InductionTask, IOPair, Role, TaskType, Triplet

D, A, I = TaskType.DEDUCTION, TaskType.ABDUCTION, TaskType.INDUCTION
IDENTITY_COPY = "def f(value):\n    return value"  # the zero triplet, renamed
IDENTITY_COPY2 = "def f(z):\n    # same again\n    return z"
PLUS_ONE = "def f(y):\n    return y + 1"  # distance 1 - 4/9 = 5/9 to the identity
BRANCH = "def f(x):\n    if x:\n        return 1\n    return 0"  # 1 - 3/11 = 8/11; cc 2


def _rollout(task_type, valid, well_formed=True):
  return Rollout(
      task_type,
      Role.PROPOSE,
      (1,),
      np.zeros(2, np.int32),
      np.zeros(2, np.float32),
      "text",
      "stop",
      well_formed=well_formed,
      valid=valid,
  )


def _induction(message, outputs=("1", "2")):
  return InductionTask(
      program=PLUS_ONE,
      shown=[IOPair("0", outputs[0])],
      held_out=[IOPair("1", outputs[1])],
      message=message,
  )


def _batch():
  """(buffers before the step, outcome): 5 deduction, 1 abduction, 3 induction proposals."""
  tasks = [
      (D, Triplet(IDENTITY_COPY, "'a'", "'a'")),
      (D, Triplet(PLUS_ONE, "3", "4")),
      (D, Triplet(BRANCH, "0", "0")),
      (D, Triplet(IDENTITY_COPY2, "[1]", "[1]")),
      (D, None),  # invalid
      (A, Triplet(BRANCH, "1, k=2.5", "1")),
      (I, _induction("Add one  to X")),
      (I, _induction("add one to x")),
      (I, _induction("Something else", outputs=("'1'", "None"))),
  ]
  rollouts = [_rollout(t, task is not None) for t, task in tasks]
  accepted = {t: [task for tt, task in tasks if tt is t and task is not None] for t in (D, A, I)}
  return TaskBuffers.seeded(), ProposeOutcome(
      rollouts=rollouts, tasks=[t for _, t in tasks], accepted=accepted
  )


def test_metrics_of_a_hand_made_step():
  buffers, outcome = _batch()
  index = div.BufferIndex()
  step = diversity.measure_step(index, buffers, outcome, (D, A, I))
  m = step.metrics
  # Deduction: valid = identity copy, PLUS_ONE, BRANCH, identity copy again.
  assert m["deduction/propose/distinct_programs"] == 3
  assert m["deduction/propose/novel_share"] == 0.5  # the identity is in the buffer
  assert m["deduction/propose/nn_distance_mean"] == pytest.approx((0 + 5 / 9 + 8 / 11 + 0) / 4)
  assert m["deduction/propose/ast_nodes_mean"] == (6 + 9 + 10 + 6) / 4
  assert m["deduction/propose/cyclomatic_mean"] == (1 + 1 + 2 + 1) / 4
  zeros = {t: 0.0 for t in div.VALUE_TYPES}
  shares = {**zeros, "str": 0.25, "int": 0.5, "list": 0.25}
  for side in ("input", "output"):
    assert {t: m[f"types/deduction/{side}/{t}"] for t in div.VALUE_TYPES} == shares
  # Abduction: BRANCH, new; its two arguments are an int and a float.
  assert m["abduction/propose/distinct_programs"] == 1
  assert m["abduction/propose/novel_share"] == 1.0
  assert m["abduction/propose/nn_distance_mean"] == pytest.approx(8 / 11)
  assert m["types/abduction/input/int"] == m["types/abduction/input/float"] == 0.5
  # Induction: one program, two messages after normalising; the buffer is empty.
  assert m["induction/propose/distinct_programs"] == 1
  assert m["induction/propose/distinct_messages"] == 2
  assert m["induction/propose/novel_share"] == 1.0
  assert m["induction/propose/nn_distance_mean"] == 1.0
  assert m["types/induction/input/int"] == 1.0  # 6 inputs, all ints
  assert m["types/induction/output/int"] == pytest.approx(4 / 6)
  assert m["types/induction/output/str"] == m["types/induction/output/none"] == pytest.approx(1 / 6)
  # Off by default: no bonus, no intrinsic metric.
  assert step.bonuses == [0.0] * 9
  assert not any("intrinsic" in k for k in m)
  # After the proposals join the buffers: identity, PLUS_ONE, BRANCH.
  for task_type, entries in outcome.accepted.items():
    buffers[task_type].add(entries, step=1)
  assert diversity.buffer_metrics(index, buffers) == {
      "buffer/deduction/distinct_programs": 3,
      "buffer/abduction/distinct_programs": 2,
      "buffer/induction/distinct_programs": 1,
  }


def test_no_valid_proposal_writes_only_the_counts():
  buffers, outcome = _batch()
  for r in outcome.rollouts:
    r.valid = False
  m = diversity.measure_step(div.BufferIndex(), buffers, outcome, (D, I)).metrics
  assert m == {
      "deduction/propose/distinct_programs": 0,
      "induction/propose/distinct_programs": 0,
      "induction/propose/distinct_messages": 0,
  }


def test_intrinsic_bonus_formula_by_hand():
  off = RewardConfig()
  assert (off.complexity_reward_weight, off.diversity_reward_weight, off.intrinsic) == (
      0.0,
      0.0,
      False,
  )
  assert intrinsic_bonus(1.0, 1.0, off) == 0.0
  on = RewardConfig(complexity_reward_weight=0.5, diversity_reward_weight=0.2, n_samples=4)
  assert on.intrinsic_cap == 0.125  # half of the learnability step 1/4
  assert intrinsic_bonus(0.1, 0.25, on) == pytest.approx(0.05 + 0.05)
  assert intrinsic_bonus(1.0, 1.0, on) == 0.125  # capped
  # Added after the format rule, to valid proposals only.
  assert final_proposer_reward(True, True, 0.5, on, intrinsic=0.1) == 0.5 + 0.1
  assert final_proposer_reward(True, True, 1.0, on, intrinsic=0.1) == -0.5 + 0.1
  assert final_proposer_reward(True, False, None, on, intrinsic=0.1) == -0.5
  assert final_proposer_reward(False, False, None, on, intrinsic=0.1) == -1.0
  with pytest.raises(ValueError, match="distance"):
    intrinsic_bonus(0.0, 1.5, on)
  with pytest.raises(ValueError, match="diversity_reward_weight"):
    RewardConfig(diversity_reward_weight=-0.1)
  with pytest.raises(ValueError, match="complexity_reward_weight"):
    RewardConfig(complexity_reward_weight=float("nan"))


def _bits(values):
  return [struct.pack("<d", float(v)) for v in values]


class _Sampler:
  """Stands in for the sampler where only solver grading matters (never called)."""


def _score(config, outcome, bonuses, rates, monkeypatch):
  """score_proposals with the solver replaced by fixed solve rates per valid proposal."""
  from absolute_zero.selfplay import phases

  valid = [i for i, r in enumerate(outcome.rollouts) if r.valid]
  n = config.n_solver_samples

  def fake_solve(ctx, items, n_, key):
    assert n_ == n and len(items) == len(valid)
    out = []
    for i in valid:
      hits = int(round(rates[i] * n))
      out += [_rollout(outcome.rollouts[i].task_type, True) for _ in range(n)]
      for k, e in enumerate(out[-n:]):
        e.solve_rate = 1.0 if k < hits else 0.0
    return out

  monkeypatch.setattr(phases, "solve", fake_solve)
  ctx = PhaseContext(sampler=_Sampler(), tokenizer=None, pool=None, config=config)
  score_proposals(ctx, outcome, n, key=None, intrinsic=bonuses)
  return [r.reward for r in outcome.rollouts]


RATES = {0: 0.5, 1: 0.5, 2: 1.0, 3: 0.0, 5: 0.5, 6: 0.5, 7: 1.0, 8: 0.5}


def test_intrinsic_rewards_off_leave_rewards_unchanged_bit_for_bit(monkeypatch):
  config = SelfPlayConfig(n_solver_samples=2)
  buffers, outcome = _batch()
  step = diversity.measure_step(div.BufferIndex(), buffers, outcome, (D, A, I), config.rewards)
  got = _score(config, outcome, step.bonuses, RATES, monkeypatch)
  # Learnability with the format rule, by hand: s = 0.5 -> 0.5; s in {0, 1} -> -0.5;
  # the invalid proposal (index 4) -> -0.5.
  expected = [0.5, 0.5, -0.5, -0.5, -0.5, 0.5, 0.5, -0.5, 0.5]
  assert _bits(got) == _bits(expected)
  _, again = _batch()
  assert _bits(_score(config, again, None, RATES, monkeypatch)) == _bits(expected)


def test_intrinsic_rewards_on_by_hand(monkeypatch):
  rewards = RewardConfig(complexity_reward_weight=1.0, diversity_reward_weight=0.3)
  config = SelfPlayConfig(n_solver_samples=2, rewards=rewards)
  assert config.rewards.intrinsic_cap == 0.25
  buffers, outcome = _batch()
  step = diversity.measure_step(div.BufferIndex(), buffers, outcome, (D, A, I), config.rewards)
  # b = min(1.0 * min((cc - 1) / 10, 1) + 0.3 * distance, 0.25), valid deduction and
  # abduction proposals only:
  #   identity copies: 0 + 0.3 * 0            = 0
  #   PLUS_ONE:        0 + 0.3 * 5/9          = 1/6
  #   BRANCH:          0.1 + 0.3 * 8/11       = 0.318... -> capped at 0.25 (both types)
  #   invalid and induction proposals: 0.
  expected_bonus = [0.0, 1 / 6, 0.25, 0.0, 0.0, 0.25, 0.0, 0.0, 0.0]
  assert step.bonuses == pytest.approx(expected_bonus)
  assert step.metrics["deduction/propose/intrinsic_reward_mean"] == pytest.approx(
      (1 / 6 + 0.25) / 4
  )
  assert step.metrics["abduction/propose/intrinsic_reward_mean"] == 0.25
  assert "induction/propose/intrinsic_reward_mean" not in step.metrics
  got = _score(config, outcome, step.bonuses, RATES, monkeypatch)
  # Base rewards as in the test above, plus the bonus: BRANCH with s = 1 is valid but not
  # learnable (-0.5) and still below every learnable proposal after its bonus.
  assert got == pytest.approx([0.5, 0.5 + 1 / 6, -0.25, -0.5, -0.5, 0.75, 0.5, -0.5, 0.5])
  # Learnability stays dominant: no bonus reorders proposals whose base rewards differ.
  base = [
      final_proposer_reward(r.well_formed, r.valid, RATES.get(i), config.rewards)
      for i, r in enumerate(outcome.rollouts)
  ]
  for i in range(len(got)):
    for j in range(len(got)):
      if base[i] > base[j]:
        assert got[i] > got[j], (i, j)
