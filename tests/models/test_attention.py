"""Blockwise (online-softmax) attention against the dense score tensor, values and gradients.

The dense reference is the former `models/transformer.py` code: softmax over the whole
`[b, kv, g, t, s]` tensor, differentiated by `jax.grad`. The blockwise version must agree
within 1e-5 in float32 on every mask the model builds (causal in positions, sliding
windows shorter and longer than the row, left/right padding, cache slots never filled),
with and without a score softcap, for the query-per-KV-head ratios of the real families.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from absolute_zero.models import attention as att

TOL = 1e-5


def _inputs(rng, b, t, s, kv, g, hd):
  q = jnp.asarray(rng.normal(size=(b, t, kv, g, hd)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(b, s, kv, hd)), jnp.float32)
  v = jnp.asarray(rng.normal(size=(b, s, kv, hd)), jnp.float32)
  return q, k, v


def _ragged(t):
  """Positions and validity of 4 rows as the model builds them: a right-padded training
  row (positions keep counting), a left-padded prompt (positions start after the pad),
  a full row and an all-padding row. Returns q_pos [4, t], valid [4, t]."""
  right = 2 * t // 3
  left = t // 4
  idx = np.arange(t)
  pos = np.stack([idx, np.maximum(idx - left, 0), idx, idx])
  valid = np.stack([idx < right, idx >= left, np.ones(t, bool), np.zeros(t, bool)])
  return jnp.asarray(pos, jnp.int32), jnp.asarray(valid)


def _compare(q, k, v, q_pos, k_pos, k_valid, q_valid, block, locals_=(True,), **kw):
  """Max |blockwise - dense| of the outputs and of d/d(q, k, v) of a weighted sum over
  the real query rows (padding queries' outputs are unused by the model), maximised over
  `locals_` (a traced operand, so one compilation serves each)."""
  weights = jnp.asarray(np.random.default_rng(0).normal(size=q.shape), jnp.float32)
  keep = q_valid[:, :, None, None, None]

  def loss(impl):
    def f(q, k, v, local):
      out = att.attention(
          q, k, v, q_pos, k_pos, k_valid, impl=impl, block_size=block, local=local, **kw
      )
      return jnp.sum(jnp.where(keep, out * weights, 0.0)), out

    return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))

  dense_fn, block_fn = loss("dense"), loss("blockwise")
  value_err = grad_err = 0.0
  for local in locals_:
    value, grads = _errors(
        dense_fn, block_fn, q, k, v, jnp.asarray(local), keep, q_pos, k_pos, k_valid
    )
    value_err, grad_err = max(value_err, value), max(grad_err, grads)
  return value_err, grad_err


def _errors(dense_fn, block_fn, q, k, v, local, keep, q_pos, k_pos, k_valid):
  (_, dense), g_dense = dense_fn(q, k, v, local)
  (_, block_out), g_block = block_fn(q, k, v, local)
  # Query rows that see no key at all (whole-padding rows) come out as zeros.
  unseen = ~jnp.any(att.visible(q_pos, k_pos, k_valid, None), axis=-1)  # [b, t]
  assert bool(jnp.any(unseen))
  assert float(jnp.max(jnp.where(unseen[:, :, None, None, None], jnp.abs(block_out), 0.0))) == 0.0
  value_err = float(jnp.max(jnp.where(keep, jnp.abs(dense - block_out), 0.0)))
  grad_err = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(g_dense, g_block))
  return value_err, grad_err


@pytest.mark.parametrize(
    "group,window,softcap",
    [
        (1, None, None),  # plain causal, multi-head attention
        (3, 5, None),  # window shorter than the row
        (4, 64, 3.0),  # window longer than the row, softcap
        (7, 5, 30.0),  # short window and softcap
    ],
)
def test_blockwise_equals_dense_on_ragged_rows(group, window, softcap):
  rng = np.random.default_rng(group)
  t = 37  # not a multiple of the block: padded blocks must stay invisible
  q, k, v = _inputs(rng, 4, t, t, 2, group, 8)
  pos, valid = _ragged(t)
  value_err, grad_err = _compare(
      q, k, v, pos, pos, valid, valid, 8, scale=0.35, window=window, softcap=softcap
  )
  assert value_err <= TOL and grad_err <= TOL, (value_err, grad_err)


def test_prefill_into_cache_slots_with_a_traced_window():
  """Prefill layout: t queries, s > t cache slots of which only the first t are filled;
  `local` is a traced bool as in the scanned layers (True and False both checked)."""
  rng = np.random.default_rng(5)
  t, s = 12, 29
  q, k, v = _inputs(rng, 4, t, s, 1, 4, 8)
  pos, valid = _ragged(t)
  k_pos = jnp.pad(pos, ((0, 0), (0, s - t)))  # unfilled slots: position 0, invalid
  k_valid = jnp.pad(valid, ((0, 0), (0, s - t)))
  value_err, grad_err = _compare(
      q, k, v, pos, k_pos, k_valid, valid, 4, scale=0.25, window=3, locals_=(True, False)
  )
  assert value_err <= TOL and grad_err <= TOL, (value_err, grad_err)


def test_index_space_path_matches_positions():
  """The cuDNN path's translation (is_causal, key lengths, local_window_size) checked
  through jax.nn.dot_product_attention's XLA implementation on training-layout rows."""
  rng = np.random.default_rng(7)
  t = 16
  q, k, v = _inputs(rng, 2, t, t, 2, 3, 8)
  pos = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (2, t))
  valid = jnp.asarray(np.arange(t)[None] < np.array([[11], [16]]))
  assert bool(att._index_space_rows(pos, pos, valid))
  assert not bool(att._index_space_rows(pos, pos, valid[:, ::-1]))  # left padding
  ours = att._index_space_attention(q, k, v, valid, 4, True, 0.3, "xla")
  ref = att.attention(q, k, v, pos, pos, valid, scale=0.3, window=4, impl="dense")
  keep = valid[:, :, None, None, None]
  assert float(jnp.max(jnp.where(keep, jnp.abs(ours - ref), 0.0))) <= TOL


