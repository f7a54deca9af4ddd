"""The sampler's hand-over from prefill to decode makes no copy of the decode cache.

`start_decode` receives the keys and values already replicated to the decode rows
(`replicate_slots`, one array at a time) and must take them donated, so XLA writes the
decode state's cache into the same buffers: without the donation it allocates a second
decode cache (648 MiB for Gemma 3 270M at 32 rows x 576 slots in
experiments/bench_sampler.py) beside the first. Checked through XLA's own buffer assignment
(`memory_analysis`), on abstract shapes (nothing is allocated or run).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from absolute_zero import sharding
from absolute_zero.models import get_config
from absolute_zero.sampler import _replicate_jit, _start_jit


def test_start_decode_takes_the_replicated_cache_in_place():
  config = get_config("tiny-gemma3")
  mesh, rules = sharding.single_device_mesh(), tuple(sharding.SAMPLE_RULES)
  prompts, rows, prompt_slots, new_slots = 2, 4, 16, 8
  spec = jax.ShapeDtypeStruct
  prefill_kv = spec(
      (config.num_layers, prompts, prompt_slots, config.num_kv_heads, config.head_dim),
      jnp.float32,
  )
  row_prompt = spec((rows,), jnp.int32)
  kv = jax.eval_shape(
      lambda x, r: _replicate_jit(x, r, new_slots=new_slots, mesh=mesh, rules=rules),
      prefill_kv,
      row_prompt,
  )
  args = (
      kv,
      kv,
      spec((prompts, prompt_slots), jnp.int32),
      spec((prompts, prompt_slots), jnp.bool_),
      spec((prompts, config.embed_dim), jnp.float32),
      row_prompt,
      spec((rows,), jnp.int32),
      spec((rows,), jnp.bool_),
      jax.eval_shape(lambda: jax.random.key(0)),
  )
  compiled = _start_jit.lower(*args, new_slots=new_slots, mesh=mesh, rules=rules).compile()
  kv_bytes = 2 * sum(int(np.prod(x.shape)) * 4 for x in jax.tree.leaves(kv))
  slots = prompt_slots + new_slots
  assert (
      kv_bytes == 2 * 4 * config.num_layers * rows * slots * config.num_kv_heads * config.head_dim
  )
  assert compiled.memory_analysis().alias_size_in_bytes == kv_bytes


def test_replicate_slots_copies_each_rows_prompt_and_appends_empty_slots():
  """Hand-computed reference: decode row r holds prompt row_prompt[r]'s slots, then zeros
  (on one device one [B * kv, P + N, hd] array per layer)."""
  mesh, rules = sharding.single_device_mesh(), tuple(sharding.SAMPLE_RULES)
  kv = np.arange(2 * 3 * 4 * 2 * 2, dtype=np.float32).reshape(2, 3, 4, 2, 2)  # L, Bp, P, kv, hd
  row_prompt = np.array([2, 2, 0, 1, 0], np.int32)
  got = _replicate_jit(kv, row_prompt, new_slots=3, mesh=mesh, rules=rules)
  assert isinstance(got, tuple) and len(got) == 2
  for layer, x in enumerate(got):
    x = np.asarray(x).reshape(5, 2, 7, 2)  # [B, kv, P + N, hd]
    for r, p in enumerate(row_prompt):
      np.testing.assert_array_equal(x[r, :, :4], kv[layer, p].transpose(1, 0, 2))
    assert not x[:, :, 4:].any()


# ------------------------------------------------------------------------------------------
# The decode loop's per-layer weights: views of loaded host params, not a copy per call.
#
# On one device the decode loop takes each layer's weights as separate arrays. From params
# a caller loaded (64-byte-aligned numpy, adopted by the CPU client) the sampler builds them
# as views of the stacked buffers once; otherwise the decode program slices a copy of all
# layers per call (400 MB of Gemma 3 270M in float32, for the length of the call).

_PROMPTS = [[2, 17, 301, 45], [2, 7, 7, 400, 33, 21, 9]]


def _loaded_params(config, seed: int = 0) -> dict:
  """Random params as a loader returns them: aligned numpy (hf_layout.aligned_empty)."""
  from absolute_zero.models import hf_layout, init_params

  from tests.test_sampler import varied_params

  def aligned(x):
    out = hf_layout.aligned_empty(x.shape, x.dtype)
    out[...] = x
    return out

  return jax.tree.map(lambda x: aligned(np.asarray(x)), varied_params(config, seed))


def _outputs(sampler, **kw):
  out = []
  for temperature in (0.0, 1.0):
    for c in sampler.generate(
        _PROMPTS, max_new_tokens=12, temperature=temperature, n=2, eos_token_ids=(), seed=3, **kw
    ):
      out.append((c.token_ids.tolist(), c.logprobs.tobytes()))
  return out


@pytest.fixture(scope="module")
def gemma_tiny():
  from absolute_zero.sampler import Sampler, SamplerConfig

  config = get_config("tiny-gemma3")
  options = SamplerConfig(new_token_buckets=(16,))
  host = _loaded_params(config)
  return config, host, Sampler(config, host, sampler_config=options), options


def test_loaded_params_reach_the_decode_loop_as_views_without_a_copy(gemma_tiny):
  config, host, sampler, _ = gemma_tiny
  layers = sampler._decode_params["layers"]
  assert isinstance(layers, list) and len(layers) == config.num_layers
  for i, layer in enumerate(layers):
    for (path, stacked), leaf in zip(
        jax.tree_util.tree_flatten_with_path(host["layers"])[0], jax.tree.leaves(layer)
    ):
      assert leaf.shape == stacked.shape[1:], path
      assert leaf.unsafe_buffer_pointer() == stacked.ctypes.data + i * stacked.strides[0], path
  # The stacked weights the prefill takes are the host buffers too: nothing was copied.
  for stacked, placed in zip(jax.tree.leaves(host), jax.tree.leaves(sampler.params)):
    assert placed.unsafe_buffer_pointer() == stacked.ctypes.data


def test_views_give_the_same_tokens_and_logprobs_as_the_per_call_slices(gemma_tiny):
  """Against a sampler given device-owned copies (no views: the decode program slices its
  own copy per call, the path before views existed): bit-identical results."""
  from absolute_zero.sampler import Sampler

  config, host, sampler, options = gemma_tiny
  owned = jax.tree.map(lambda x: jnp.array(x, copy=True), host)
  reference = Sampler(config, owned, sampler_config=options)
  assert not isinstance(reference._decode_params["layers"], list)  # really the other path
  assert _outputs(sampler) == _outputs(reference)


def test_a_learner_donating_the_loaded_params_corrupts_neither_side(gemma_tiny):
  """A train step that takes the same loaded host params and donates them (as the
  learner's state is donated) leaves the host buffers, and so the sampler's views, intact,
  and computes its own result correctly; the sampler then samples exactly as before."""
  config, host, sampler, _ = gemma_tiny
  before = _outputs(sampler)
  saved = jax.tree.map(np.copy, host)
  learner_params = jax.device_put(host)  # adopts the host buffers, as the sampler did
  step = jax.jit(lambda p: jax.tree.map(lambda x: x * 0.5 + 1.0, p), donate_argnums=0)
  updated = jax.block_until_ready(step(learner_params))
  host_ranges = [(x.ctypes.data, x.ctypes.data + x.nbytes) for x in jax.tree.leaves(host)]
  for new, old, x in zip(jax.tree.leaves(updated), jax.tree.leaves(saved), jax.tree.leaves(host)):
    np.testing.assert_array_equal(np.asarray(new), old * np.float32(0.5) + np.float32(1.0))
    np.testing.assert_array_equal(x, old)  # the host buffer was not written
    p = new.unsafe_buffer_pointer()
    assert not any(lo <= p < hi for lo, hi in host_ranges)  # the result aliases no host buffer
  assert _outputs(sampler) == before
  # New device-owned weights (the learner's after a step): views are dropped, and decode
  # slices its own copy per call.
  sampler.update_params(updated)
  assert not isinstance(sampler._decode_params["layers"], list)
  sampler.update_params(host)
  assert isinstance(sampler._decode_params["layers"], list)
  assert _outputs(sampler) == before
