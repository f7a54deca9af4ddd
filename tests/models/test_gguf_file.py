"""Our GGUF container reader against the `gguf` library's, and the load's mapping lifetime.

`gguf_file.GGUFFile` replaced `gguf.GGUFReader` in the model loader (the reader's
per-string views held 686 MiB of Gemma 3 270M's 2,152 MiB load peak); the library's reader
is the reference for every tensor's name, type, shape and raw bytes.
"""

import os

import jax
import numpy as np
import pytest

from absolute_zero import gguf_file
from absolute_zero.models import get_config, gguf_import, init_params

gguf = pytest.importorskip("gguf")


def _write_mixed_gguf(path, alignment=None):
  """A GGUF with float, integer and quantised tensors, a vocabulary and scalars."""
  w = gguf.GGUFWriter(str(path), "llama")
  if alignment:
    w.add_custom_alignment(alignment)
  w.add_block_count(2)
  w.add_token_list(["<pad>", "a", "bc", "déf"] * 50)
  w.add_token_scores([0.5] * 200)
  rng = np.random.default_rng(0)
  w.add_tensor("f32", rng.standard_normal((3, 40)).astype(np.float32))
  w.add_tensor("f16", rng.standard_normal((5,)).astype(np.float16))
  w.add_tensor("i32", np.arange(7, dtype=np.int32))
  q8 = gguf.GGMLQuantizationType.Q8_0
  q = gguf.quants.quantize(rng.standard_normal((4, 512)).astype(np.float32), q8)
  w.add_tensor("q8_0", q, raw_shape=q.shape, raw_dtype=q8)
  # Q4_K (Gemma's type) has no quantiser in the library: random raw blocks, 2 a row.
  q4k = gguf.GGMLQuantizationType.Q4_K
  raw = rng.integers(0, 256, (3, 2 * gguf.GGML_QUANT_SIZES[q4k][1]), dtype=np.uint8)
  w.add_tensor("q4_k", raw, raw_shape=raw.shape, raw_dtype=q4k)
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()


@pytest.mark.parametrize("alignment", [None, 64])
def test_tensors_and_metadata_equal_the_gguf_library_reader(tmp_path, alignment):
  path = tmp_path / "mixed.gguf"
  _write_mixed_gguf(path, alignment)
  reference = gguf.GGUFReader(str(path))
  with gguf_file.GGUFFile(path) as ours:
    assert [t.name for t in ours.tensors] == [t.name for t in reference.tensors]
    for mine, theirs in zip(ours.tensors, reference.tensors):
      assert mine.tensor_type == theirs.tensor_type, mine.name
      assert mine.shape == tuple(int(s) for s in theirs.shape), mine.name
      assert mine.data.dtype == theirs.data.dtype and mine.data.shape == theirs.data.shape
      np.testing.assert_array_equal(mine.data, theirs.data)
    for key in ("general.architecture", "llama.block_count", "tokenizer.ggml.tokens"):
      assert ours.metadata[key] == reference.fields[key].contents(), key
    np.testing.assert_array_equal(ours.metadata["tokenizer.ggml.scores"], [0.5] * 200)
  with gguf_file.GGUFFile(path, vocabulary=False) as lean:  # the model loader's view
    assert lean.metadata["tokenizer.ggml.tokens"] is None
    assert lean.metadata["llama.block_count"] == 2
    np.testing.assert_array_equal(lean.tensors[-1].data, reference.tensors[-1].data)


def test_a_tensor_past_the_end_of_the_file_is_a_clear_error(tmp_path):
  path = tmp_path / "mixed.gguf"
  _write_mixed_gguf(path)
  data = path.read_bytes()
  path.write_bytes(data[:-100])  # the header is whole, the last tensor is not
  with pytest.raises(ValueError, match="truncated or corrupt GGUF file.*runs past the end"):
    gguf_file.GGUFFile(path)


def _mapped(path) -> bool:
  with open("/proc/self/maps") as f:
    return str(path) in f.read()


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc")
def test_a_load_leaves_the_file_unmapped(tmp_path):
  """No parameter is a view of the mapped file, and the mapping ends with the load."""
  from tests.models.test_import_errors import write_tiny_llama_gguf

  config = get_config("tiny-llama").replace(rope_scaling=None)
  shapes = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: rng.normal(0, 0.1, s.shape).astype(np.float32), shapes)
  path = tmp_path / "tiny.gguf"
  write_tiny_llama_gguf(path, params, config)
  with gguf_import.open_gguf(path):
    assert _mapped(path)  # the check can see a mapping
  _, loaded = gguf_import.load_gguf(path)
  assert not _mapped(path)
  assert all(np.asarray(x).flags.writeable for x in jax.tree.leaves(loaded))
