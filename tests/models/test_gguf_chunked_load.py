"""The GGUF loader's chunked dequantisation gives exactly what the library gives.

Against `gguf.quants.dequantize` of the whole tensor (the library's own result is the
reference), for every quantisation type in the embedded Gemma 3 file (Q8_0, Q4_K, Q6_K,
Q5_0), on random raw blocks of 1000 rows so the 96-row chunks leave a partial last one.
(Random bytes are valid input: dequantisation only reads them, and NaN scales compare
equal position by position. Opening the real file cost ~20 s of the suite.) The
one-at-a-time conversion in `load_gguf` is covered end to end by test_parity_embedded's
golden logits.
"""

import numpy as np
import pytest

from absolute_zero.models import gguf_import

gguf = pytest.importorskip("gguf")
from gguf import quants  # noqa: E402
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType  # noqa: E402


@pytest.mark.parametrize("kind", ["Q8_0", "Q4_K", "Q6_K", "Q5_0"])
def test_chunked_dequantisation_is_exact(kind, monkeypatch):
  monkeypatch.setattr(gguf_import, "_DEQUANT_ROWS", 96)  # chunks that do not divide the rows
  qtype = GGMLQuantizationType[kind]
  block_size, type_size = GGML_QUANT_SIZES[qtype]
  rng = np.random.default_rng(len(kind))
  data = rng.integers(0, 256, size=(1000, 2 * type_size), dtype=np.uint8)  # 2 blocks a row
  expected = quants.dequantize(data, qtype).astype(np.float32)
  got = gguf_import._dequantize_rows(quants, data, qtype)
  assert got.dtype == np.float32 and got.shape == (1000, 2 * block_size) == expected.shape
  np.testing.assert_array_equal(got, expected)