def test_cudnn_is_refused_where_it_cannot_run():
  if jax.default_backend() == "gpu":
    pytest.skip("checks the refusal off GPU")
  q = jnp.zeros((1, 4, 1, 1, 8))
  pos = jnp.zeros((1, 4), jnp.int32)
  with pytest.raises(ValueError, match="cudnn"):
    att.attention(q, q[:, :, :, 0], q[:, :, :, 0], pos, pos, pos == 0, scale=1.0, impl="cudnn")
  with pytest.raises(ValueError, match="unknown attention impl"):
    att.attention(q, q[:, :, :, 0], q[:, :, :, 0], pos, pos, pos == 0, scale=1.0, impl="flash")


def test_gradient_memory_grows_linearly_with_length():
  """XLA's compiled memory analysis of the gradient through two scanned layers (positions
  are loop constants, as in the model): the dense temporaries grow ~4x per doubling
  (scores), the blockwise ones ~2x (no block's scores or masks kept for the backward;
  measured 3.6x and 1.8x from 1024 to 2048 tokens; without the optimization barrier in
  `_blockwise_fwd`, scan hoisted every block's masks: 3.6x)."""

  def temp_bytes(impl, t):
    q = jax.ShapeDtypeStruct((1, t, 1, 2, 16), jnp.float32)
    w = jax.ShapeDtypeStruct((2, 16, 16), jnp.float32)
    pos = jnp.arange(t, dtype=jnp.int32)[None]
    valid = jnp.ones((1, t), bool)

    def loss(q, w):
      def layer(x, wi):
        k = x[:, :, :, 0] @ wi  # [1, t, 1, 16]
        return att.attention(x, k, k, pos, pos, valid, scale=0.25, impl=impl, block_size=128), None

      return jnp.sum(jax.lax.scan(layer, q, w)[0] ** 2)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return grad.lower(q, w).compile().memory_analysis().temp_size_in_bytes

  dense = temp_bytes("dense", 2048) / temp_bytes("dense", 1024)
  block = temp_bytes("blockwise", 2048) / temp_bytes("blockwise", 1024)
  assert dense > 2.8 and block < 2.2, (dense, block)


def test_auto_is_dense_for_short_rows_and_blockwise_for_long_ones():
  """ "auto" off GPU: the dense path while q_len x kv_len <= DENSE_MAX_SCORES (faster on
  CPU for the default run's rows), blockwise beyond (linear memory); identical outputs."""
  rng = np.random.default_rng(3)

  def run(t, impl):
    q = jnp.asarray(rng.normal(size=(1, t, 1, 2, 8)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(1, t, 1, 8)), jnp.float32)
    pos = jnp.arange(t, dtype=jnp.int32)[None]
    valid = jnp.ones((1, t), bool)
    return jax.jit(
        lambda q, k: att.attention(q, k, k, pos, pos, valid, scale=0.3, impl=impl, block_size=256)
    )(q, k)

  short = 1024  # exactly DENSE_MAX_SCORES
  long = 1040
  assert short * short == att.DENSE_MAX_SCORES < long * long
  for t, chosen, other in ((short, "dense", "blockwise"), (long, "blockwise", "dense")):
    state = rng.bit_generator.state
    auto = run(t, "auto")
    rng.bit_generator.state = state
    expected = run(t, chosen)
    rng.bit_generator.state = state
    np.testing.assert_array_equal(np.asarray(auto), np.asarray(expected))
    rng.bit_generator.state = state
    np.testing.assert_allclose(np.asarray(auto), np.asarray(run(t, other)), atol=1e-5)


