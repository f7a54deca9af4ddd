"""Rewards against hand-computed values (spec §4)."""

import pytest

from absolute_zero.tasks.rewards import (
    RewardConfig,
    apply_format_rule,
    final_proposer_reward,
    final_solver_reward,
    induction_score,
    learnability_reward,
    solve_rate,
    solver_reward,
)


def test_solver_reward():
  assert solver_reward(True) == 1.0
  assert solver_reward(False) == 0.0
  assert solver_reward(0.25) == 0.25
  assert solver_reward(0.0) == 0.0 and solver_reward(1.0) == 1.0  # graders' float scores
  with pytest.raises(ValueError):
    solver_reward(1.5)


def test_solve_rate_of_eight_samples():
  assert solve_rate([True, False, False, True, False, False, False, False]) == 0.25
  assert solve_rate([False] * 8) == 0.0
  with pytest.raises(ValueError):
    solve_rate([])


@pytest.mark.parametrize(
    "rate,expected",
    [
        (0.0, 0.0),
        (1.0, 0.0),
        (None, 0.0),
        (0.125, 0.875),
        (0.375, 0.625),
        (0.5, 0.5),
        (7 / 8, 0.125),
    ],
)
def test_learnability_one_minus(rate, expected):
  assert learnability_reward(rate) == pytest.approx(expected)


def test_learnability_inverse_mode():
  cfg = RewardConfig(learnability="inverse")
  assert learnability_reward(0.0, cfg) == 1.0
  assert learnability_reward(1.0, cfg) == 0.0
  assert learnability_reward(None, cfg) == 0.0  # invalid counts as s = 1


def test_format_rule():
  assert apply_format_rule(0.625, True) == 0.625
  assert apply_format_rule(0.0, True) == -0.5
  assert apply_format_rule(0.9, False) == -1.0
  off = RewardConfig(use_format_rule=False)
  assert apply_format_rule(0.0, False, off) == 0.0
  assert apply_format_rule(0.3, True, off) == 0.3
  custom = RewardConfig(wrong_reward=-0.25, format_error_reward=-2.0)
  assert apply_format_rule(0.0, True, custom) == -0.25
  assert apply_format_rule(0.0, False, custom) == -2.0


def test_final_solver_reward():
  assert final_solver_reward(True, True) == 1.0
  assert final_solver_reward(True, False) == -0.5
  assert final_solver_reward(False, False) == -1.0
  assert final_solver_reward(False, True) == -1.0  # broken format never pays


def test_final_proposer_reward():
  # valid, solved by 3 of 8 samples: 1 - 3/8
  assert final_proposer_reward(True, True, 3 / 8) == pytest.approx(0.625)
  # valid but too easy or impossible: learnability 0 -> well-formed but not passable
  assert final_proposer_reward(True, True, 1.0) == -0.5
  assert final_proposer_reward(True, True, 0.0) == -0.5
  # well-formed but rejected by the sandbox: spec -0.5, reference -1
  assert final_proposer_reward(True, False, None) == -0.5
  assert (
      final_proposer_reward(True, False, 0.5) == -0.5
  )  # a rate for an invalid proposal is ignored
  assert (
      final_proposer_reward(True, False, None, RewardConfig(invalid_proposal_is_format_error=True))
      == -1.0
  )
  assert final_proposer_reward(False, False, None) == -1.0


def test_final_rewards_use_the_run_config():
  """The final rewards apply the config they are given, not the defaults."""
  custom = RewardConfig(wrong_reward=-0.25, format_error_reward=-2.0)
  assert final_solver_reward(True, 0.0, custom) == -0.25
  assert final_solver_reward(True, 1.0, custom) == 1.0
  assert final_solver_reward(False, 0.0, custom) == -2.0
  assert final_proposer_reward(True, True, 1.0, custom) == -0.25
  assert final_proposer_reward(False, False, None, custom) == -2.0
  inverse = RewardConfig(learnability="inverse")
  assert final_proposer_reward(True, True, 0.0, inverse) == 1.0  # one_minus: -0.5
  off = RewardConfig(use_format_rule=False)
  assert final_solver_reward(False, 1.0, off) == 0.0  # a broken format earns nothing
  assert final_solver_reward(True, 0.0, off) == 0.0
  assert final_proposer_reward(False, True, 0.5, off) == 0.0
  assert final_proposer_reward(True, True, 0.25, off) == 0.75


def test_induction_score_modes():
  results = [True, True, False]
  assert induction_score(results) == 0.0
  assert induction_score([True, True]) == 1.0
  assert induction_score(results, RewardConfig(induction_reward="accuracy")) == pytest.approx(2 / 3)
  assert induction_score(results, RewardConfig(induction_reward="if_one_correct")) == 1.0
  assert induction_score([False, False], RewardConfig(induction_reward="if_one_correct")) == 0.0
  assert induction_score([]) == 0.0


def test_config_validation():
  with pytest.raises(ValueError, match="learnability"):
    RewardConfig(learnability="square")
  with pytest.raises(ValueError, match="induction_reward"):
    RewardConfig(induction_reward="partial")
  with pytest.raises(ValueError, match="n_samples"):
    RewardConfig(n_samples=0)
  assert RewardConfig(n_samples=1).n_samples == 1  # one sample is allowed
  with pytest.raises(ValueError, match="solve rate"):
    learnability_reward(1.5)
