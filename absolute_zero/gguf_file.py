"""The GGUF container (llama.cpp's file format): metadata and tensor layout, read by hand.

`read_gguf_metadata(path)` gives the key/value section as Python values; `GGUFFile(path)`
gives that metadata and a `GGUFTensor` per tensor whose raw data is a read-only view of
the memory-mapped file (dequantise it with `gguf.quants.dequantize`). Format: header
(magic, version, tensor count, key/value count), key/value pairs, tensor infos (name,
dims innermost first, ggml type, offset), padding to `general.alignment` (default 32),
tensor data (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md).

Written by hand instead of `gguf.GGUFReader` for memory and time: the reader builds a
numpy view per part of every key/value entry, half a million of them for Gemma 3's
262,144-token vocabulary, which held 686 MiB for as long as it lived (the largest part of
Gemma 3 270M's load peak: 2,152 MiB for 1,023 MiB of weights) and took 10-80 s to build
on this 2-core machine. Here the model loader skips the vocabulary's strings entirely and
the tokenizer reads them as one list of str.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

GGUF_MAGIC = b"GGUF"
_GGUF_SCALARS = {  # GGUF value type -> struct format (little endian)
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_GGUF_NUMPY = {
    0: np.uint8,
    1: np.int8,
    2: np.uint16,
    3: np.int16,
    4: np.uint32,
    5: np.int32,
    6: np.float32,
    7: np.bool_,
    10: np.uint64,
    11: np.int64,
    12: np.float64,
}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_DEFAULT_ALIGNMENT = 32


class _GGUFParser:
  """Reads a GGUF file's header, key/value section and tensor infos from a buffer.

  Numeric arrays come back as numpy arrays, string arrays as lists of str, or as None
  with `skip_string_arrays` (their bytes are stepped over, never decoded).
  """

  def __init__(self, buf: Any, skip_string_arrays: bool = False):
    self.buf = buf
    self.pos = 0
    self.skip_string_arrays = skip_string_arrays

  def _unpack(self, fmt: str) -> Any:
    (value,) = struct.unpack_from(fmt, self.buf, self.pos)
    self.pos += struct.calcsize(fmt)
    return value

  def _string(self) -> str:
    n = self._unpack("<Q")
    if self.pos + n > len(self.buf):
      raise struct.error("string runs past the end of the file")
    raw = self.buf[self.pos : self.pos + n]
    self.pos += n
    return raw.decode("utf-8")

  def _string_array(self, count: int) -> list[str] | None:
    buf, pos, end = self.buf, self.pos, len(self.buf)
    read_len = struct.Struct("<Q").unpack_from
    out = None if self.skip_string_arrays else []
    for _ in range(count):
      (n,) = read_len(buf, pos)
      pos += 8
      if pos + n > end:
        raise struct.error("string runs past the end of the file")
      if out is not None:
        out.append(buf[pos : pos + n].decode("utf-8"))
      pos += n
    self.pos = pos
    return out

  def _value(self, vtype: int) -> Any:
    if vtype in _GGUF_SCALARS:
      return self._unpack(_GGUF_SCALARS[vtype])
    if vtype == _GGUF_STRING:
      return self._string()
    if vtype == _GGUF_ARRAY:
      item_type = self._unpack("<I")
      count = self._unpack("<Q")
      if item_type in _GGUF_NUMPY:
        dtype = np.dtype(_GGUF_NUMPY[item_type]).newbyteorder("<")
        nbytes = count * dtype.itemsize
        if self.pos + nbytes > len(self.buf):
          raise struct.error("array runs past the end of the file")
        arr = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos).copy()
        self.pos += nbytes
        return arr
      if item_type == _GGUF_STRING:
        return self._string_array(count)
      return [self._value(item_type) for _ in range(count)]
    raise ValueError(f"unknown GGUF value type {vtype}")

  def header(self) -> tuple[int, int]:
    """(tensor count, key/value count); checks the magic bytes and the version."""
    if bytes(self.buf[:4]) != GGUF_MAGIC:
      raise ValueError("not a GGUF file (magic bytes are not 'GGUF')")
    self.pos = 4
    version = self._unpack("<I")
    if version not in (2, 3):
      raise ValueError(
          f"unsupported GGUF version {version} (expected 2 or 3; big-endian files are "
          "not supported)"
      )
    return self._unpack("<Q"), self._unpack("<Q")

  def metadata(self, n_kv: int) -> dict[str, Any]:
    fields = {}
    for _ in range(n_kv):
      key = self._string()
      vtype = self._unpack("<I")
      fields[key] = self._value(vtype)
    return fields

  def tensor_infos(self, n_tensors: int) -> list[tuple[str, tuple[int, ...], int, int]]:
    """(name, dims innermost first, ggml type, offset from the data start) per tensor."""
    infos = []
    for _ in range(n_tensors):
      name = self._string()
      n_dims = self._unpack("<I")
      dims = tuple(self._unpack("<Q") for _ in range(n_dims))
      infos.append((name, dims, self._unpack("<I"), self._unpack("<Q")))
    return infos

  def parse(self) -> dict[str, Any]:
    """The key/value metadata only."""
    _, n_kv = self.header()
    return self.metadata(n_kv)


def _map_read_only(path: Path) -> mmap.mmap:
  """The whole file mapped read-only (the mapping outlives the closed descriptor).

  Raises:
    FileNotFoundError: no file at `path`.
    ValueError: an empty file.
  """
  if not path.is_file():
    raise FileNotFoundError(f"GGUF file not found: {path}")
  with open(path, "rb") as f:
    if os.fstat(f.fileno()).st_size == 0:
      raise ValueError(f"{path}: empty file, not a GGUF file")
    return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def read_gguf_metadata(path: str | os.PathLike) -> dict[str, Any]:
  """All key/value metadata of a GGUF file (tokenizer.*, general.*, architecture fields).

  Raises:
    FileNotFoundError: no file at `path`.
    ValueError: an empty, truncated or corrupt file, or not a GGUF file.
  """
  path = Path(path)
  with _map_read_only(path) as buf:
    try:
      return _GGUFParser(buf).parse()
    except (struct.error, ValueError, UnicodeDecodeError) as e:
      raise ValueError(f"{path}: truncated or corrupt GGUF metadata ({e})") from e


@dataclasses.dataclass(frozen=True)
class GGUFTensor:
  """One tensor of a GGUF file.

  shape: GGUF order, innermost first (ne0, ne1, ...); the row-major shape is its reverse.
  data: the raw bytes as `gguf.GGUFReader` shapes them, a read-only view of the mapped
  file: for float/int types the values [*reversed(shape)], for quantised types uint8
  [*reversed(shape)[:-1], bytes per row].
  """

  name: str
  tensor_type: Any  # gguf.GGMLQuantizationType
  shape: tuple[int, ...]
  data: np.ndarray


_PLAIN_TYPES = {  # ggml type name -> numpy dtype of its values (others are quantised)
    "F32": np.float32,
    "F16": np.float16,
    "F64": np.float64,
    "I8": np.int8,
    "I16": np.int16,
    "I32": np.int32,
    "I64": np.int64,
}


class GGUFFile:
  """A GGUF file opened for reading its tensors: `metadata` (dict) and `tensors` (list of
  `GGUFTensor` in file order), the data memory-mapped read-only until `close()`.

  `vocabulary=False` leaves the string arrays (the tokenizer's tokens and merges) out of
  `metadata` (None): a model load does not need them.

  Raises:
    FileNotFoundError: no file at `path`.
    ValueError: a truncated or corrupt file, not a GGUF file, a tensor of an unknown ggml
      type or whose data lies past the end of the file.
  """

  def __init__(self, path: str | os.PathLike, *, vocabulary: bool = True):
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType  # on use: GGUF paths only

    path = Path(path)
    self._mmap = _map_read_only(path)
    try:
      parser = _GGUFParser(self._mmap, skip_string_arrays=not vocabulary)
      n_tensors, n_kv = parser.header()
      self.metadata = parser.metadata(n_kv)
      infos = parser.tensor_infos(n_tensors)
      alignment = int(self.metadata.get("general.alignment", _DEFAULT_ALIGNMENT))
      start = -(-parser.pos // alignment) * alignment
      tensors, names = [], set()
      for name, dims, raw_type, offset in infos:
        if name in names:
          raise ValueError(f"duplicated tensor {name!r}")
        names.add(name)
        qtype = GGMLQuantizationType(raw_type)
        n = int(np.prod(dims, dtype=np.int64))
        rows = tuple(reversed(dims))
        if qtype.name in _PLAIN_TYPES:
          dtype, count = np.dtype(_PLAIN_TYPES[qtype.name]).newbyteorder("<"), n
        else:
          block, type_size = GGML_QUANT_SIZES[qtype]
          if rows[-1] % block:
            raise ValueError(f"tensor {name!r}: row of {rows[-1]} is not whole {qtype.name} blocks")
          dtype, count = np.dtype(np.uint8), n // block * type_size
          rows = rows[:-1] + (rows[-1] // block * type_size,)
        if start + offset + count * dtype.itemsize > len(self._mmap):
          raise ValueError(f"tensor {name!r} runs past the end of the file")
        data = np.frombuffer(self._mmap, dtype, count, start + offset).reshape(rows)
        tensors.append(GGUFTensor(name, qtype, dims, data))
      self.tensors = tensors
    except (struct.error, ValueError, UnicodeDecodeError) as e:
      self.close()
      raise ValueError(f"{path}: truncated or corrupt GGUF file ({e})") from e

  def close(self) -> None:
    """Drops the tensor views and unmaps the file (their pages leave the resident set)."""
    self.tensors = []
    try:
      self._mmap.close()
    except BufferError:  # a view of the data is still alive elsewhere: leave the mapping
      pass

  def __enter__(self) -> "GGUFFile":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
