"""Tests for absolute_zero.loss against independent float64 NumPy references."""

from __future__ import annotations

import functools

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


def np_log_softmax_stats(hidden, unembedding, targets, temperature, softcap):
  h = np.asarray(hidden, np.float64)
  e = np.asarray(unembedding, np.float64)
  logits = np.einsum("btd,vd->btv", h, e)
  if softcap is not None:
    logits = softcap * np.tanh(logits / softcap)
  temp = np.asarray(temperature, np.float64)
  temp = temp[:, None, None] if temp.ndim == 1 else temp
  z = logits / temp
  z = z - z.max(-1, keepdims=True)
  logp_all = z - np.log(np.exp(z).sum(-1, keepdims=True))
  logp = np.take_along_axis(logp_all, np.asarray(targets)[..., None], -1)[..., 0]
  entropy = -(np.exp(logp_all) * logp_all).sum(-1)
  return logp, entropy


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
# Chunked log-probs
# ----------------------------------------------------------------------------

B, T, D, V = 3, 5, 8, 37


def _lm_inputs(seed=0):
  rng = np.random.default_rng(seed)
  hidden = rng.normal(0, 1.0, (B, T, D)).astype(np.float32)
  unembedding = rng.normal(0, 0.7, (V, D)).astype(np.float32)
  targets = rng.integers(0, V, (B, T)).astype(np.int32)
  return hidden, unembedding, targets


AXES = ["vocab", "tokens"]


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("chunk_size", [1, 7, 1000])  # V=37, B*T=15: 7 divides neither
@pytest.mark.parametrize("temperature,softcap", [(1.0, None), (0.7, None), (1.3, 4.0)])
def test_chunked_logprobs_match_numpy(axis, chunk_size, temperature, softcap):
  hidden, unembedding, targets = _lm_inputs()
  logp, entropy = loss.chunked_token_logprobs(
      hidden,
      unembedding,
      targets,
      temperature,
      chunk_size,
      softcap,
      return_entropy=True,
      chunk_axis=axis,
  )
  want_logp, want_ent = np_log_softmax_stats(hidden, unembedding, targets, temperature, softcap)
  assert logp.shape == (B, T) and logp.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(logp), want_logp, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(entropy), want_ent, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("axis", AXES)
def test_chunked_logprobs_per_sequence_temperature_and_jit(axis):
  hidden, unembedding, targets = _lm_inputs(1)
  temps = np.array([0.5, 1.0, 2.0], np.float32)
  static = ("chunk_size", "logit_softcap", "return_entropy", "chunk_axis")
  f = jax.jit(loss.chunked_token_logprobs, static_argnames=static)
  logp, entropy = f(hidden, unembedding, targets, temps, chunk_size=4, chunk_axis=axis)
  assert entropy is None
  want, _ = np_log_softmax_stats(hidden, unembedding, targets, temps, None)
  np.testing.assert_allclose(np.asarray(logp), want, atol=1e-5, rtol=1e-5)


def _unchunked(hidden, unembedding, targets, temperature, softcap):
  logits = jnp.einsum("btd,vd->btv", hidden, unembedding)
  if softcap is not None:
    logits = softcap * jnp.tanh(logits / softcap)
  logp_all = jax.nn.log_softmax(logits / temperature, axis=-1)
  logp = jnp.take_along_axis(logp_all, targets[..., None], -1)[..., 0]
  entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, -1)
  return logp, entropy


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("chunk_size,softcap", [(1, None), (4, 3.0), (6, None), (64, 3.0)])
def test_chunked_logprobs_gradient_matches_unchunked(axis, chunk_size, softcap):
  hidden, unembedding, targets = _lm_inputs(2)
  rng = np.random.default_rng(3)
  w_logp = jnp.asarray(rng.normal(size=(B, T)), jnp.float32)
  w_ent = jnp.asarray(rng.normal(size=(B, T)), jnp.float32)

  def objective(fn, h, e, temp):
    logp, ent = fn(h, e, temp)
    return jnp.sum(w_logp * logp) + 0.1 * jnp.sum(w_ent * ent)

  chunked = lambda h, e, t: loss.chunked_token_logprobs(  # noqa: E731
      h, e, targets, t, chunk_size, softcap, return_entropy=True, chunk_axis=axis
  )
  dense = lambda h, e, t: _unchunked(h, e, targets, t, softcap)  # noqa: E731
  temp = jnp.float32(0.8)
  g_chunk = jax.grad(functools.partial(objective, chunked), argnums=(0, 1, 2))(
      hidden, unembedding, temp
  )
  g_dense = jax.grad(functools.partial(objective, dense), argnums=(0, 1, 2))(
      hidden, unembedding, temp
  )
  for a, b in zip(g_chunk, g_dense):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("axis,chunk", [("vocab", 256), ("tokens", 32)])
def test_chunked_logprobs_memory_scales_with_chunk(axis, chunk):
  """Compiled forward+backward must not hold a [B*T, V] logits buffer."""
  batch, seq, dim, vocab = 4, 128, 16, 8192
  h = jnp.zeros((batch, seq, dim), jnp.float32)
  e = jnp.zeros((vocab, dim), jnp.float32)
  tgt = jnp.zeros((batch, seq), jnp.int32)
  full_logits_bytes = batch * seq * vocab * 4

  def temp_bytes(chunk, axis):
    f = lambda h, e: loss.chunked_token_logprobs(h, e, tgt, 1.0, chunk, chunk_axis=axis)[0].sum()  # noqa: E731
    compiled = jax.jit(jax.grad(f, argnums=(0, 1))).lower(h, e).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
      pytest.skip("backend gives no memory analysis")
    return analysis.temp_size_in_bytes

  chunked, whole = temp_bytes(chunk, axis), temp_bytes(vocab, "vocab")
  assert chunked < full_logits_bytes / 4, (chunked, full_logits_bytes)
  assert whole >= full_logits_bytes  # sanity: the analysis does see the big buffer


def test_chunked_logprobs_bad_input():
  hidden, unembedding, targets = _lm_inputs()
  with pytest.raises(ValueError, match="unembedding"):
    loss.chunked_token_logprobs(hidden, unembedding[:, :4], targets, 1.0, 4)
  with pytest.raises(ValueError, match="chunk_size"):
    loss.chunked_token_logprobs(hidden, unembedding, targets, 1.0, 0)
  with pytest.raises(ValueError, match="temperature"):
    loss.chunked_token_logprobs(hidden, unembedding, targets, np.ones(7), 4)
  with pytest.raises(ValueError, match="chunk_axis"):
    loss.chunked_token_logprobs(hidden, unembedding, targets, 1.0, 4, chunk_axis="time")


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
