"""Left padding of prompts into a bucketed [rows, length] batch (host NumPy)."""

from __future__ import annotations

import numpy as np


def left_pad(prompts: list[list[int]], rows: int, length: int, pad_id: int):
  """Left-padded (tokens, positions, valid) numpy arrays [rows, length].

  Rows past len(prompts) repeat prompt 0 (their outputs are discarded). Positions count
  from 0 at each prompt's first real token; padding slots get position 0 and valid False.
  """
  tokens = np.full((rows, length), pad_id, np.int32)
  valid = np.zeros((rows, length), bool)
  lengths = np.zeros((rows,), np.int32)
  for r in range(rows):
    ids = prompts[r] if r < len(prompts) else prompts[0]
    if len(ids) > length:
      raise ValueError(f"prompt of {len(ids)} tokens does not fit length bucket {length}")
    tokens[r, length - len(ids) :] = ids
    valid[r, length - len(ids) :] = True
    lengths[r] = len(ids)
  pads = length - lengths  # [rows]
  positions = np.maximum(np.arange(length)[None, :] - pads[:, None], 0).astype(np.int32)
  return tokens, positions, valid, lengths
