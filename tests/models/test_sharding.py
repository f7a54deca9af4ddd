"""Sharded forward equals the 1-device forward; every parameter lands where the rules say."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from absolute_zero import sharding
from absolute_zero.models import forward, get_config, init_params


def _need_8_devices():
  if len(jax.devices()) < 8:
    pytest.skip("needs 8 (fake) devices: XLA_FLAGS=--xla_force_host_platform_device_count=8")


def test_parse_mesh_shape_and_errors():
  assert sharding.parse_mesh_shape("1,4,2") == (1, 4, 2)
  assert sharding.parse_mesh_shape([2, -1, 1]) == (2, -1, 1)
  for bad in ["1,2", "a,b,c", "0,1,1", "1,-1,-1"]:
    with pytest.raises(ValueError):
      sharding.parse_mesh_shape(bad)


def test_mesh_must_match_device_count():
  n = len(jax.devices())
  with pytest.raises(ValueError, match="needs .* devices"):
    sharding.make_mesh((n + 1, 1, 1))
  assert sharding.make_mesh((1, 1, -1)).shape["tensor"] == n


def test_logical_to_spec_drops_axes_that_do_not_divide():
  _need_8_devices()
  mesh = sharding.make_mesh((2, 2, 2))
  rules = sharding.TRAIN_RULES
  # kv_heads=1 cannot be split over tensor=2: replicated on that dimension.
  assert sharding.logical_to_spec(("embed", "kv_heads", "head_dim"), rules, mesh, (64, 1, 16)) == P(
      "fsdp", None, None
  )
  assert sharding.logical_to_spec(("embed", "kv_heads", "head_dim"), rules, mesh, (64, 2, 16)) == P(
      "fsdp", "tensor", None
  )
  assert sharding.logical_to_spec(("activation_batch", None), rules, mesh, (8, 3)) == P(
      ("data", "fsdp"), None
  )


@pytest.mark.parametrize("name", ["tiny-gemma3", "tiny-qwen2", "tiny-llama"])
def test_sharded_forward_matches_single_device(name):
  _need_8_devices()
  config = get_config(name)
  params = init_params(config, jax.random.key(1))
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(0, config.vocab_size, (8, 24)), jnp.int32)
  positions = jnp.broadcast_to(jnp.arange(24), (8, 24))
  lengths = np.array([24, 20, 17, 24, 9, 24, 12, 24])
  valid = jnp.arange(24)[None] < lengths[:, None]
  single = jax.jit(lambda p: forward(p, tokens, positions, valid, config))(params)

  mesh = sharding.make_mesh((2, 2, 2))
  rules = sharding.TRAIN_RULES
  shardings = sharding.param_shardings(config, mesh, rules)
  sharded_params = jax.device_put(params, shardings)
  batch = sharding.batch_sharding(mesh, rules)
  fn = jax.jit(lambda p, t, q, v: forward(p, t, q, v, config, mesh=mesh, rules=rules))
  out = fn(
      sharded_params,
      jax.device_put(tokens, batch),
      jax.device_put(positions, batch),
      jax.device_put(valid, batch),
  )
  np.testing.assert_allclose(np.asarray(out), np.asarray(single), atol=1e-5, rtol=1e-5)
  assert out.sharding.spec[0] == ("data", "fsdp")

  # The actual placement of each parameter, not only that it ran.
  expected = {
      "embedding": P("tensor", "fsdp"),
      "layers/attn/q_proj": P(None, "fsdp", "tensor", None),
      "layers/attn/k_proj": P(None, "fsdp", "tensor", None),
      "layers/attn/o_proj": P(None, "tensor", None, "fsdp"),
      "layers/mlp/gate_proj": P(None, "fsdp", "tensor"),
      "layers/mlp/down_proj": P(None, "tensor", "fsdp"),
      "layers/pre_attn_norm/scale": P(None, None),
      "final_norm/scale": P(None),
  }
  flat = {
      "/".join(str(k.key) for k in path): leaf
      for path, leaf in jax.tree_util.tree_leaves_with_path(sharded_params)
  }
  for key, spec in expected.items():
    got = flat[key].sharding.spec
    assert tuple(got) + (None,) * (len(spec) - len(got)) == tuple(spec), (key, got)
    # Each device really holds only its shard.
    shard_shape = flat[key].addressable_shards[0].data.shape
    assert shard_shape == flat[key].sharding.shard_shape(flat[key].shape)
  if not config.tie_embeddings:
    assert flat["lm_head"].sharding.spec == P("tensor", "fsdp")


def test_sample_rules_replicate_over_fsdp():
  _need_8_devices()
  config = get_config("tiny-qwen2")
  mesh = sharding.make_mesh((2, 2, 2))
  sh = sharding.param_shardings(config, mesh, sharding.SAMPLE_RULES)
  assert sh["layers"]["attn"]["q_proj"].spec == P(None, None, "tensor", None)
  assert sh["embedding"].spec == P("tensor", None)
