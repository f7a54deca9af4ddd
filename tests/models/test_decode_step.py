"""`transformer.decode_step` (per-layer cache, unrolled layers) against the scanned trunk
with the stacked cache: the same hidden state and the same cache after each step, with
full-length caches and with local layers holding a ring of their window's last slots."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from absolute_zero.models import get_config, init_params
from absolute_zero.models.transformer import (
    KVCache,
    Transformer,
    decode_step,
    init_cache,
    ring_cache,
    ring_slots,
    split_cache,
    split_layer_params,
)


def _rings(cache: KVCache, sizes, last: int) -> KVCache:
  """Per-layer cache with each layer cut to its size (a ring when shorter than the row)."""

  def cut(xs):
    return tuple(
        ring_cache(x, last, n) if n < x.shape[1] else x for x, n in zip(xs, sizes, strict=True)
    )

  return cache._replace(k=cut(cache.k), v=cut(cache.v))


@pytest.mark.parametrize(
    "name,ring",
    [("tiny-gemma3", False), ("tiny-gemma3", True), ("tiny-qwen2", False)],
)  # window + softcap (full caches, then local rings of 8 slots); GQA + bias
def test_decode_step_matches_the_stacked_trunk(name, ring):
  config = get_config(name)
  params = init_params(config, jax.random.key(0))
  rng = np.random.default_rng(0)
  batch, slots, prompt = 3, 24, 14  # slots beyond the window (8 for tiny-gemma3)
  # A prefilled stacked cache with left padding (row 1 starts 5 slots in), as the sampler has.
  tokens = jnp.asarray(rng.integers(3, config.vocab_size, (batch, prompt)), jnp.int32)
  valid = np.ones((batch, prompt), bool)
  valid[1, :5] = False
  positions = np.maximum(np.cumsum(valid, axis=1) - 1, 0).astype(np.int32)
  model = Transformer(config)
  stacked = init_cache(config, batch, slots)
  _, stacked = model.apply(
      {"params": params}, tokens, jnp.asarray(positions), jnp.asarray(valid), cache=stacked
  )
  per_layer = split_cache(stacked)
  assert per_layer.k[0].shape == (batch * config.num_kv_heads, slots, config.head_dim)
  sizes = ring_slots(config, slots) if ring else (slots,) * config.num_layers
  if ring:
    assert sorted(set(sizes)) == [config.sliding_window, slots]  # local rings, global rows
    per_layer = _rings(per_layer, sizes, prompt - 1)
    assert [a.shape[1] for a in per_layer.k] == list(sizes)
  step = jax.jit(lambda p, t, pos, c, i: decode_step(p, t, pos, c, i, config))
  split_params = split_layer_params(params, config)
  ref_step = jax.jit(
      lambda p, t, pos, c, i: model.apply(
          {"params": p}, t, pos, jnp.ones_like(t, bool), cache=c, cache_index=i
      )
  )
  position = jnp.asarray(positions[:, -1] + 1)[:, None]
  for i in range(prompt, slots):
    token = jnp.asarray(rng.integers(3, config.vocab_size, (batch, 1)), jnp.int32)
    ref_hidden, stacked = ref_step(params, token, position, stacked, jnp.int32(i))
    hidden, per_layer = step(split_params, token, position, per_layer, jnp.int32(i))
    np.testing.assert_allclose(np.asarray(hidden), np.asarray(ref_hidden), atol=2e-5, rtol=2e-5)
    position = position + 1
  again = _rings(split_cache(stacked), sizes, slots - 1)
  for a, b in zip(per_layer.k + per_layer.v, again.k + again.v, strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5, rtol=2e-5)
  np.testing.assert_array_equal(np.asarray(per_layer.valid), np.asarray(stacked.valid))
  np.testing.assert_array_equal(np.asarray(per_layer.positions), np.asarray(stacked.positions))
