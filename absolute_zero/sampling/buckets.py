"""Shape buckets: a few padded sizes, so repeated sampler calls reuse compiled programs.

Lengths round up to at most 4 sizes per octave (waste <= 25 %, e.g. 320 stays 320,
321 -> 384); batch sizes round up to `shards * 2**k` so a batch always splits evenly over
the mesh's batch axes.
"""

from __future__ import annotations

import math


def length_bucket(n: int, minimum: int = 16) -> int:
  """Smallest bucket >= n: multiples of max(minimum, 2**floor(log2 n) / 4)."""
  if n < 1:
    raise ValueError(f"length must be >= 1, got {n}")
  granule = max(minimum, 2 ** int(math.floor(math.log2(n))) // 4)
  return -(-n // granule) * granule


def batch_bucket(rows: int, shards: int = 1) -> int:
  """Smallest shards * 2**k >= rows."""
  if rows < 1:
    raise ValueError(f"batch must have at least one row, got {rows}")
  per_shard = -(-rows // shards)
  return shards * 2 ** int(math.ceil(math.log2(per_shard)))


def left_pad(prompts: list[list[int]], rows: int, length: int, pad_id: int):
  """Left-padded (tokens, positions, valid) numpy arrays [rows, length].

  Rows past len(prompts) repeat prompt 0 (their outputs are discarded). Positions count
  from 0 at each prompt's first real token; padding slots get position 0 and valid False.
  """
  import numpy as np

  tokens = np.full((rows, length), pad_id, np.int32)
  valid = np.zeros((rows, length), bool)
  lengths = np.zeros((rows,), np.int32)
  for r in range(rows):
    ids = prompts[r] if r < len(prompts) else prompts[0]
    if len(ids) > length:
      raise ValueError(f"prompt of {len(ids)} tokens does not fit length bucket {length}")
    tokens[r, length - len(ids):] = ids
    valid[r, length - len(ids):] = True
    lengths[r] = len(ids)
  pads = length - lengths  # [rows]
  positions = np.maximum(np.arange(length)[None, :] - pads[:, None], 0).astype(np.int32)
  return tokens, positions, valid, lengths
