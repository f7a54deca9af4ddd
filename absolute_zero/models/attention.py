"""Multi-token attention (training forward and prefill) without the full score tensor.

`attention(q, k, v, q_pos, k_pos, k_valid, ...)` is grouped-query attention whose mask is
written in token *positions*, as the model uses it: key j is visible to query i when

    k_valid[j]  and  0 <= q_pos[i] - k_pos[j]  (causal)  and  q_pos[i] - k_pos[j] < window

(the window only on sliding-window layers), so left-padded rows, right-padded rows and a
KV cache's unfilled slots all work. Scores may be soft-capped, `cap * tanh(s / cap)`
(Gemma 2 style; applied after the query scale).

Implementations (`impl`):
  * "blockwise": pure JAX, every backend. Queries and keys are cut into blocks; each
    query block runs over the key blocks with the online softmax (a running maximum `m`,
    normaliser `l` and unnormalised output `acc`, rescaled by `exp(m_old - m_new)` when the
    maximum grows: Milakov & Gimelshein 2018, "Online normalizer calculation for
    softmax"; FlashAttention, Dao et al. 2022, Alg. 1). Block pairs with no visible key
    (above the causal diagonal, outside the window, padding) are skipped with `lax.cond`.
    The gradient is a `jax.custom_vjp` that keeps only q, k, v, the output and the
    per-query log-sum-exp and recomputes each block's scores (FlashAttention-2's
    backward, Dao 2023, Alg. 2), so neither pass holds more than one
    `[batch, kv_heads, group, q_block, kv_block]` block of scores: memory grows linearly
    with the sequence.
  * "cudnn": `jax.nn.dot_product_attention(implementation="cudnn")` (GPU, bfloat16 or
    float16, no score softcap). It masks by index, not position, so it is used only when
    the positions are `0, 1, 2, ...` in every row and `k_valid` is a prefix of each row
    (training rows: `absolute_zero.batching`); a runtime check picks "blockwise" for other
    rows (left-padded prefill). cuDNN's window is static, so a per-layer traced `local`
    runs through `lax.cond`.
  * "splash": the Pallas splash-attention kernel (TPU; `jax.experimental.pallas.ops.tpu.
    splash_attention`, as MaxText uses it). Its masks are static and index-based, so like
    "cudnn" it runs only on index-space rows (positions `0, 1, ...`, valid keys first; a
    runtime check sends other rows to "blockwise"); padding becomes segment ids, the window
    a `LocalMask`, grouped query heads one MQA kernel per KV head, the softcap the kernel's
    `attn_logits_soft_cap`. Rows are padded to a whole number of its 128-token blocks.
    Off TPU it can run in Pallas' interpreter (`SPLASH_INTERPRET`, for tests only: slow).
  * "dense": the whole `[b, kv, g, t, s]` score tensor at once (the former
    `models/transformer.py` code; the reference in tests and the benchmark). Callers that
    know their rows are causal in slot order (the model's training forward and the
    sampler's prefill: `causal_slots=True`) get it in causal query blocks that skip the
    scores above the diagonal (`causal_dense_attention`).
  * "auto": "cudnn" where its conditions hold at trace time (GPU backend, half-precision
    inputs, no softcap); "splash" on a single TPU device for self-attention (q_len = kv_len; a
    Mosaic kernel cannot be partitioned by XLA and is not wrapped in shard_map yet); else "dense"
    while a row's score matrix is small (q_len x kv_len <= DENSE_MAX_SCORES, i.e. up to
    1024 x 1024), else "blockwise". Why dense for short rows: the default CPU run
    (Gemma 3 270M, training rows <= 640 tokens, ~450-token prompts) measured a step-1
    update of 174 s dense against 225 s blockwise and generation 61 s against 71 s on the
    same fresh clone (blockwise pads to whole blocks and its backward recomputes the
    scores); at 2048 x 2048 blockwise was the faster (forward + backward 1.52 s vs 2.40 s)
    and its memory stays linear.

Query rows with no visible key at all (whole-padding rows) return 0 in "blockwise"; their
value is never used (the model's real tokens always see themselves).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from absolute_zero.models.config import ATTENTION_IMPLS, AttentionImpl

Array = jax.Array
DENSE_MAX_SCORES = 1024 * 1024  # "auto" runs "dense" up to this q_len x kv_len per row
IMPLEMENTATIONS = ATTENTION_IMPLS
SPLASH_BLOCK = 128  # the splash kernel's query and key block (rows are padded to it)
# Run "splash" in Pallas' interpreter off TPU. Tests set it; nothing else should (slow).
SPLASH_INTERPRET = False

# Finite, so rows with every key masked stay NaN-free.
MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)
NO_WINDOW = np.iinfo(np.int32).max  # a window no position difference reaches
_FAR = 2**29  # padding positions: invisible to and from every real position


def visible(q_pos: Array, k_pos: Array, k_valid: Array, window: Array | int | None) -> Array:
  """Boolean mask [b, q, k]: key visible to query (causal in positions, valid, window).

  q_pos [b, q] int; k_pos [b, k] int; k_valid [b, k] bool; window: keys with
  q_pos - k_pos < window are visible (None or NO_WINDOW: no limit).
  """
  diff = q_pos[:, :, None] - k_pos[:, None, :]  # [b, q, k]
  mask = (diff >= 0) & k_valid[:, None, :]
  if window is not None:
    mask = mask & (diff < window)
  return mask


def effective_window(window: int | None, local: Array | bool) -> Array | None:
  """The effective window: `window` where `local`, else none (int32 scalar or None)."""
  if window is None:
    return None
  return jnp.where(local, jnp.int32(window), jnp.int32(NO_WINDOW))


def _scores(q: Array, k: Array, scale: float, softcap: float | None):
  """Scaled (soft-capped) scores in float32 [b, kv, g, Q, K] and tanh (softcap) or None.

  q [b, Q, kv, g, hd]; k [b, K, kv, hd].
  """
  s = jnp.einsum("bqkgh,bskh->bkgqs", q, k, preferred_element_type=jnp.float32) * scale
  if softcap is None:
    return s, None
  t = jnp.tanh(s / softcap)
  return softcap * t, t


# ---------------------------------------------------------------------------- dense


def dense_attention(
    q: Array, k: Array, v: Array, mask: Array, scale: float, softcap: float | None = None
) -> Array:
  """Reference: the whole score tensor at once. out [b, t, kv, g, hd] in q.dtype.

  q [b, t, kv, g, hd]; k, v [b, s, kv, hd]; mask [b, t, s] bool (see `visible`).
  """
  logits, _ = _scores(q, k, scale, softcap)  # [b, kv, g, t, s]
  logits = jnp.where(mask[:, None, None, :, :], logits, MASK_VALUE)
  probs = jax.nn.softmax(logits, axis=-1).astype(q.dtype)
  out = jnp.einsum("bkgts,bskh->bkgth", probs, v)
  return out.transpose(0, 3, 1, 2, 4)  # [b, t, kv, g, hd]


CAUSAL_BLOCK = 64  # causal-block dense: at least this many queries per block
MAX_CAUSAL_BLOCKS = 8


def causal_block_spans(t: int) -> list[tuple[int, int]]:
  """Query blocks [start, end) of `causal_dense_attention` for t queries (one if t is short)."""
  n = max(1, min(MAX_CAUSAL_BLOCKS, t // CAUSAL_BLOCK))
  edges = [t * i // n for i in range(n + 1)]
  return list(zip(edges[:-1], edges[1:]))


def causal_dense_attention(
    q: Array, k: Array, v: Array, mask: Array, scale: float, softcap: float | None = None
) -> Array:
  """`dense_attention` for self-attention rows whose later slots are never visible to
  earlier ones: query block [a, e) only scores keys [0, e), skipping the blocks above the
  diagonal (about (n - 1) / 2n of the score work for n blocks: 2.0x less time than dense for
  18 layers of 32 x 320 tokens on this project's CPU host, 2026-12-01).

  Same arguments and result as `dense_attention` (q [b, t, kv, g, hd]; k, v [b, t, kv, hd];
  mask [b, t, t]), and the same values for every real query, provided none sees a key in a
  later slot (`mask[:, i, j]` False for j > i wherever slot i holds a real token: positions
  increase along each row's valid slots, as in left- or right-padded rows). The caller
  guarantees that (`attention(..., causal_slots=True)`); it is not checked (a runtime check
  needs a `lax.cond`, which cost 28 ms a layer here, more than the skip saves on short
  rows). Padding queries may get other values (a left-padding slot at position 0 sees the
  row's first token): nothing reads them, padding keys being invisible to every query.
  """
  t = q.shape[1]
  spans = causal_block_spans(t)
  if k.shape[1] != t or len(spans) == 1:
    return dense_attention(q, k, v, mask, scale, softcap)
  outs = [
      dense_attention(q[:, a:e], k[:, :e], v[:, :e], mask[:, a:e, :e], scale, softcap)
      for a, e in spans
  ]
  return jnp.concatenate(outs, axis=1)  # [b, t, kv, g, hd]


# ---------------------------------------------------------------------------- blockwise


def _blocks(x: Array, block: int, fill) -> Array:
  """[b, n, ...] -> [n / block, b, block, ...], padding n up with `fill`."""
  b, n = x.shape[:2]
  pad = -n % block
  if pad:
    x = jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2), constant_values=fill)
  x = x.reshape((b, (n + pad) // block, block) + x.shape[2:])
  return jnp.moveaxis(x, 1, 0)


def _unblocks(x: Array, n: int) -> Array:
  """[nb, b, block, ...] -> [b, n, ...] (drops the padding)."""
  x = jnp.moveaxis(x, 0, 1)
  return x.reshape((x.shape[0], -1) + x.shape[3:])[:, :n]


def _forward_blocks(qb, qpb, kb, vb, kpb, kvb, window, scale, softcap):
  """Online-softmax forward over blocks.

  qb [nq, b, Q, kv, g, hd], qpb [nq, b, Q]; kb, vb [nk, b, K, kv, hd]; kpb, kvb [nk, b, K].
  Returns out [nq, b, Q, kv, g, hd] (q dtype) and lse [nq, b, kv, g, Q] float32 (+inf for
  rows with no visible key).
  """
  _, b, bq, nkv, g, hd = qb.shape

  def one_query_block(args):
    q, qp = args  # [b, Q, kv, g, hd], [b, Q]

    def step(carry, xs):
      k, v, kp, kv = xs  # [b, K, kv, hd] x2, [b, K] x2
      vis = visible(qp, kp, kv, window)  # [b, Q, K]

      def update(carry):
        m, l, acc = carry  # [b, kv, g, Q] x2, [b, kv, g, Q, hd]
        s, _ = _scores(q, k, scale, softcap)  # [b, kv, g, Q, K]
        vis5 = vis[:, None, None]
        s = jnp.where(vis5, s, MASK_VALUE)
        m_new = jnp.maximum(m, jnp.max(s, axis=-1))
        p = jnp.where(vis5, jnp.exp(s - m_new[..., None]), 0.0)  # [b, kv, g, Q, K]
        corr = jnp.exp(m - m_new)
        l = l * corr + jnp.sum(p, axis=-1)
        pv = jnp.einsum(
            "bkgqs,bskh->bkgqh", p.astype(v.dtype), v, preferred_element_type=jnp.float32
        )
        return m_new, l, acc * corr[..., None] + pv

      return jax.lax.cond(jnp.any(vis), update, lambda c: c, carry), None

    init = (
        jnp.full((b, nkv, g, bq), MASK_VALUE, jnp.float32),
        jnp.zeros((b, nkv, g, bq), jnp.float32),
        jnp.zeros((b, nkv, g, bq, hd), jnp.float32),
    )
    (m, l, acc), _ = jax.lax.scan(step, init, (kb, vb, kpb, kvb))
    seen = l > 0
    out = acc / jnp.where(seen, l, 1.0)[..., None]  # [b, kv, g, Q, hd]
    lse = jnp.where(seen, m + jnp.log(jnp.where(seen, l, 1.0)), jnp.inf)
    return out.transpose(0, 3, 1, 2, 4).astype(qb.dtype), lse

  return jax.lax.map(one_query_block, (qb, qpb))


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8, 9, 10))
def _blockwise(q, k, v, q_pos, k_pos, k_valid, window, scale, softcap, q_block, kv_block):
  return _blockwise_fwd(q, k, v, q_pos, k_pos, k_valid, window, scale, softcap, q_block, kv_block)[
      0
  ]


def _blockwise_fwd(q, k, v, q_pos, k_pos, k_valid, window, scale, softcap, q_block, kv_block):
  t = q.shape[1]
  # Tie the positions to q: in a scanned layer stack they are loop constants, and scan's
  # partial evaluation would otherwise hoist every block pair's mask-only values out of
  # the loop and keep them, stacked: [q blocks, kv blocks, b, kv, g, Q, K], quadratic.
  q, k, v, q_pos, k_pos, k_valid, window = jax.lax.optimization_barrier(
      (q, k, v, q_pos, k_pos, k_valid, window)
  )
  qb, qpb = _blocks(q, q_block, 0), _blocks(q_pos, q_block, -_FAR)
  kb, vb = _blocks(k, kv_block, 0), _blocks(v, kv_block, 0)
  kpb, kvb = _blocks(k_pos, kv_block, _FAR), _blocks(k_valid, kv_block, False)
  out_b, lse = _forward_blocks(qb, qpb, kb, vb, kpb, kvb, window, scale, softcap)
  residuals = (qb, qpb, kb, vb, k_pos, kvb, window, out_b, lse)
  return _unblocks(out_b, t), residuals


def _blockwise_bwd(scale, softcap, q_block, kv_block, residuals, d_out):
  """FlashAttention-2 backward: per block pair, recompute p = exp(s - lse), then
  dv += p^T dO; dp = dO v^T; ds = p (dp - delta) [x (1 - tanh^2) with softcap];
  dq += ds k scale; dk += ds^T q scale, with delta = rowsum(dO * out)."""
  qb, qpb, kb, vb, k_pos, kvb, window, out_b, lse = residuals
  d_out, qpb, k_pos, kvb, window = jax.lax.optimization_barrier(
      (d_out, qpb, k_pos, kvb, window)
  )  # as in _blockwise_fwd
  t, s_len = d_out.shape[1], k_pos.shape[1]
  kpb = _blocks(k_pos, kv_block, _FAR)
  dob = _blocks(d_out, q_block, 0)  # [nq, b, Q, kv, g, hd]
  delta = jnp.einsum(
      "nbqkgh,nbqkgh->nbkgq", dob.astype(jnp.float32), out_b.astype(jnp.float32)
  )  # [nq, b, kv, g, Q]
  dtype = qb.dtype

  def one_key_block(dq_acc, xs):
    k, v, kp, kv = xs  # [b, K, kv, hd] x2, [b, K] x2

    def step(carry, ys):
      q, do, lse_i, delta_i, qp = ys
      vis = visible(qp, kp, kv, window)  # [b, Q, K]

      def grads(carry):
        dk, dv = carry
        s, tanh = _scores(q, k, scale, softcap)  # [b, kv, g, Q, K]
        p = jnp.where(vis[:, None, None], jnp.exp(s - lse_i[..., None]), 0.0)
        dv = dv + jnp.einsum(
            "bkgqs,bqkgh->bskh", p.astype(dtype), do, preferred_element_type=jnp.float32
        )
        dp = jnp.einsum("bqkgh,bskh->bkgqs", do, v, preferred_element_type=jnp.float32)
        ds = p * (dp - delta_i[..., None])
        if tanh is not None:
          ds = ds * (1.0 - tanh * tanh)
        ds = (ds * scale).astype(dtype)
        dq = jnp.einsum("bkgqs,bskh->bqkgh", ds, k, preferred_element_type=jnp.float32)
        dk = dk + jnp.einsum("bkgqs,bqkgh->bskh", ds, q, preferred_element_type=jnp.float32)
        return (dk, dv), dq

      def skip(carry):
        return carry, jnp.zeros(q.shape, jnp.float32)

      return jax.lax.cond(jnp.any(vis), grads, skip, carry)

    zeros = jnp.zeros(k.shape, jnp.float32)
    (dk, dv), dq = jax.lax.scan(step, (zeros, zeros), (qb, dob, lse, delta, qpb))
    return dq_acc + dq, (dk, dv)

  dq, (dk, dv) = jax.lax.scan(one_key_block, jnp.zeros(qb.shape, jnp.float32), (kb, vb, kpb, kvb))
  return (
      _unblocks(dq, t).astype(dtype),
      _unblocks(dk, s_len).astype(kb.dtype),
      _unblocks(dv, s_len).astype(vb.dtype),
      None,
      None,
      None,
      None,
  )


_blockwise.defvjp(_blockwise_fwd, _blockwise_bwd)


def blockwise_attention(
    q: Array,
    k: Array,
    v: Array,
    q_pos: Array,
    k_pos: Array,
    k_valid: Array,
    window: Array | int | None,
    scale: float,
    softcap: float | None = None,
    q_block: int = 512,
    kv_block: int = 512,
) -> Array:
  """Online-softmax attention in blocks (see the module docstring). out like q.

  q [b, t, kv, g, hd]; k, v [b, s, kv, hd]; q_pos [b, t], k_pos [b, s] int; k_valid
  [b, s] bool; window: int32 scalar (may be traced) or None. Blocks are clipped to the
  lengths; t and s need not be multiples of them (padding is invisible).
  """
  q_block = max(1, min(q_block, q.shape[1]))
  kv_block = max(1, min(kv_block, k.shape[1]))
  window = jnp.int32(NO_WINDOW) if window is None else jnp.asarray(window, jnp.int32)
  return _blockwise(
      q,
      k,
      v,
      q_pos.astype(jnp.int32),
      k_pos.astype(jnp.int32),
      k_valid.astype(bool),
      window,
      float(scale),
      softcap,
      q_block,
      kv_block,
  )


# ---------------------------------------------------------------------------- cuDNN


def _index_space_attention(q, k, v, k_valid, window, local, scale, implementation):
  """`jax.nn.dot_product_attention` for rows with positions 0..T-1 and a valid prefix.

  q [b, t, kv, g, hd]; k, v [b, t, kv, hd]; k_valid [b, t]. Query head kv * g + i uses
  KV head kv (the model's grouping, and the function's own).
  """
  b, t, nkv, g, hd = q.shape
  lengths = jnp.maximum(jnp.sum(k_valid, axis=1, dtype=jnp.int32), 1)  # [b]

  def run(local_window):
    out = jax.nn.dot_product_attention(
        q.reshape(b, t, nkv * g, hd),
        k,
        v,
        scale=scale,
        is_causal=True,
        query_seq_lengths=lengths,
        key_value_seq_lengths=lengths,
        local_window_size=local_window,
        implementation=implementation,
    )
    return out.reshape(b, t, nkv, g, hd)

  if window is None:
    return run(None)
  with_window = functools.partial(run, (window - 1, 0))
  if isinstance(local, (bool, np.bool_)):
    return with_window() if local else run(None)
  return jax.lax.cond(local, with_window, lambda: run(None))


def _index_space_rows(q_pos: Array, k_pos: Array, k_valid: Array) -> Array:
  """Scalar bool: every row has positions 0, 1, 2, ... and its valid keys first."""
  t, s = q_pos.shape[1], k_pos.shape[1]
  if t != s:
    return jnp.bool_(False)
  arange = jnp.arange(t, dtype=q_pos.dtype)
  prefix = jnp.all(k_valid[:, 1:] <= k_valid[:, :-1]) if t > 1 else jnp.bool_(True)
  return jnp.all(q_pos == arange) & jnp.all(k_pos == arange) & prefix


def _cudnn_supported(q: Array, softcap: float | None) -> bool:
  return (
      jax.default_backend() == "gpu" and softcap is None and q.dtype in (jnp.bfloat16, jnp.float16)
  )


# ---------------------------------------------------------------------------- splash (TPU)


def _single_tpu() -> bool:
  # One device only: a Mosaic kernel cannot be partitioned by XLA, and it is not wrapped in
  # shard_map yet (no TPU mesh here to measure one on).
  return jax.default_backend() == "tpu" and jax.device_count() == 1


def _splash_supported() -> bool:
  return _single_tpu() or SPLASH_INTERPRET


@functools.lru_cache(maxsize=64)
def _splash_kernel(t: int, group: int, window: int | None, softcap: float | None):
  """One MQA splash kernel for [group, t, hd] queries over [t, hd] keys (cached by shape)."""
  # Imported here: Pallas' TPU package is only needed where this kernel runs.
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm

  if window is None:
    head_mask = sm.CausalMask((t, t))
  else:  # key j visible to query i when i - (window - 1) <= j <= i
    head_mask = sm.LocalMask((t, t), window_size=(window - 1, 0), offset=0)
  b = min(SPLASH_BLOCK, t)
  blocks = sk.BlockSizes(
      block_q=b,
      block_kv=b,
      block_kv_compute=b,
      block_q_dkv=b,
      block_kv_dkv=b,
      block_kv_dkv_compute=b,
      block_q_dq=b,
      block_kv_dq=b,
  )
  return sk.make_splash_mqa_single_device(
      sm.MultiHeadMask([head_mask] * group),
      block_sizes=blocks,
      attn_logits_soft_cap=softcap,
      interpret=jax.default_backend() != "tpu",
  )


def _splash_attention(q, k, v, k_valid, window, local, scale, softcap):
  """The splash kernel on index-space rows (see `_index_space_rows`).

  q [b, t, kv, g, hd]; k, v [b, t, kv, hd]; k_valid [b, t] (a prefix of each row).
  Returns [b, t, kv, g, hd] in q.dtype.
  """
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk

  b, t, nkv, g, hd = q.shape
  tp = -(-t // SPLASH_BLOCK) * SPLASH_BLOCK  # padded to whole blocks
  pad = [(0, 0), (0, tp - t)]
  # The kernel does not scale: fold the query scale in before the (optional) softcap.
  qs = jnp.pad((q * jnp.asarray(scale, q.dtype)), pad + [(0, 0)] * 3)  # [b, tp, kv, g, hd]
  kp = jnp.pad(k, pad + [(0, 0)] * 2)  # [b, tp, kv, hd]
  vp = jnp.pad(v, pad + [(0, 0)] * 2)
  segments = jnp.pad(k_valid.astype(jnp.int32), pad)  # [b, tp]: 1 real, 0 padding

  def run(win):
    kernel = _splash_kernel(tp, g, win, softcap)

    def one_head(qh, kh, vh, seg):  # [g, tp, hd], [tp, hd], [tp, hd], [tp]
      return kernel(qh, kh, vh, segment_ids=sk.SegmentIds(q=seg, kv=seg))

    per_kv = jax.vmap(one_head, in_axes=(0, 0, 0, None))  # over KV heads
    per_row = jax.vmap(per_kv, in_axes=(0, 0, 0, 0))  # over rows
    out = per_row(
        jnp.transpose(qs, (0, 2, 3, 1, 4)),  # [b, kv, g, tp, hd]
        jnp.transpose(kp, (0, 2, 1, 3)),  # [b, kv, tp, hd]
        jnp.transpose(vp, (0, 2, 1, 3)),
        segments,
    )  # [b, kv, g, tp, hd]
    return jnp.transpose(out, (0, 3, 1, 2, 4))[:, :t].astype(q.dtype)

  if window is None or window >= t:
    return run(None)
  if isinstance(local, (bool, np.bool_)):
    return run(window) if local else run(None)
  return jax.lax.cond(local, lambda: run(window), lambda: run(None))


# ---------------------------------------------------------------------------- entry point


def attention(
    q: Array,
    k: Array,
    v: Array,
    q_pos: Array,
    k_pos: Array,
    k_valid: Array,
    *,
    scale: float,
    window: int | None = None,
    local: Array | bool = True,
    softcap: float | None = None,
    impl: AttentionImpl = "auto",
    block_size: int = 512,
    causal_slots: bool = False,
) -> Array:
  """Grouped-query attention for several query tokens. out [b, t, kv, g, hd] in q.dtype.

  Args:
    q: [b, t, kv_heads, group, head_dim] queries (RoPE applied, not yet scaled).
    k, v: [b, s, kv_heads, head_dim] keys and values (s = t, or the cache's slots).
    q_pos: [b, t] int positions of the queries; k_pos: [b, s] of the keys.
    k_valid: [b, s] bool, real keys (not padding, not unfilled cache slots).
    scale: multiplies q.k (the model's query scale).
    window: sliding window (keys with q_pos - k_pos < window), applied where `local`.
    local: bool or traced bool scalar: this layer uses the window.
    softcap: cap * tanh(scores / cap) if set.
    impl: "auto", "blockwise", "cudnn", "splash" or "dense" (module docstring).
    block_size: query and key block of "blockwise".
    causal_slots: the caller guarantees that no key in a later slot than a query is visible
      to it (positions increase along each row's valid slots; q_len = kv_len): "dense" then
      skips the score blocks above the diagonal (`causal_dense_attention`).

  Raises:
    ValueError: unknown impl, "cudnn" where it cannot run (not a GPU, float32 inputs,
      a softcap), or "splash" where it cannot (not a TPU, q_len != kv_len).
  """
  if impl not in IMPLEMENTATIONS:
    raise ValueError(f"unknown attention impl {impl!r}; one of {', '.join(IMPLEMENTATIONS)}")
  if impl == "auto":
    if _cudnn_supported(q, softcap):
      impl = "cudnn"
    elif _single_tpu() and q.shape[1] == k.shape[1]:
      impl = "splash"
    elif q.shape[1] * k.shape[1] <= DENSE_MAX_SCORES:
      impl = "dense"
    else:
      impl = "blockwise"
  eff_window = effective_window(window, local)
  if impl == "dense":
    dense = causal_dense_attention if causal_slots else dense_attention
    return dense(q, k, v, visible(q_pos, k_pos, k_valid, eff_window), scale, softcap)

  def blockwise():
    return blockwise_attention(
        q, k, v, q_pos, k_pos, k_valid, eff_window, scale, softcap, block_size, block_size
    )

  if impl == "blockwise":
    return blockwise()
  if impl == "splash":
    if not _splash_supported() or q.shape[1] != k.shape[1]:
      raise ValueError(
          "attention impl 'splash' needs one TPU device and self-attention rows (q_len = "
          f"kv_len; backend {jax.default_backend()}, {jax.device_count()} devices, q_len "
          f"{q.shape[1]}, kv_len {k.shape[1]})"
      )
    return jax.lax.cond(
        _index_space_rows(q_pos, k_pos, k_valid),
        lambda: _splash_attention(q, k, v, k_valid, window, local, scale, softcap),
        blockwise,
    )
  if not _cudnn_supported(q, softcap):
    raise ValueError(
        "attention impl 'cudnn' needs a GPU, bfloat16/float16 compute and no "
        f"score softcap (backend {jax.default_backend()}, dtype {q.dtype}, "
        f"softcap {softcap})"
    )
  return jax.lax.cond(
      _index_space_rows(q_pos, k_pos, k_valid),
      lambda: _index_space_attention(q, k, v, k_valid, window, local, scale, "cudnn"),
      blockwise,
  )
