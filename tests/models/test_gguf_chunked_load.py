"""The GGUF loader's chunked dequantisation gives exactly what the library gives.

Against `gguf.quants.dequantize` of the whole tensor (the library's own result is the
reference), for every quantisation type in the embedded Gemma 3 file. (The one-at-a-time
conversion in `load_gguf` is covered end to end by test_parity_embedded's golden logits.)
"""

import numpy as np
import pytest

from absolute_zero.models import gguf_import
from absolute_zero.embedded_models import embedded_gguf_path

gguf = pytest.importorskip("gguf")
from gguf import quants  # noqa: E402


@pytest.fixture(scope="module")
def reader():
  return gguf_import.open_gguf(embedded_gguf_path("gemma3-270m"))


def test_chunked_dequantisation_is_exact_for_every_type(reader, monkeypatch):
  monkeypatch.setattr(gguf_import, "_DEQUANT_ROWS", 96)  # chunks that do not divide the rows
  seen = set()
  for t in reader.tensors:
    kind = t.tensor_type.name
    if kind in seen or t.data.ndim < 2:
      continue
    seen.add(kind)
    data = t.data[:1000]  # enough rows for several chunks and a partial last one
    expected = quants.dequantize(data, t.tensor_type).astype(np.float32)
    got = gguf_import._dequantize_rows(quants, data, t.tensor_type)
    assert got.dtype == np.float32 and got.shape == expected.shape, kind
    np.testing.assert_array_equal(got, expected, err_msg=kind)
  assert {"Q8_0", "Q4_K", "Q6_K", "Q5_0"} <= seen
