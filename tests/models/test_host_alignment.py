"""Loaded weights become device arrays without a copy: a load leaves one copy of the params.

XLA's CPU client adopts a numpy buffer as a jax.Array only when its address is 64-byte
aligned and copies any other, and numpy's large arrays start 16 bytes into their pages. A
caller that keeps the loaded tree (every benchmark; a training script holding it while the
sampler and learner place theirs) then held most weights twice: 820 MiB of Gemma 3 270M's
1,023 MiB in experiments/bench_sampler.py, the largest single part of the sampler's peak
RSS. The loaders therefore allocate parameters with `hf_layout.aligned_empty`; these tests
check the property the sampler relies on (the device buffer is the numpy buffer), not the
allocator's arithmetic.
"""

from __future__ import annotations

import jax
import ml_dtypes
import numpy as np
import pytest

from absolute_zero.models import get_config, init_params
from absolute_zero.models import hf_layout

pytestmark = pytest.mark.skipif(
    jax.default_backend() != "cpu", reason="host buffers are adopted only by the CPU client"
)


def _adopted(x: np.ndarray) -> bool:
  """jax.device_put(x) reuses x's memory (no second copy)."""
  return jax.device_put(x).unsafe_buffer_pointer() == x.ctypes.data


def test_the_cpu_client_adopts_aligned_buffers_and_copies_others():
  """The premise: if a jaxlib changed its rule, the loaders' alignment must follow."""
  raw = np.zeros(4096 + 2 * hf_layout.HOST_ALIGNMENT, np.uint8)
  start = -raw.ctypes.data % hf_layout.HOST_ALIGNMENT
  aligned = raw[start : start + 4096].view(np.float32)
  shifted = raw[start + 16 : start + 16 + 4096].view(np.float32)
  assert _adopted(aligned)
  assert not _adopted(shifted)
  x = hf_layout.aligned_empty((3, 5, 7), np.float32)
  assert x.shape == (3, 5, 7) and hf_layout.is_host_aligned(x) and _adopted(x)


def _random_params(config, seed: int = 0) -> dict:
  shapes = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: rng.normal(0, 0.1, s.shape).astype(np.float32), shapes)


@pytest.mark.parametrize("param_dtype", ["float32", "bfloat16"])
def test_imported_params_are_adopted_by_the_device_without_a_copy(param_dtype):
  """Every leaf `params_from_hf_tensors` returns (stacked layers, embedding, norms; cast to
  bfloat16 or not) is aligned and becomes a device array in place, with the values
  `astype` gives."""
  config = get_config("tiny-gemma3")
  reference = _random_params(config)
  tensors = list(hf_layout.hf_tensors_from_params(reference, config))
  params = hf_layout.params_from_hf_tensors(tensors, config.replace(param_dtype=param_dtype))
  dtype = ml_dtypes.bfloat16 if param_dtype == "bfloat16" else np.float32
  got, want = jax.tree.leaves(params), jax.tree.leaves(reference)
  assert len(got) == len(want) > 10
  for leaf, ref in zip(got, want):
    assert leaf.dtype == dtype
    np.testing.assert_array_equal(leaf, ref.astype(dtype))
    assert hf_layout.is_host_aligned(leaf), (leaf.shape, leaf.ctypes.data % 64)
    assert _adopted(leaf), leaf.shape


def test_a_gguf_load_is_adopted_by_the_device_without_a_copy(tmp_path, monkeypatch):
  """The GGUF path end to end, with the embedding dequantised in chunks (as Gemma's is)
  into the buffer that becomes the parameter."""
  gguf = pytest.importorskip("gguf")
  from absolute_zero.models import gguf_import
  from tests.models.test_import_errors import write_tiny_llama_gguf

  config = get_config("tiny-llama").replace(rope_scaling=None)
  params = _random_params(config)
  path = tmp_path / "tiny.gguf"
  write_tiny_llama_gguf(path, params, config, quant=gguf.GGMLQuantizationType.Q8_0)
  monkeypatch.setattr(gguf_import, "_DEQUANT_ROWS", 96)  # 512 embedding rows: 6 chunks
  _, loaded = gguf_import.load_gguf(path)
  for leaf in jax.tree.leaves(loaded):
    assert hf_layout.is_host_aligned(leaf), (leaf.shape, leaf.ctypes.data % 64)
    assert _adopted(leaf), leaf.shape
