"""Causal-block dense attention (`attention.causal_dense_attention`) and who uses it.

The reference is plain `dense_attention` (the whole score tensor). Skipping the score
blocks above the diagonal must change nothing for real queries, values or gradients, on
the rows the model builds (right-padded training rows, left-padded prompts, full rows,
all-padding rows), with windows, softcaps and query groups; it is a caller's promise, so
rows that break it (packed sequences with restarting positions) are shown to differ. The
wiring: the sampler's prefill and the learner's forward promise it (the blocks run, and
the model's hidden states equal the plain forward's), `Transformer` does not by default.
`CAUSAL_BLOCK` is shrunk so short rows split into several uneven blocks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from absolute_zero import sharding
from absolute_zero.batching import BatchShapes, build_train_batch
from absolute_zero.learner import LearnerConfig, token_logprobs
from absolute_zero.models import attention as att
from absolute_zero.models import get_config, init_params
from absolute_zero.models.transformer import Transformer, forward
from absolute_zero.sampling import decode as dec
from absolute_zero.sampling.padding import left_pad

TOL = 1e-5


@pytest.fixture
def small_blocks(monkeypatch):
  monkeypatch.setattr(att, "CAUSAL_BLOCK", 8)


def _ragged(t):
  """4 rows: right-padded training row, left-padded prompt (padding at position 0), full
  row, all padding. Returns positions [4, t] int32, valid [4, t] bool."""
  idx = np.arange(t)
  left = t // 4
  pos = np.stack([idx, np.maximum(idx - left, 0), idx, idx])
  valid = np.stack([idx < 2 * t // 3, idx >= left, np.ones(t, bool), np.zeros(t, bool)])
  return jnp.asarray(pos, jnp.int32), jnp.asarray(valid)


def _value_and_grads(q, k, v, pos, valid, causal_slots, **kw):
  weights = jnp.asarray(np.random.default_rng(1).normal(size=q.shape), jnp.float32)
  keep = valid[:, :, None, None, None]  # padding queries' outputs are unused

  def f(q, k, v):
    out = att.attention(q, k, v, pos, pos, valid, impl="dense", causal_slots=causal_slots, **kw)
    return jnp.sum(jnp.where(keep, out * weights, 0.0)), out

  (_, out), grads = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))(q, k, v)
  return jnp.where(keep, out, 0.0), grads


def test_block_spans_cover_the_row_in_uneven_blocks(small_blocks):
  assert att.causal_block_spans(7) == [(0, 7)]  # shorter than two blocks: one
  assert att.causal_block_spans(37) == [(0, 9), (9, 18), (18, 27), (27, 37)]
  spans = att.causal_block_spans(1000)
  assert len(spans) == att.MAX_CAUSAL_BLOCKS and spans[0][0] == 0 and spans[-1][1] == 1000
  assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize(
    "group,window,softcap", [(1, None, None), (3, 5, None), (4, 64, 3.0), (2, 11, 30.0)]
)
def test_causal_blocks_equal_dense_on_the_model_rows(small_blocks, group, window, softcap):
  t = 37
  rng = np.random.default_rng(group)
  q = jnp.asarray(rng.normal(size=(4, t, 2, group, 8)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(4, t, 2, 8)), jnp.float32)
  v = jnp.asarray(rng.normal(size=(4, t, 2, 8)), jnp.float32)
  pos, valid = _ragged(t)
  kw = dict(scale=0.35, window=window, softcap=softcap)
  dense, dense_grads = _value_and_grads(q, k, v, pos, valid, False, **kw)
  blocks, block_grads = _value_and_grads(q, k, v, pos, valid, True, **kw)
  assert float(jnp.max(jnp.abs(dense))) > 0.1  # real outputs, not all masked
  np.testing.assert_allclose(blocks, dense, atol=TOL, rtol=0)
  for a, b in zip(block_grads, dense_grads):
    assert float(jnp.max(jnp.abs(b))) > 0.0
    np.testing.assert_allclose(a, b, atol=TOL, rtol=0)


def test_rows_that_break_the_promise_differ(small_blocks):
  """Two sequences packed in one row, positions restarting: the second one's first token
  (slot 20, position 0) is visible to the first one's queries by position, and the blocks
  skip it. Why the model only promises `causal_slots` for rows it builds itself."""
  t = 40
  rng = np.random.default_rng(0)
  q = jnp.asarray(rng.normal(size=(1, t, 1, 1, 8)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(1, t, 1, 8)), jnp.float32)
  v = jnp.asarray(rng.normal(size=(1, t, 1, 8)), jnp.float32)
  pos = jnp.asarray(np.concatenate([np.arange(20), np.arange(20)])[None], jnp.int32)
  valid = jnp.ones((1, t), bool)
  dense, _ = _value_and_grads(q, k, v, pos, valid, False, scale=0.35)
  blocks, _ = _value_and_grads(q, k, v, pos, valid, True, scale=0.35)
  assert float(jnp.max(jnp.abs(blocks - dense))) > 1e-2


def _counting(monkeypatch):
  calls = []
  real = att.causal_dense_attention

  def spy(q, *args, **kwargs):
    calls.append(q.shape[1])
    return real(q, *args, **kwargs)

  monkeypatch.setattr(att, "causal_dense_attention", spy)
  return calls


def test_prefill_and_learner_use_the_blocks_and_match_the_plain_forward(small_blocks, monkeypatch):
  config = get_config("tiny-gemma3")  # local layers with a window of 8, softcaps
  params = init_params(config, jax.random.key(0))
  calls = _counting(monkeypatch)
  assert Transformer(config).causal_slots is False  # the default promises nothing

  # Prefill: left-padded prompts of different lengths, the sampler's own padding.
  prompts = [[2] + list(range(30, 30 + n)) for n in (33, 12, 40)]
  tokens, positions, valid, _ = left_pad(prompts, 4, 48, 0)
  hidden, cache = jax.jit(
      lambda p: dec.prefill(
          p, tokens, positions, valid, config=config, mesh=sharding.single_device_mesh()
      )
  )(params)
  assert calls and set(calls) == {48}, calls  # the scanned layer (traced once or twice)
  plain = forward(params, tokens, positions, valid, config)
  np.testing.assert_allclose(hidden, plain[:, -1], atol=TOL, rtol=0)
  # The cache holds every real slot's keys (what decode attends to): as a plain prefill's.
  plain_hidden, plain_cache = Transformer(config).apply(
      {"params": params}, tokens, positions, valid, cache=dec.init_cache(config, 4, 48)
  )
  np.testing.assert_allclose(hidden, plain_hidden[:, -1], atol=TOL, rtol=0)
  real = np.asarray(valid)[None, :, :, None, None]
  for got, want in ((cache.k, plain_cache.k), (cache.v, plain_cache.v)):
    np.testing.assert_allclose(np.where(real, got, 0), np.where(real, want, 0), atol=TOL, rtol=0)

  # The learner's forward: right-padded rows from `batching`.
  calls.clear()
  batch = build_train_batch(
      [[2, 5, 6], [2] + list(range(40, 60))],
      [list(range(70, 95)), [7, 8]],
      [1.0, -1.0],
      [[0.0] * 25, [0.0] * 2],
      shapes=BatchShapes(length_buckets=(48,), row_multiple=2),
  )
  mesh = sharding.single_device_mesh()
  logp, _ = token_logprobs(params, jax.tree.map(jnp.asarray, batch), config, LearnerConfig(), mesh)
  assert calls and set(calls) == {48}, calls
  hidden = forward(params, batch.tokens, batch.positions, batch.valid, config)
  head = params["embedding"]
  logits = np.asarray(jnp.einsum("btd,vd->btv", hidden, head), np.float64)
  if config.final_logit_softcap:
    cap = config.final_logit_softcap
    logits = cap * np.tanh(logits / cap)
  logits -= logits.max(-1, keepdims=True)
  ref = np.take_along_axis(logits, batch.targets[..., None], -1)[..., 0] - np.log(
      np.exp(logits).sum(-1)
  )
  mask = np.asarray(batch.loss_mask)
  np.testing.assert_allclose(np.where(mask, logp, 0), np.where(mask, ref, 0), atol=1e-4)
