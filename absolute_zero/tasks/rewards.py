"""Rewards of Absolute Zero as plain functions (spec §4).

* Solver: 1 if the answer is correct, else 0 (for induction the reference's ``binary``
  mode: correct means right on every held-out pair).
* Proposer: learnability from ``n`` solver samples with solve rate ``s``:
  ``1 − s`` if ``0 < s < 1`` else 0. An invalid proposal counts as ``s = 1``.
* Format rule, both roles: the role reward if the response is well-formed and the role
  reward is positive; ``wrong_reward`` (−0.5) if well-formed but wrong, invalid or not
  learnable; ``format_error_reward`` (−1) if the format is broken.

* Optional intrinsic bonus for valid deduction/abduction proposals, off by default
  (``intrinsic_bonus``): ``b = clip(w_c * complexity + w_d * diversity, 0, 1 / (2n))``,
  added to the final proposer reward. The cap is half the step of the learnability reward
  (``1 - s`` moves in steps of ``1/n``), so the bonus can only reorder proposals whose
  learnability rewards are equal: learnability stays dominant.

The reference (reward_managers.py) scores a well-formed proposal that fails in the
sandbox as a format error (−1); the spec scores it −0.5. ``invalid_proposal_is_format_error``
switches to the reference's choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence


@dataclass(frozen=True)
class RewardConfig:
  """Reward constants and switches (reference defaults unless noted)."""

  wrong_reward: float = -0.5
  format_error_reward: float = -1.0
  use_format_rule: bool = True  # reference generation_reward_config.format_reward
  learnability: str = "one_minus"  # 'one_minus': 1-s if 0<s<1 else 0; 'inverse': 1-s always
  invalid_proposal_is_format_error: bool = False  # spec: -0.5; reference: -1
  induction_reward: str = (
      "binary"  # 'binary' | 'accuracy' | 'if_one_correct' (reference code_f_reward_type)
  )
  n_samples: int = 8  # solver samples per new proposal
  # Intrinsic proposer rewards (ablations; 0 = off, the reference's default too):
  # weights of the complexity score and of the distance to the nearest buffer program.
  complexity_reward_weight: float = 0.0  # reference complexity_reward.coef
  diversity_reward_weight: float = 0.0  # reference mean_edit_distance_reward.coef

  def __post_init__(self) -> None:
    if self.learnability not in ("one_minus", "inverse"):
      raise ValueError(f"learnability must be 'one_minus' or 'inverse', got {self.learnability!r}")
    if self.induction_reward not in ("binary", "accuracy", "if_one_correct"):
      raise ValueError(
          f"induction_reward must be 'binary', 'accuracy' or 'if_one_correct', got {self.induction_reward!r}"
      )
    if self.n_samples < 1:
      raise ValueError(f"n_samples must be >= 1, got {self.n_samples}")
    for name in ("complexity_reward_weight", "diversity_reward_weight"):
      value = getattr(self, name)
      if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")

  @property
  def intrinsic(self) -> bool:
    """Whether any intrinsic proposer reward is on."""
    return self.complexity_reward_weight > 0 or self.diversity_reward_weight > 0

  @property
  def intrinsic_cap(self) -> float:
    """Largest intrinsic bonus: half the learnability reward's step 1/n_samples."""
    return 0.5 / self.n_samples


def solver_reward(correct: bool | float) -> float:
  """Role reward of one solver answer: 1.0 correct, 0.0 wrong (a float passes through
  for the induction 'accuracy' mode)."""
  if isinstance(correct, bool):
    return 1.0 if correct else 0.0
  value = float(correct)
  if not 0.0 <= value <= 1.0:
    raise ValueError(f"solver score must lie in [0, 1], got {value}")
  return value


def induction_score(pair_results: Sequence[bool], config: RewardConfig = RewardConfig()) -> float:
  """Turn per-held-out-pair results of one candidate program into its solver score."""
  if not pair_results:
    return 0.0
  accuracy = sum(bool(r) for r in pair_results) / len(pair_results)
  if config.induction_reward == "binary":
    return 1.0 if accuracy == 1.0 else 0.0
  if config.induction_reward == "if_one_correct":
    return 1.0 if accuracy > 0.0 else 0.0
  return accuracy


def solve_rate(scores: Sequence[bool | float]) -> float:
  """Mean solver score over the ``n`` samples of one task."""
  if len(scores) == 0:
    raise ValueError("solve_rate needs at least one solver sample")
  return sum(solver_reward(s) for s in scores) / len(scores)


def learnability_reward(rate: Optional[float], config: RewardConfig = RewardConfig()) -> float:
  """Proposer role reward from the solve rate; ``None`` (invalid proposal) counts as 1."""
  s = 1.0 if rate is None else float(rate)
  if not 0.0 <= s <= 1.0:
    raise ValueError(f"solve rate must lie in [0, 1], got {s}")
  if config.learnability == "inverse":
    return 1.0 - s
  return 1.0 - s if 0.0 < s < 1.0 else 0.0


def apply_format_rule(
    role_reward: float, well_formed: bool, config: RewardConfig = RewardConfig()
) -> float:
  """Final reward: role reward if well-formed and positive, else the penalties."""
  if not config.use_format_rule:
    return float(role_reward)
  if not well_formed:
    return config.format_error_reward
  return float(role_reward) if role_reward > 0 else config.wrong_reward


def final_solver_reward(
    well_formed: bool, score: bool | float, config: RewardConfig = RewardConfig()
) -> float:
  """Final reward of one solver response (``score`` ignored when not well-formed)."""
  role = solver_reward(score) if well_formed else 0.0
  return apply_format_rule(role, well_formed, config)


def intrinsic_bonus(
    complexity: float, distance: float, config: RewardConfig = RewardConfig()
) -> float:
  """Intrinsic bonus of one valid proposal: ``clip(w_c * complexity + w_d * distance, 0,
  1 / (2 n))`` with the weights of ``config`` (0.0 when both are off).

  ``complexity`` and ``distance`` lie in [0, 1]: the program's complexity score and its
  distance to the nearest program of its buffer (``tasks.diversity``; docs/method.md).
  The reference adds ``min(coef * value, max)`` per term with ``max = 0.5``; here the
  sum is capped at half the learnability step so learnability stays dominant.
  """
  if not config.intrinsic:
    return 0.0
  for name, value in (("complexity", complexity), ("distance", distance)):
    if not 0.0 <= value <= 1.0:
      raise ValueError(f"{name} must lie in [0, 1], got {value}")
  raw = config.complexity_reward_weight * complexity + config.diversity_reward_weight * distance
  return min(max(raw, 0.0), config.intrinsic_cap)


def final_proposer_reward(
    well_formed: bool,
    valid: bool,
    rate: Optional[float],
    config: RewardConfig = RewardConfig(),
    intrinsic: float = 0.0,
) -> float:
  """Final reward of one proposer response.

  ``well_formed``: the parser accepted the response; ``valid``: the sandbox accepted the
  proposal; ``rate``: solve rate of its ``n`` solver samples (ignored unless valid);
  ``intrinsic``: its ``intrinsic_bonus``, added after the format rule to valid proposals
  only (ignored otherwise; 0 leaves the reward untouched).
  """
  valid_proposal = well_formed and valid
  if well_formed and not valid and config.invalid_proposal_is_format_error:
    well_formed = False
  role = learnability_reward(rate if (well_formed and valid) else None, config)
  reward = apply_format_rule(role, well_formed, config)
  if valid_proposal and intrinsic:
    reward += float(intrinsic)
  return reward
