"""Shape buckets, for sampling and training: a few padded sizes, so repeated calls reuse
compiled programs.

Automatic lengths (`length_bucket`: the sampler's prompt and new-token lengths, the
learner's completion width) round up to at most 4 sizes per octave (waste <= 25 %, e.g.
320 stays 320, 321 -> 384); a fixed list of lengths (`bucket_length`: the training
sequence lengths) takes its smallest entry that fits; batch sizes round up to
`shards * 2**k` so a batch always splits evenly over the mesh's batch axes.
"""

from __future__ import annotations

import math
from typing import Sequence


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


def bucket_length(length: int, buckets: Sequence[int]) -> int:
  """Smallest bucket >= `length`; an error naming the limit when none fits."""
  for b in buckets:
    if length <= b:
      return int(b)
  raise ValueError(
      f"a row of {length} tokens (prompt + completion) exceeds the largest length "
      f"bucket {buckets[-1]}; add a larger bucket or truncate the rollout"
  )