# ---------------------------------------------------------------------------- splash (TPU)
# The Pallas splash kernel runs here in Pallas' interpreter (att.SPLASH_INTERPRET), which
# executes the same kernel body (block maps, segment-id masking, online softmax, backward
# kernels) on CPU, so its translation of our masks is checked against the dense reference.


@pytest.fixture
def splash_interpret(monkeypatch):
  if jax.default_backend() != "tpu":
    monkeypatch.setattr(att, "SPLASH_INTERPRET", True)


@pytest.mark.parametrize(
    "group,window,softcap,locals_",
    [
        (1, None, None, (True,)),  # plain causal
        (3, 37, None, (True, False)),  # window shorter than the row, traced per-layer switch
        (7, 5, 30.0, (True,)),  # short window (inside one block) and softcap
    ],
)
def test_splash_equals_dense_on_training_rows(splash_interpret, group, window, softcap, locals_):
  """Training-layout rows (positions 0..t-1, real tokens first, ragged lengths), t = 200:
  padded to two 128-token blocks, so block skipping and the padding segment both count."""
  rng = np.random.default_rng(10 + group)
  b, t = 2, 200
  q, k, v = _inputs(rng, b, t, t, 1, group, 16)
  pos = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
  valid = jnp.asarray(np.arange(t)[None] < np.array([[t], [131]]))
  assert bool(att._index_space_rows(pos, pos, valid))
  keep = valid[:, :, None, None, None]
  weights = jnp.asarray(rng.normal(size=q.shape), jnp.float32)

  def loss(impl):
    def f(q, k, v, local):
      out = att.attention(
          q, k, v, pos, pos, valid, impl=impl, scale=0.3, window=window, softcap=softcap,
          local=local,
      )  # fmt: skip
      return jnp.sum(jnp.where(keep, out * weights, 0.0)), out

    return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))

  dense_fn, splash_fn = loss("dense"), loss("splash")
  for local in locals_:
    (_, want), g_want = dense_fn(q, k, v, jnp.asarray(local))
    (_, got), g_got = splash_fn(q, k, v, jnp.asarray(local))
    value_err = float(jnp.max(jnp.where(keep, jnp.abs(want - got), 0.0)))
    grad_err = max(float(jnp.max(jnp.abs(a - c))) for a, c in zip(g_want, g_got))
    assert value_err <= TOL and grad_err <= 2 * TOL, (local, value_err, grad_err)


def test_splash_sends_other_rows_to_blockwise(splash_interpret):
  """Left-padded prompts and cache slots are not index-space rows: "splash" must give the
  dense answer through its runtime fallback, and refuse q_len != kv_len outright."""
  rng = np.random.default_rng(3)
  t = 24
  q, k, v = _inputs(rng, 4, t, t, 2, 2, 8)
  pos, valid = _ragged(t)
  assert not bool(att._index_space_rows(pos, pos, valid))
  got = att.attention(q, k, v, pos, pos, valid, scale=0.5, window=6, impl="splash")
  want = att.attention(q, k, v, pos, pos, valid, scale=0.5, window=6, impl="dense")
  keep = valid[:, :, None, None, None]
  assert float(jnp.max(jnp.where(keep, jnp.abs(got - want), 0.0))) <= TOL
  with pytest.raises(ValueError, match="splash"):
    att.attention(q[:, :8], k, v, pos[:, :8], pos, valid, scale=0.5, impl="splash")


def test_splash_is_refused_off_tpu():
  if jax.default_backend() == "tpu":
    pytest.skip("checks the refusal off TPU")
  q = jnp.zeros((1, 4, 1, 1, 8))
  pos = jnp.zeros((1, 4), jnp.int32)
  with pytest.raises(ValueError, match="needs one TPU device"):
    att.attention(q, q[:, :, :, 0], q[:, :, :, 0], pos, pos, pos == 0, scale=1.0, impl="splash")
