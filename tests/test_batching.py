"""Batch builder: alignment against hand-built arrays, buckets, padding rows, bad input."""

import numpy as np
import pytest

from absolute_zero.batching import BatchShapes, TrainBatch, build_train_batch
from absolute_zero.buckets import bucket_length

PAD = 9


def _example() -> TrainBatch:
  # Row 0: prompt [5, 6, 7], completion [11, 12]    (P=3, C=2, total 5)
  # Row 1: prompt [8],       completion [13, 14, 9] (P=1, C=3, total 4; 9 == PAD is EOS here)
  # Row 2: prompt [5, 6],    completion []          (P=2, C=0)
  return build_train_batch(
      prompts=[[5, 6, 7], [8], [5, 6]],
      completions=[[11, 12], [13, 14, 9], []],
      advantages=[1.5, -0.5, 2.0],
      old_logprobs=[[-0.1, -0.2], [-1.0, -2.0, -3.0], []],
      group_ids=[3, 1, 4],
      ref_logprobs=[[-0.3, -0.4], [-4.0, -5.0, -6.0], []],
      shapes=BatchShapes(length_buckets=(4, 8, 16), row_multiple=4),
      pad_id=PAD,
  )


def test_alignment_matches_hand_built_arrays():
  b = _example()
  # T: longest row is 5 tokens -> bucket 8. B: 3 rows -> multiple of 4.
  assert b.tokens.shape == (4, 8)
  np.testing.assert_array_equal(
      b.tokens,
      [
          [5, 6, 7, 11, 12, PAD, PAD, PAD],
          [8, 13, 14, 9, PAD, PAD, PAD, PAD],
          [5, 6, PAD, PAD, PAD, PAD, PAD, PAD],
          [PAD] * 8,
      ],
  )
  # targets[t] = tokens[t + 1]; 0 where nothing follows.
  np.testing.assert_array_equal(
      b.targets,
      [
          [6, 7, 11, 12, PAD, PAD, PAD, 0],
          [13, 14, 9, PAD, PAD, PAD, PAD, 0],
          [6, PAD, PAD, PAD, PAD, PAD, PAD, 0],
          [PAD] * 7 + [0],
      ],
  )
  # loss at t where targets[t] is a completion token: t in [P - 1, P + C - 1).
  np.testing.assert_array_equal(
      b.loss_mask.astype(int),
      [
          [0, 0, 1, 1, 0, 0, 0, 0],
          [1, 1, 1, 0, 0, 0, 0, 0],  # includes the EOS that equals the pad id
          [0] * 8,
          [0] * 8,
      ],
  )
  np.testing.assert_allclose(
      b.old_logprobs,
      [
          [0, 0, -0.1, -0.2, 0, 0, 0, 0],
          [-1.0, -2.0, -3.0, 0, 0, 0, 0, 0],
          [0] * 8,
          [0] * 8,
      ],
      rtol=0,
      atol=1e-7,
  )
  np.testing.assert_allclose(
      b.ref_logprobs[:2, :4], [[0, 0, -0.3, -0.4], [-4.0, -5.0, -6.0, 0]], atol=1e-7
  )
  np.testing.assert_array_equal(
      b.valid.astype(int),
      [
          [1, 1, 1, 1, 1, 0, 0, 0],
          [1, 1, 1, 1, 0, 0, 0, 0],
          [1, 1, 0, 0, 0, 0, 0, 0],
          [0] * 8,
      ],
  )
  np.testing.assert_array_equal(b.positions[1], np.arange(8))
  np.testing.assert_allclose(b.advantages, [1.5, -0.5, 2.0, 0.0])
  np.testing.assert_array_equal(b.group_ids, [3, 1, 4, -1])
  np.testing.assert_array_equal(b.row_valid, [True, True, True, False])
  assert b.num_tokens == 5
  assert b.tokens.dtype == np.int32 and b.old_logprobs.dtype == np.float32


