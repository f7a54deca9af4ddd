"""Log-prob heads: hidden states and the unembedding -> log-probs of target tokens.

The policy's next-token distribution is `softmax(softcap(h @ Eᵀ) / T)`: hidden state `h`
`[D]`, unembedding `E` `[V, D]`, the model's optional final-logit softcap
`softcap(x) = c * tanh(x / c)` (Gemma), and the sampling temperature `T` (the sampler draws
from the same tempered distribution, `sampling/token_sampling.py`). `tempered_logits` is
that arithmetic, the one place it is written; three heads use it:

  * full (`token_logprobs(..., vocab_chunk_size=None)`): the whole `[N, V]` logits at once; for
    small vocabularies and as the reference of the others;
  * vocabulary chunks (`token_logprobs(..., vocab_chunk_size=C)`): `lax.scan` over `C` columns
    of `E` with an online logsumexp, under `jax.checkpoint`, so forward and backward hold
    `[N, C]` logits, never `[N, V]`; gives the entropy too (`LearnerConfig.logprob_vocab_chunk_size`);
  * fused (`fused_head_objective`): `lax.scan` over chunks of `R` rows; each chunk's
    `[R, V]` logits are built once and the head's gradient is formed in the same pass
    (custom VJP: 3 vocabulary matmuls per chunk instead of 4); for objectives that are a
    sum of per-token terms of the log-prob, no entropy (`LearnerConfig.logprob_row_chunk_size`).

Shapes: `N` rows (tokens), `D` hidden size, `V` vocabulary, `B`/`T` batch/sequence.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from absolute_zero.models.projection import explicit_transposes, transposed_product


def tempered_logits(
    raw: jax.Array,  # [..., V] float32: h @ Eᵀ
    temperature: float | jax.Array,  # scalar, or broadcastable to `raw` (e.g. [N, 1])
    logit_softcap: float | None,
) -> tuple[jax.Array, jax.Array | float]:
  """(`z = softcap(raw) / temperature`, `dz / draw`), both broadcast like `raw`.

  `softcap(x) = c * tanh(x / c)` when `logit_softcap = c` is set, else the identity; the
  slope is `(1 - tanh²(raw / c)) / temperature` (a scalar `1 / temperature` without a
  softcap). Unused slopes cost nothing under `jit`.
  """
  if logit_softcap is None:
    return raw / temperature, 1.0 / temperature
  t = jnp.tanh(raw / logit_softcap)
  return logit_softcap * t / temperature, (1.0 - t * t) / temperature


# ---------------------------------------------------------------------------- log-probs


def _full(
    hidden: jax.Array,  # [B, T, D]
    unembedding: jax.Array,  # [V, D]
    targets: jax.Array,  # [B, T] int32
    temperature: jax.Array,  # [B, T, 1] float32
    logit_softcap: float | None,
    return_entropy: bool,
) -> tuple[jax.Array, jax.Array | None]:  # [B, T], [B, T] | None
  """The whole `[B, T, V]` logits at once (as `models.compute_logits` forms them)."""
  raw = jnp.einsum(
      "...d,vd->...v", hidden, unembedding.astype(hidden.dtype), preferred_element_type=jnp.float32
  )  # [B, T, V]
  logits, _ = tempered_logits(raw, temperature, logit_softcap)
  logp_all = jax.nn.log_softmax(logits, axis=-1)  # [B, T, V]
  logp = jnp.take_along_axis(logp_all, targets[..., None], axis=-1)[..., 0]
  entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1) if return_entropy else None
  return logp, entropy


def _vocab_chunks(
    hidden: jax.Array,  # [N, D]
    unembedding: jax.Array,  # [V, D]
    targets: jax.Array,  # [N] int32
    temperature: jax.Array,  # [N] float32
    chunk: int,
    logit_softcap: float | None,
    return_entropy: bool,
) -> tuple[jax.Array, jax.Array | None]:  # [N], [N] | None
  """Scan over `chunk` vocabulary columns with an online logsumexp.

  Carry per row: running max `m` (held constant for autodiff: the result does
  not depend on it), `s = Σ exp(z − m)`, `w = Σ exp(z − m)·z` (for entropy)
  and the target logit. Padding columns (when `chunk` does not divide V) are
  set to −inf.
  """
  vocab, dim = unembedding.shape
  rows = hidden.shape[0]
  chunk = min(chunk, vocab)
  num_chunks = -(-vocab // chunk)
  pad = num_chunks * chunk - vocab
  if pad:
    unembedding = jnp.pad(unembedding, ((0, pad), (0, 0)))
  xs = (
      unembedding.reshape(num_chunks, chunk, dim),  # [K, C, D]
      jnp.arange(num_chunks, dtype=jnp.int32) * chunk,  # [K] first id of each chunk
  )

  @functools.partial(jax.checkpoint, prevent_cse=False)  # inside scan: CSE is safe
  def step(carry, x):
    m, s, w, target_logit = carry  # [N] each
    emb_chunk, offset = x
    raw = jnp.einsum("nd,vd->nv", hidden, emb_chunk, preferred_element_type=jnp.float32)  # [N, C]
    z, _ = tempered_logits(raw, temperature[:, None], logit_softcap)  # [N, C]
    col_ok = (offset + jnp.arange(chunk)) < vocab  # [C]
    if pad:
      z = jnp.where(col_ok[None, :], z, -jnp.inf)
    m_new = jax.lax.stop_gradient(jnp.maximum(m, jnp.max(z, axis=-1)))  # [N]
    rescale = jnp.exp(m - m_new)  # [N]; exp(-inf) = 0 on the first chunk
    ex = jnp.exp(z - m_new[:, None])  # [N, C]
    s = s * rescale + jnp.sum(ex, axis=-1)
    if return_entropy:
      z_safe = jnp.where(col_ok[None, :], z, 0.0) if pad else z  # no 0 * -inf
      w = w * rescale + jnp.sum(ex * z_safe, axis=-1)
    local = targets - offset  # [N]
    inside = (local >= 0) & (local < chunk)
    picked = jnp.take_along_axis(z, jnp.clip(local, 0, chunk - 1)[:, None], axis=-1)[:, 0]
    target_logit = target_logit + jnp.where(inside, picked, 0.0)
    return (m_new, s, w, target_logit), None

  zeros = jnp.zeros((rows,), jnp.float32)
  init = (jnp.full((rows,), -jnp.inf, jnp.float32), zeros, zeros, zeros)
  (m, s, w, target_logit), _ = jax.lax.scan(step, init, xs)
  lse = m + jnp.log(s)  # [N]
  entropy = lse - w / s if return_entropy else None
  return target_logit - lse, entropy


def token_logprobs(
    hidden: jax.Array,  # [B, T, D]
    unembedding: jax.Array,  # [V, D]
    targets: jax.Array,  # [B, T] int in [0, V)
    temperature: float | jax.Array,  # scalar or [B]
    vocab_chunk_size: int | None,
    logit_softcap: float | None = None,
    return_entropy: bool = False,
) -> tuple[jax.Array, jax.Array | None]:  # ([B, T] float32, [B, T] float32 | None)
  """`log_softmax(softcap(h @ Eᵀ) / temperature)[target]`, and its entropy if asked.

  `vocab_chunk_size=None`: the whole `[B, T, V]` logits at once (`E` cast to the hidden dtype,
  as `models.compute_logits` does). `vocab_chunk_size=C`: `lax.scan` over `C` vocabulary rows of
  `E` with an online logsumexp; each step holds `[B*T, C]` float32 logits, and the step
  body is under `jax.checkpoint`, so the backward recomputes a chunk's logits instead of
  storing them: memory scales with the chunk (the learner bounds `B*T` by micro-batching).
  Logits use the layout `'nd,vd->nv'` with float32 accumulation.

  Why vocabulary chunks, not row chunks, for this autodiff head: on a 2-core CPU both cost
  the same CPU time (same matmul FLOPs; measured ~6.2-7.4 s CPU for fwd+bwd at B*T=2048,
  V=32768, D=640 for row chunks 256/512 and vocab chunks 1024/2048), but row chunks
  re-stream the whole `[V, D]` table per chunk and their backward carries a `[V, D]` float32
  gradient accumulator (671 MB for Gemma 3's V=262144, D=640), while vocab chunks emit each
  `dE` slice once and carry only `[B*T, D]`; compiled temp memory was 19-37 MB vs
  113-145 MB. (Rows are what `fused_head_objective` chunks: it forms `dE` itself.)

  Temperature is applied as the sampler does (logits / temperature, then log-softmax),
  after the optional softcap (`tempered_logits`). `targets` must be valid ids everywhere
  (use any id, e.g. 0, at masked positions). Returns `(logprobs, entropy)`; `entropy` (of
  the same tempered distribution) is None unless `return_entropy`.

  Raises:
    ValueError: shapes that do not match, `vocab_chunk_size` not a positive int or None, a
      softcap that is not positive, a temperature that is neither scalar nor `[B]`.
  """
  if hidden.ndim != 3:
    raise ValueError(f"hidden must be [B, T, D], got shape {hidden.shape}")
  batch, seq, dim = hidden.shape
  if unembedding.ndim != 2 or unembedding.shape[1] != dim:
    raise ValueError(f"unembedding must be [V, {dim}] to match hidden, got {unembedding.shape}")
  if targets.shape != (batch, seq):
    raise ValueError(f"targets must have shape {(batch, seq)}, got {targets.shape}")
  if vocab_chunk_size is not None and (
      isinstance(vocab_chunk_size, bool)
      or not isinstance(vocab_chunk_size, (int, np.integer))
      or vocab_chunk_size < 1
  ):
    raise ValueError(f"vocab_chunk_size must be a positive int or None, got {vocab_chunk_size!r}")
  if logit_softcap is not None and not logit_softcap > 0:
    raise ValueError(f"logit_softcap must be positive or None, got {logit_softcap}")
  temperature = jnp.asarray(temperature, jnp.float32)
  if temperature.ndim == 0:
    temperature = jnp.broadcast_to(temperature, (batch, seq))  # [B, T]
  elif temperature.shape == (batch,):
    temperature = jnp.broadcast_to(temperature[:, None], (batch, seq))  # [B, T]
  else:
    raise ValueError(f"temperature must be a scalar or [B]={batch}, got {temperature.shape}")
  if vocab_chunk_size is None:
    return _full(
        hidden, unembedding, targets, temperature[..., None], logit_softcap, return_entropy
    )
  if batch * seq == 0:
    empty = jnp.zeros((batch, seq), jnp.float32)
    return empty, (empty if return_entropy else None)

  rows = batch * seq
  logp, entropy = _vocab_chunks(
      hidden.reshape(rows, dim),  # [N, D]
      unembedding,
      targets.reshape(rows).astype(jnp.int32),  # [N]
      temperature.reshape(rows),  # [N]
      int(vocab_chunk_size),
      logit_softcap,
      return_entropy,
  )
  logp = logp.reshape(batch, seq)  # [B, T]
  if entropy is not None:
    entropy = entropy.reshape(batch, seq)  # [B, T]
  return logp, entropy


# ---------------------------------------------------------------------------- fused


def fused_head_objective(
    hidden,
    emb,
    targets,
    token_objective,
    token_args,
    temperature,
    row_chunk_size: int | None,
    logit_softcap,
    transposed_emb_grad: bool | None = None,
):
  """(objective_sum, logp [N]) with the head gradient formed in the forward pass.

  hidden [N, D], emb [V, D], targets [N]; token_objective(logp [1, C], *args [1, C]) ->
  scalar sum over the chunk (a per-token separable objective); `row_chunk_size` rows of
  `[rows, V]` logits at a time (None: all N at once). Each chunk's logits are built once:
  the forward already knows d objective / d logp per token, so it forms d hidden and d emb
  right away (3 matmuls per chunk instead of 4 with a checkpointed recompute). `logp` is
  for metrics: no gradient flows through it. `transposed_emb_grad` picks the layout of the
  d emb accumulator (None: [D, V] on CPU).
  """
  n, d = hidden.shape
  chunk = n if row_chunk_size is None else int(min(row_chunk_size, n))
  num_chunks = -(-n // chunk)
  pad = num_chunks * chunk - n

  def split(x, fill=0):
    if pad:
      x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1), constant_values=fill)
    return x.reshape((num_chunks, chunk) + x.shape[1:])

  @jax.custom_vjp
  def run(hidden, emb, targets, args):
    return fwd(hidden, emb, targets, args)[0]

  def fwd(hidden, emb, targets, args):
    xs = (split(hidden), split(targets.astype(jnp.int32)), tuple(split(a) for a in args))

    def body(grad_emb, x):
      h, tgt, chunk_args = x  # [C, D], [C], ([C], ...)
      raw = jnp.einsum("nd,vd->nv", h, emb, preferred_element_type=jnp.float32)  # [C, V]
      z, dz_draw = tempered_logits(raw, temperature, logit_softcap)  # [C, V] each
      lse = jax.nn.logsumexp(z, axis=-1)  # [C]
      logp = jnp.take_along_axis(z, tgt[:, None], axis=-1)[:, 0] - lse  # [C]
      obj, g = jax.value_and_grad(
          lambda lp: token_objective(lp[None], *(a[None] for a in chunk_args))
      )(logp)
      # d logp / d z = onehot(target) - softmax(z)
      dz = -g[:, None] * jnp.exp(z - lse[:, None])  # [C, V]
      dz = dz.at[jnp.arange(dz.shape[0]), tgt].add(g)
      draw = dz * dz_draw  # [C, V]: gradient w.r.t. the raw logits
      grad_h = jnp.einsum("nv,vd->nd", draw, emb.astype(jnp.float32)).astype(h.dtype)
      h32 = h.astype(jnp.float32)
      if transposed_acc:  # [D, C] @ [C, V]: a row-major GEMM, no strided copy of draw
        grad_emb = grad_emb + transposed_product(h32, draw)
      else:
        grad_emb = grad_emb + jnp.einsum("nv,nd->vd", draw, h32)
      return grad_emb, (obj, logp, grad_h)

    # XLA:CPU runs d emb = draw^T h (both operands contracted on their major axis) about
    # 15 % slower than the row-major [D, C] @ [C, V]; accumulate it transposed there and
    # transpose once at the end (Gemma 3 270M, 512-row chunks: 1.84 -> 1.61 s per chunk).
    transposed_acc = explicit_transposes() if transposed_emb_grad is None else transposed_emb_grad
    acc_shape = emb.shape[::-1] if transposed_acc else emb.shape
    grad_emb, (objs, logp, grad_h) = jax.lax.scan(body, jnp.zeros(acc_shape, jnp.float32), xs)
    if transposed_acc:
      grad_emb = grad_emb.T  # [V, D]
    logp = logp.reshape(-1)[:n]
    grad_h = grad_h.reshape(-1, d)[:n]
    return (jnp.sum(objs), logp), (grad_h, grad_emb.astype(emb.dtype), targets, args)

  def bwd(res, cts):
    grad_h, grad_emb, targets, args = res
    ct_obj, _ = cts  # logp carries no gradient (metrics only)
    return (
        ct_obj * grad_h,
        ct_obj * grad_emb,
        np.zeros(targets.shape, jax.dtypes.float0),
        jax.tree.map(jnp.zeros_like, args),
    )

  run.defvjp(fwd, bwd)
  objective, logp = run(hidden, emb, targets, tuple(token_args))
  return objective, jax.lax.stop_gradient(logp)
