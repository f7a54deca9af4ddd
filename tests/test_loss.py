"""Tests for absolute_zero.loss against independent float64 NumPy references."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from absolute_zero import loss

# ----------------------------------------------------------------------------
# NumPy references (float64, written from the formulas, loop-based on purpose)
# ----------------------------------------------------------------------------


def np_advantages(rewards, group_ids, valid, eps, mode, weights=None, unbiased=True):
  rewards = np.asarray(rewards, np.float64)
  out = np.zeros_like(rewards)
  ids = np.zeros_like(group_ids) if mode == "global" else np.asarray(group_ids)
  w_all = np.ones_like(rewards) if weights is None else np.asarray(weights, np.float64)
  for g in np.unique(ids[valid]):
    members = np.where(valid & (ids == g))[0]
    if len(members) < 2:
      continue  # singleton: advantage 0
    r, w = rewards[members], w_all[members]
    mean = np.sum(w * r) / np.sum(w)
    denom = np.sum(w) - 1.0 if unbiased else np.sum(w)
    std = np.sqrt(np.sum(w * (r - mean) ** 2) / denom) if denom > 0 else 0.0
    if std == 0.0:
      continue  # no spread: advantage 0
    out[members] = (r - mean) / (std + eps)
  return out


def np_surrogate(logp, old, adv, mask, lo, hi, c):
  logp, old = np.asarray(logp, np.float64), np.asarray(old, np.float64)
  adv = np.asarray(adv, np.float64)[:, None]
  mask = np.asarray(mask, bool)
  lr = np.clip(np.where(mask, logp - old, 0.0), -c, c)
  rho = np.exp(lr)
  per_token = -np.minimum(rho * adv, np.clip(rho, 1 - lo, 1 + hi) * adv)
  clipped = ((rho > 1 + hi) & (adv > 0)) | ((rho < 1 - lo) & (adv < 0))
  return {
      "loss_sum": per_token[mask].sum(),
      "count": mask.sum(),
      "clipped": (clipped & mask).sum(),
      "kl": ((rho - 1) - lr)[mask].sum(),
      "ratio": rho[mask].sum(),
  }


# ----------------------------------------------------------------------------
# Advantages
# ----------------------------------------------------------------------------


def _grouped_batch(rng, n=48, groups=6):
  rewards = rng.choice([-1.0, -0.5, 0.0, 0.25, 0.625, 1.0], size=n) + rng.normal(0, 0.1, n)
  group_ids = rng.integers(0, groups, size=n)
  valid = rng.random(n) > 0.2
  return rewards.astype(np.float32), group_ids.astype(np.int32), valid


@pytest.mark.parametrize("mode", ["task_relative", "global"])
@pytest.mark.parametrize("unbiased", [True, False])
def test_advantages_match_numpy(mode, unbiased):
  rng = np.random.default_rng(0)
  for _ in range(5):
    rewards, group_ids, valid = _grouped_batch(rng)
    got = loss.task_relative_advantages(
        rewards, group_ids, 6, valid, eps=1e-6, mode=mode, unbiased=unbiased
    )
    want = np_advantages(rewards, group_ids, valid, 1e-6, mode, unbiased=unbiased)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_advantages_token_weighted_match_numpy():
  rng = np.random.default_rng(1)
  rewards, group_ids, valid = _grouped_batch(rng)
  lengths = rng.integers(1, 50, size=rewards.shape).astype(np.float32)
  got = loss.task_relative_advantages(rewards, group_ids, 6, valid, weights=lengths)
  want = np_advantages(rewards, group_ids, valid, 1e-6, "task_relative", weights=lengths)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_advantages_hand_computed_and_edge_cases():
  # group 0: rewards 1, 0 -> mean 0.5, sample std sqrt(0.5) -> ±0.5/0.7071
  # group 1: a single valid row (the other is padding) -> 0
  # group 2: all equal -> 0 ; group 3: empty
  rewards = np.array([1.0, 0.0, 0.7, 99.0, -0.5, -0.5, -0.5], np.float32)
  group_ids = np.array([0, 0, 1, 1, 2, 2, 2], np.int32)
  valid = np.array([1, 1, 1, 0, 1, 1, 1], bool)
  got = np.asarray(loss.task_relative_advantages(rewards, group_ids, 4, valid, eps=0.0))
  a = 0.5 / np.sqrt(0.5)
  np.testing.assert_allclose(got, [a, -a, 0, 0, 0, 0, 0], atol=1e-6)
  assert np.all(np.isfinite(got))


def test_advantages_global_mode_differs_from_task_relative():
  rewards = np.array([1.0, 0.0, 11.0, 10.0], np.float32)
  group_ids = np.array([0, 0, 1, 1], np.int32)
  valid = np.ones(4, bool)
  rel = np.asarray(loss.task_relative_advantages(rewards, group_ids, 2, valid, eps=0.0))
  glob = np.asarray(
      loss.task_relative_advantages(rewards, group_ids, 2, valid, eps=0.0, mode="global")
  )
  np.testing.assert_allclose(rel[:2], rel[2:], atol=1e-6)  # same shape within each group
  assert glob[2] > 0 > glob[0]
  np.testing.assert_allclose(
      glob, np_advantages(rewards, group_ids, valid, 0.0, "global"), atol=1e-6
  )


def test_advantages_jit_and_errors():
  rng = np.random.default_rng(2)
  rewards, group_ids, valid = _grouped_batch(rng)
  f = jax.jit(loss.task_relative_advantages, static_argnames=("num_groups", "mode", "eps"))
  got = f(rewards, group_ids, num_groups=6, valid=valid)
  np.testing.assert_allclose(
      np.asarray(got), np_advantages(rewards, group_ids, valid, 1e-6, "task_relative"), atol=1e-5
  )
  with pytest.raises(ValueError, match="group_ids"):
    loss.task_relative_advantages(rewards, group_ids, 3, np.ones_like(valid))
  with pytest.raises(ValueError, match="mode"):
    loss.task_relative_advantages(rewards, group_ids, 6, valid, mode="grpo")


def test_group_reward_stats_counts():
  rewards = np.array([1.0, 3.0, 5.0, 7.0], np.float32)
  mean, std, count = loss.group_reward_stats(
      rewards, np.array([0, 0, 1, 1]), 3, np.array([1, 1, 1, 0], bool), unbiased=False
  )
  np.testing.assert_allclose(np.asarray(mean), [2.0, 5.0, 0.0])
  np.testing.assert_allclose(np.asarray(std), [1.0, 0.0, 0.0])
  np.testing.assert_array_equal(np.asarray(count), [2, 1, 0])


# ----------------------------------------------------------------------------
# Clipped surrogate
# ----------------------------------------------------------------------------


def test_surrogate_value_and_metrics_match_numpy():
  rng = np.random.default_rng(4)
  b, t = 6, 9
  old = rng.normal(-2, 1, (b, t)).astype(np.float32)
  logp = (old + rng.normal(0, 0.3, (b, t))).astype(np.float32)
  adv = rng.normal(0, 1, b).astype(np.float32)
  lengths = rng.integers(0, t + 1, b)
  mask = np.arange(t)[None, :] < lengths[:, None]
  loss_sum, count, m = loss.clipped_surrogate_loss(
      jnp.asarray(logp), jnp.asarray(old), jnp.asarray(adv), jnp.asarray(mask), 0.2, 0.28
  )
  want = np_surrogate(logp, old, adv, mask, 0.2, 0.28, 20.0)
  np.testing.assert_allclose(float(loss_sum), want["loss_sum"], rtol=1e-5, atol=1e-5)
  assert float(count) == want["count"]
  assert float(m["clipped_tokens"]) == want["clipped"] and want["clipped"] > 0
  np.testing.assert_allclose(float(m["approx_kl_sum"]), want["kl"], rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(float(m["ratio_sum"]), want["ratio"], rtol=1e-5)
  means = loss.metric_means(m, count)
  np.testing.assert_allclose(
      float(means["clip_fraction"]), want["clipped"] / want["count"], rtol=1e-6
  )
  np.testing.assert_allclose(float(means["ratio_mean"]), want["ratio"] / want["count"], rtol=1e-5)


# (log ratio, advantage, expected d loss / d logp): inside the range the gradient
# is -A*rho; outside it is 0 when the clip binds in the direction that matters
# (rho high with A > 0, rho low with A < 0) and -A*rho otherwise.
_GRAD_CASES = {
    "inside_pos": (0.1, 1.5, -1.5 * np.exp(0.1)),
    "inside_neg": (-0.1, -1.5, 1.5 * np.exp(-0.1)),
    "above_pos_clipped": (0.5, 1.5, 0.0),
    "above_neg_unclipped": (0.5, -1.5, 1.5 * np.exp(0.5)),
    "below_neg_clipped": (-0.5, -1.5, 0.0),
    "below_pos_unclipped": (-0.5, 1.5, -1.5 * np.exp(-0.5)),
}


@pytest.mark.parametrize("case", sorted(_GRAD_CASES))
def test_surrogate_gradient_sign(case):
  log_ratio, adv, want = _GRAD_CASES[case]
  old = jnp.full((1, 2), -1.0, jnp.float32)
  mask = jnp.array([[True, False]])

  def f(logp):
    return loss.clipped_surrogate_loss(logp, old, jnp.array([adv], jnp.float32), mask)[0]

  logp = old + jnp.array([[log_ratio, 3.0]], jnp.float32)
  grad = np.asarray(jax.grad(f)(logp))
  np.testing.assert_allclose(grad[0, 0], want, rtol=1e-5, atol=1e-7)
  assert grad[0, 1] == 0.0  # masked token
  if want != 0.0:
    assert np.sign(grad[0, 0]) == -np.sign(adv)  # descent raises logp iff A > 0


def test_surrogate_log_ratio_clip_keeps_everything_finite():
  old = jnp.array([[-1.0, -1.0, -1.0]], jnp.float32)
  logp = jnp.array([[80.0, -1.0, jnp.nan]], jnp.float32)  # huge ratio, normal, NaN padding
  mask = jnp.array([[True, True, False]])

  def f(lp):
    return loss.clipped_surrogate_loss(lp, old, jnp.array([-2.0]), mask, log_ratio_clip=20.0)[0]

  value = float(f(logp))
  np.testing.assert_allclose(value, 2.0 * np.exp(20.0) + 2.0, rtol=1e-5)
  grad = np.asarray(jax.grad(f)(logp))
  assert np.all(np.isfinite(grad))
  assert grad[0, 0] == 0.0  # beyond the log-ratio bound
  assert grad[0, 2] == 0.0


def test_surrogate_aggregates_by_tokens_across_microbatches():
  rng = np.random.default_rng(5)
  old = rng.normal(-1, 1, (4, 6)).astype(np.float32)
  logp = (old + rng.normal(0, 0.2, (4, 6))).astype(np.float32)
  adv = rng.normal(0, 1, 4).astype(np.float32)
  mask = np.arange(6)[None, :] < np.array([[6], [1], [3], [0]])
  full_sum, full_count, _ = loss.clipped_surrogate_loss(logp, old, adv, mask)
  parts = [
      loss.clipped_surrogate_loss(logp[i : i + 2], old[i : i + 2], adv[i : i + 2], mask[i : i + 2])
      for i in (0, 2)
  ]
  np.testing.assert_allclose(float(sum(p[0] for p in parts)), float(full_sum), rtol=1e-6)
  assert float(sum(p[1] for p in parts)) == float(full_count) == mask.sum()


# ----------------------------------------------------------------------------
# KL, entropy bonus, masks
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_kl_penalty_matches_numpy(estimator):
  rng = np.random.default_rng(6)
  logp = rng.normal(-2, 1, (3, 7)).astype(np.float32)
  ref = (logp + rng.normal(0, 0.5, (3, 7))).astype(np.float32)
  mask = rng.random((3, 7)) > 0.3
  lp64, ref64 = logp.astype(np.float64), ref.astype(np.float64)
  if estimator == "k1":
    per_tok = lp64 - ref64
  else:
    per_tok = np.exp(ref64 - lp64) - (ref64 - lp64) - 1.0
    assert np.all(np.asarray(loss.kl_per_token(logp, ref, "k3")) >= 0)
  got = loss.kl_penalty(jnp.asarray(logp), jnp.asarray(ref), jnp.asarray(mask), estimator)
  np.testing.assert_allclose(float(got), per_tok[mask].sum(), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="estimator"):
    loss.kl_penalty(jnp.asarray(logp), jnp.asarray(ref), jnp.asarray(mask), "k2")


def test_entropy_bonus_is_masked_sum():
  ent = np.arange(12, dtype=np.float32).reshape(3, 4)
  mask = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 1, 1, 1]], bool)
  assert float(loss.entropy_bonus(jnp.asarray(ent), jnp.asarray(mask))) == 0 + 1 + 9 + 10 + 11
