"""Pack rollouts (prompt, completion, advantage, sampler log-probs) into fixed-shape train batches.

The train step is jitted, so every new `[B, T]` shape is a new compilation. The builder
right-pads every row to a length bucket `T` (the smallest bucket that fits the longest
row) and pads the row count `B` to a multiple of `row_multiple` (micro-batch size x
data-parallel size) with all-masked rows, so repeated self-play steps reuse a handful of
compiled programs.

Alignment (the one thing to get right). For a row with prompt `p_0 .. p_{P-1}` and
completion `c_0 .. c_{C-1}`, `tokens = [p_0 .. p_{P-1}, c_0 .. c_{C-1}, pad ...]`, and
position `t` of every per-token array holds the prediction *made at* `t`, i.e. the
log-prob of token `t + 1` given the prefix `tokens[0 .. t]`:

    targets[b, t]      = tokens[b, t + 1]          (0 at the last position)
    loss_mask[b, t]    = P - 1 <= t < P + C - 1    (t + 1 is a completion token)
    old_logprobs[b, t] = sampler log-prob of targets[b, t] where loss_mask, else 0

so completion token `c_j` sits at `tokens[P + j]`, is predicted at `t = P - 1 + j`, and
its sampler log-prob `old[j]` goes to `old_logprobs[b, P - 1 + j]`. Masks come from the
lengths, never from `token == pad` (pad may equal EOS, and the EOS that ends a
completion is trained on).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import numpy as np

from absolute_zero.buckets import bucket_length, length_bucket

DEFAULT_LENGTH_BUCKETS: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)


class TrainBatch(NamedTuple):
  """One fixed-shape batch for `learner.train_step` (a pytree of arrays).

  Every `[B, T]` array is aligned to *predictions*: entry `t` concerns token `t + 1`.
  """

  tokens: np.ndarray  # [B, T] int32: prompt + completion, right-padded with pad_id
  # [B, T] int32: 0, 1, 2, ... (padding keeps counting; it is masked). The learner relies on
  # this slot order (`forward(..., causal_slots=True)`).
  positions: np.ndarray
  valid: np.ndarray  # [B, T] bool: real (non-padding) input tokens, t < P + C
  targets: np.ndarray  # [B, T] int32: tokens shifted left by one (0 where nothing follows)
  loss_mask: np.ndarray  # [B, T] bool: targets[t] is a completion token
  old_logprobs: np.ndarray  # [B, T] float32: sampler log-prob of targets[t] (0 off-mask)
  advantages: np.ndarray  # [B] float32: sequence advantage (0 on padding rows)
  group_ids: np.ndarray  # [B] int32: (task, role) group, -1 on padding rows
  row_valid: np.ndarray  # [B] bool: False for the rows added to reach a multiple
  ref_logprobs: np.ndarray | None = None  # [B, T] float32, like old_logprobs (KL only)
  # [B, C] int32: the t of each row's loss positions (P - 1 + j), -1 past the row's
  # completion; C is a fine length bucket of the longest completion. With it the learner
  # builds vocabulary logits only at these positions (prompts are most of a self-play
  # row); None: at every position.
  completion_index: np.ndarray | None = None

  @property
  def num_tokens(self) -> int:
    """Loss (completion) tokens in the batch."""
    return int(np.sum(self.loss_mask))


@dataclasses.dataclass(frozen=True)
class BatchShapes:
  """Shape policy: allowed sequence lengths and the row multiple."""

  length_buckets: tuple[int, ...] = DEFAULT_LENGTH_BUCKETS
  row_multiple: int = 1  # micro_batch_size x data-parallel devices

  def __post_init__(self):
    buckets = tuple(self.length_buckets)
    if not buckets or any(int(b) < 2 for b in buckets) or list(buckets) != sorted(set(buckets)):
      raise ValueError(
          f"length_buckets must be strictly increasing lengths >= 2, got {self.length_buckets}"
      )
    if self.row_multiple < 1:
      raise ValueError(f"row_multiple must be >= 1, got {self.row_multiple}")


def round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def build_train_batch(
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    advantages: Sequence[float],
    old_logprobs: Sequence[Sequence[float]],
    *,
    group_ids: Sequence[int] | None = None,
    ref_logprobs: Sequence[Sequence[float]] | None = None,
    shapes: BatchShapes = BatchShapes(),
    pad_id: int = 0,
    min_rows: int = 0,
) -> TrainBatch:
  """Packs N rollouts into a `TrainBatch` of shape `[B, T]` (see the module docstring).

  prompts[i]: prompt token ids (at least one, e.g. BOS, when the completion is non-empty:
  the first completion token is predicted from the last prompt token).
  completions[i]: sampled token ids, including the EOS that ended them, if any.
  advantages[i]: the sequence advantage of rollout i.
  old_logprobs[i]: one sampler log-prob per completion token (same temperature as the
  learner), `len(old_logprobs[i]) == len(completions[i])`.
  group_ids[i]: optional (task, role) group (metrics / ablations); 0 when omitted.
  ref_logprobs[i]: optional reference-policy log-probs per completion token (KL term).
  `B = round_up(max(N, min_rows), shapes.row_multiple)`;
  `T = bucket_length(max_i(P_i + C_i), shapes.length_buckets)`.
  """
  n = len(prompts)
  if n == 0:
    raise ValueError("build_train_batch needs at least one rollout")
  for name, seq in (
      ("completions", completions),
      ("advantages", advantages),
      ("old_logprobs", old_logprobs),
  ):
    if len(seq) != n:
      raise ValueError(f"{name} has {len(seq)} rows but prompts has {n}")
  if group_ids is not None and len(group_ids) != n:
    raise ValueError(f"group_ids has {len(group_ids)} rows but prompts has {n}")
  if ref_logprobs is not None and len(ref_logprobs) != n:
    raise ValueError(f"ref_logprobs has {len(ref_logprobs)} rows but prompts has {n}")

  prompt_lens = np.array([len(p) for p in prompts], np.int64)  # [N]
  completion_lens = np.array([len(c) for c in completions], np.int64)  # [N]
  for i in range(n):
    if completion_lens[i] and prompt_lens[i] == 0:
      raise ValueError(
          f"rollout {i}: empty prompt; the first completion token needs a "
          "prefix to be predicted from (prepend BOS)"
      )
    if len(old_logprobs[i]) != completion_lens[i]:
      raise ValueError(
          f"rollout {i}: {len(old_logprobs[i])} old log-probs for "
          f"{completion_lens[i]} completion tokens"
      )
    if ref_logprobs is not None and len(ref_logprobs[i]) != completion_lens[i]:
      raise ValueError(
          f"rollout {i}: {len(ref_logprobs[i])} reference log-probs for "
          f"{completion_lens[i]} completion tokens"
      )
  total_lens = prompt_lens + completion_lens  # [N]
  seq_len = bucket_length(int(total_lens.max()), shapes.length_buckets)
  rows = round_up(max(n, min_rows), shapes.row_multiple)

  tokens = np.full((rows, seq_len), pad_id, np.int32)  # [B, T]
  old = np.zeros((rows, seq_len), np.float32)  # [B, T]
  ref = np.zeros((rows, seq_len), np.float32) if ref_logprobs is not None else None
  for i in range(n):
    p, c = prompt_lens[i], completion_lens[i]
    tokens[i, :p] = np.asarray(prompts[i], np.int32)
    tokens[i, p : p + c] = np.asarray(completions[i], np.int32)
    # Completion token j (at tokens[p + j]) is predicted at t = p - 1 + j.
    old[i, p - 1 : p - 1 + c] = np.asarray(old_logprobs[i], np.float32)
    if ref is not None:
      ref[i, p - 1 : p - 1 + c] = np.asarray(ref_logprobs[i], np.float32)
  if (tokens < 0).any():
    raise ValueError("token ids must be non-negative")

  t = np.arange(seq_len)[None, :]  # [1, T]
  p_all = np.zeros(rows, np.int64)
  total_all = np.zeros(rows, np.int64)
  p_all[:n], total_all[:n] = prompt_lens, total_lens
  valid = t < total_all[:, None]  # [B, T]
  # Predictions of completion tokens: P - 1 <= t < P + C - 1 (empty when C = 0).
  loss_mask = (t >= p_all[:, None] - 1) & (t < total_all[:, None] - 1)  # [B, T]
  targets = np.zeros_like(tokens)
  targets[:, :-1] = tokens[:, 1:]
  positions = np.broadcast_to(np.arange(seq_len, dtype=np.int32), (rows, seq_len)).copy()

  adv = np.zeros(rows, np.float32)
  adv[:n] = np.asarray(advantages, np.float32)
  if not np.all(np.isfinite(adv)):
    raise ValueError("advantages must be finite")
  groups = np.full(rows, -1, np.int32)
  groups[:n] = 0 if group_ids is None else np.asarray(group_ids, np.int32)
  row_valid = np.arange(rows) < n
  return TrainBatch(
      tokens=tokens,
      positions=positions,
      valid=valid,
      targets=targets,
      loss_mask=loss_mask,
      old_logprobs=old,
      advantages=adv,
      group_ids=groups,
      row_valid=row_valid,
      ref_logprobs=ref,
      completion_index=completion_indices(prompt_lens, completion_lens, rows, seq_len),
  )


def completion_indices(
    prompt_lens: np.ndarray, completion_lens: np.ndarray, rows: int, seq_len: int
) -> np.ndarray:
  """[rows, C] int32 loss positions per row (P - 1 + j for j < C_row, else -1).

  C rounds the longest completion up to at most 4 sizes per octave (waste <= 25 %), capped
  at T - 1, so the learner's head work follows the completions, not the prompts.
  """
  longest = int(completion_lens.max()) if len(completion_lens) else 0
  width = min(length_bucket(max(longest, 1)), seq_len - 1)
  j = np.arange(width)[None, :]  # [1, C]
  index = np.full((rows, width), -1, np.int32)
  n = len(prompt_lens)
  index[:n] = np.where(j < completion_lens[:, None], prompt_lens[:, None] - 1 + j, -1)
  return index
