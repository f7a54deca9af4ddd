"""Logit parity with transformers (PyTorch, float32) on tiny random models of each family.

The weights go through our HF safetensors importer (`save_pretrained` -> `load_hf_checkpoint`),
so this checks the name map, reshapes, and every family switch of the forward at once.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from absolute_zero.models import compute_logits, forward, get_config  # noqa: E402
from absolute_zero.models.hf_import import load_hf_checkpoint  # noqa: E402
from tests.models.hf_reference import random_hf_model  # noqa: E402

FAMILIES = ["tiny-gemma3", "tiny-qwen2", "tiny-llama"]


@pytest.fixture(scope="module", params=FAMILIES)
def loaded(request, tmp_path_factory):
  name = request.param
  model = random_hf_model(name)
  path = tmp_path_factory.mktemp(name)
  model.save_pretrained(path)
  config, params = load_hf_checkpoint(path)
  # Blockwise attention in blocks of 16 < the rows below ("auto" would pick dense for rows
  # this short): the multi-block path is what runs.
  config = config.replace(attention="blockwise", attention_block_size=16)
  return name, model, config, params


def test_config_from_hf_matches_preset(loaded):
  name, _, config, _ = loaded
  preset = get_config(name)
  for field in (
      "family",
      "vocab_size",
      "embed_dim",
      "num_layers",
      "num_heads",
      "num_kv_heads",
      "head_dim",
      "mlp_dim",
      "tie_embeddings",
      "qkv_bias",
      "qk_norm",
      "post_norms",
      "norm_offset",
      "embed_scale",
      "rope_base",
      "rope_base_local",
      "rope_scaling",
      "sliding_window",
      "global_every",
      "query_pre_attn_scalar",
  ):
    if field == "rope_base_local" and preset.family != "gemma3":
      continue
    assert getattr(config, field) == getattr(preset, field), field


def test_logits_match_transformers(loaded):
  name, model, config, params = loaded
  rng = np.random.default_rng(1)
  seq = 40  # > 4x the tiny Gemma window of 8: local and global masks both matter
  ids = rng.integers(0, config.vocab_size, (2, seq))
  with torch.no_grad():
    ref = model(torch.from_numpy(ids)).logits.numpy()
  positions = np.broadcast_to(np.arange(seq), ids.shape)
  hidden = forward(params, jnp.asarray(ids), jnp.asarray(positions), None, config)
  ours = np.asarray(compute_logits(params, hidden, config))
  assert np.abs(ours - ref).max() <= 1e-4, np.abs(ours - ref).max()
  np.testing.assert_array_equal(ours.argmax(-1), ref.argmax(-1))


def test_padding_does_not_change_real_tokens(loaded):
  """Left- and right-padded rows give the unpadded row's logits (masks from lengths)."""
  _, _, config, params = loaded
  rng = np.random.default_rng(2)
  n, pad = 20, 7
  ids = rng.integers(0, config.vocab_size, (1, n))
  ref = np.asarray(
      compute_logits(
          params, forward(params, jnp.asarray(ids), jnp.arange(n)[None], None, config), config
      )
  )[0]
  junk = rng.integers(0, config.vocab_size, (1, pad))
  left = np.concatenate([junk, ids], 1)
  left_pos = np.maximum(np.arange(n + pad) - pad, 0)[None]
  left_valid = (np.arange(n + pad) >= pad)[None]
  right = np.concatenate([ids, junk], 1)
  right_valid = (np.arange(n + pad) < n)[None]
  tokens = jnp.asarray(np.concatenate([left, right]))
  positions = jnp.asarray(np.concatenate([left_pos, np.arange(n + pad)[None]]))
  valid = jnp.asarray(np.concatenate([left_valid, right_valid]))
  out = np.asarray(
      compute_logits(params, forward(params, tokens, positions, valid, config), config)
  )
  np.testing.assert_allclose(out[0, pad:], ref, atol=2e-5)
  np.testing.assert_allclose(out[1, :n], ref, atol=2e-5)
  assert np.isfinite(out).all()
