"""Tests for absolute_zero.logprob_heads against float64 NumPy references and autodiff."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from absolute_zero import logprob_heads


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


# None: the full head ([B, T, V] at once); 1000 > V: one chunk. V=37: 7 does not divide it.
@pytest.mark.parametrize("chunk_size", [None, 1, 7, 1000])
@pytest.mark.parametrize("temperature,softcap", [(1.0, None), (0.7, None), (1.3, 4.0)])
def test_chunked_logprobs_match_numpy(chunk_size, temperature, softcap):
  hidden, unembedding, targets = _lm_inputs()
  logp, entropy = logprob_heads.token_logprobs(
      hidden,
      unembedding,
      targets,
      temperature,
      chunk_size,
      softcap,
      return_entropy=True,
  )
  want_logp, want_ent = np_log_softmax_stats(hidden, unembedding, targets, temperature, softcap)
  assert logp.shape == (B, T) and logp.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(logp), want_logp, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(entropy), want_ent, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunk_size", [None, 4])
def test_chunked_logprobs_per_sequence_temperature_and_jit(chunk_size):
  hidden, unembedding, targets = _lm_inputs(1)
  temps = np.array([0.5, 1.0, 2.0], np.float32)
  static = ("vocab_chunk_size", "logit_softcap", "return_entropy")
  f = jax.jit(logprob_heads.token_logprobs, static_argnames=static)
  logp, entropy = f(hidden, unembedding, targets, temps, vocab_chunk_size=chunk_size)
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


@pytest.mark.parametrize("chunk_size,softcap", [(1, None), (4, 3.0), (6, None), (64, 3.0)])
def test_chunked_logprobs_gradient_matches_unchunked(chunk_size, softcap):
  hidden, unembedding, targets = _lm_inputs(2)
  rng = np.random.default_rng(3)
  w_logp = jnp.asarray(rng.normal(size=(B, T)), jnp.float32)
  w_ent = jnp.asarray(rng.normal(size=(B, T)), jnp.float32)

  def objective(fn, h, e, temp):
    logp, ent = fn(h, e, temp)
    return jnp.sum(w_logp * logp) + 0.1 * jnp.sum(w_ent * ent)

  chunked = lambda h, e, t: logprob_heads.token_logprobs(  # noqa: E731
      h, e, targets, t, chunk_size, softcap, return_entropy=True
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


def test_chunked_logprobs_memory_scales_with_chunk(chunk=256):
  """Compiled forward+backward must not hold a [B*T, V] logits buffer."""
  batch, seq, dim, vocab = 4, 128, 16, 8192
  h = jnp.zeros((batch, seq, dim), jnp.float32)
  e = jnp.zeros((vocab, dim), jnp.float32)
  tgt = jnp.zeros((batch, seq), jnp.int32)
  full_logits_bytes = batch * seq * vocab * 4

  def temp_bytes(chunk):
    f = lambda h, e: logprob_heads.token_logprobs(h, e, tgt, 1.0, chunk)[0].sum()  # noqa: E731
    compiled = jax.jit(jax.grad(f, argnums=(0, 1))).lower(h, e).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
      pytest.skip("backend gives no memory analysis")
    return analysis.temp_size_in_bytes

  chunked, whole = temp_bytes(chunk), temp_bytes(vocab)
  assert chunked < full_logits_bytes / 4, (chunked, full_logits_bytes)
  assert whole >= full_logits_bytes  # sanity: the analysis does see the big buffer


def test_chunked_logprobs_bad_input():
  hidden, unembedding, targets = _lm_inputs()
  with pytest.raises(ValueError, match="unembedding"):
    logprob_heads.token_logprobs(hidden, unembedding[:, :4], targets, 1.0, 4)
  with pytest.raises(ValueError, match="chunk_size"):
    logprob_heads.token_logprobs(hidden, unembedding, targets, 1.0, 0)
  with pytest.raises(ValueError, match="temperature"):
    logprob_heads.token_logprobs(hidden, unembedding, targets, np.ones(7), 4)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("chunk,softcap", [(5, None), (16, 3.0)])
def test_fused_head_gradients_in_both_accumulator_layouts(transposed, chunk, softcap):
  """d hidden / d emb of the fused head equal autodiff of the dense objective, with the
  embedding gradient accumulated as [V, D] (other backends) or [D, V] (CPU)."""
  rng = np.random.default_rng(7)
  n, d, v, temp = 13, 6, 40, 0.7  # 13 rows: the last chunk is padded
  hidden = jnp.asarray(rng.normal(size=(n, d)), jnp.float32)
  emb = jnp.asarray(rng.normal(size=(v, d)), jnp.float32)
  targets = jnp.asarray(rng.integers(0, v, n), jnp.int32)
  weights = jnp.asarray(rng.normal(size=n), jnp.float32)

  def token_objective(logp, w):  # [1, C] each: a separable per-token objective
    return jnp.sum(w * jnp.exp(logp) + 0.5 * w * logp)

  def dense(h, e):
    logits = h @ e.T
    if softcap is not None:
      logits = softcap * jnp.tanh(logits / softcap)
    logp = jax.nn.log_softmax(logits / temp, axis=-1)
    picked = jnp.take_along_axis(logp, targets[:, None], axis=-1)[:, 0]
    return token_objective(picked[None], weights[None])

  def fused(h, e):
    return logprob_heads.fused_head_objective(
        h,
        e,
        targets,
        token_objective,
        [weights],
        temp,
        chunk,
        softcap,
        transposed_emb_grad=transposed,
    )[0]

  np.testing.assert_allclose(float(fused(hidden, emb)), float(dense(hidden, emb)), rtol=1e-5)
  got = jax.jit(jax.grad(fused, argnums=(0, 1)))(hidden, emb)
  want = jax.grad(dense, argnums=(0, 1))(hidden, emb)
  for a, b in zip(got, want):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
