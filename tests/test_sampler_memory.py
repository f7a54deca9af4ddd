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