def test_every_sampled_token_meets_its_logprob_at_the_predicting_position():
  rng = np.random.default_rng(0)
  prompts = [list(rng.integers(0, 50, rng.integers(1, 12))) for _ in range(13)]
  comps = [list(rng.integers(0, 50, rng.integers(0, 20))) for _ in range(13)]
  # Encode (row, index) in the log-prob so each can be traced back.
  olds = [[-(i * 100 + j) - 0.5 for j in range(len(c))] for i, c in enumerate(comps)]
  b = build_train_batch(
      prompts,
      comps,
      np.zeros(13),
      olds,
      shapes=BatchShapes(length_buckets=(16, 32, 64), row_multiple=8),
  )
  assert b.tokens.shape == (16, 32)
  for i, (p, c) in enumerate(zip(prompts, comps)):
    for j, tok in enumerate(c):
      t = len(p) - 1 + j
      assert b.loss_mask[i, t]
      assert b.targets[i, t] == tok == b.tokens[i, t + 1]
      assert b.old_logprobs[i, t] == np.float32(-(i * 100 + j) - 0.5)
    assert b.loss_mask[i].sum() == len(c)
  assert b.num_tokens == sum(len(c) for c in comps)
  assert not b.loss_mask[13:].any() and not b.valid[13:].any()


def test_buckets_repeat_shapes():
  shapes = BatchShapes(length_buckets=(8, 16), row_multiple=4)
  a = build_train_batch([[1, 2]], [[3, 4, 5]], [1.0], [[0.0] * 3], shapes=shapes)
  b = build_train_batch([[1] * 5] * 3, [[2] * 6] * 3, [0.0] * 3, [[0.0] * 6] * 3, shapes=shapes)
  assert a.tokens.shape == (4, 8) and b.tokens.shape == (4, 16)
  c = build_train_batch([[1]], [[2]], [0.0], [[0.0]], shapes=shapes, min_rows=6)
  assert c.tokens.shape == (8, 8)
  assert bucket_length(8, (8, 16)) == 8 and bucket_length(9, (8, 16)) == 16


def test_bad_input_raises_clear_errors():
  shapes = BatchShapes(length_buckets=(8,))
  with pytest.raises(ValueError, match="exceeds the largest length bucket 8"):
    build_train_batch([[1] * 4], [[2] * 5], [0.0], [[0.0] * 5], shapes=shapes)
  with pytest.raises(ValueError, match="old log-probs"):
    build_train_batch([[1]], [[2, 3]], [0.0], [[0.0]], shapes=shapes)
  with pytest.raises(ValueError, match="empty prompt"):
    build_train_batch([[]], [[2]], [0.0], [[0.0]], shapes=shapes)
  with pytest.raises(ValueError, match="advantages has 2 rows"):
    build_train_batch([[1]], [[2]], [0.0, 1.0], [[0.0]], shapes=shapes)
  with pytest.raises(ValueError, match="finite"):
    build_train_batch([[1]], [[2]], [np.nan], [[0.0]], shapes=shapes)
  with pytest.raises(ValueError, match="strictly increasing"):
    BatchShapes(length_buckets=(16, 8))
  with pytest.raises(ValueError, match="at least one rollout"):
    build_train_batch([], [], [], [], shapes=shapes)


def test_group_ids_default_to_zero_and_padding_rows_to_minus_one():
  batch = build_train_batch(
      [[1], [2]],
      [[3], [4]],
      [0.5, -0.5],
      [[0.0], [0.0]],
      shapes=BatchShapes(length_buckets=(8,), row_multiple=4),
  )
  np.testing.assert_array_equal(batch.group_ids, [0, 0, -1, -1])


def test_completion_index_lists_each_rows_loss_positions():
  # Prompts of 3 / 1 / 5 tokens, completions of 2 / 0 / 4: loss positions are
  # t = P - 1 .. P + C - 2 (hand-listed), -1 beyond; one padding row (row_multiple 4).
  batch = build_train_batch(
      [[1, 2, 3], [4], [5, 6, 7, 8, 9]],
      [[10, 11], [], [12, 13, 14, 15]],
      [1.0, 0.0, -1.0],
      [[0.0] * 2, [], [0.0] * 4],
      shapes=BatchShapes(length_buckets=(16,), row_multiple=4),
  )
  index = batch.completion_index
  assert index.shape == (4, 15)  # longest completion 4 -> bucket 16, capped at T - 1
  np.testing.assert_array_equal(index[0, :3], [2, 3, -1])
  np.testing.assert_array_equal(index[1, :1], [-1])
  np.testing.assert_array_equal(index[2, :5], [4, 5, 6, 7, -1])
  assert (index[:, 5:] == -1).all() and (index[3] == -1).all()
  # Exactly the loss mask's positions, row by row.
  for row in range(4):
    picked = sorted(int(t) for t in index[row] if t >= 0)
    assert picked == list(np.flatnonzero(batch.loss_mask[row]))
