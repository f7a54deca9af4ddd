"""Choosing the next token from logits: greedy, exact full-vocabulary sampling, top-k/top-p.

Pure functions on one decode step's logits `[batch, vocab]`. The knobs (temperature, top-k,
top-p) are traced scalars, so changing them never recompiles; the three regimes are
`lax.cond` branches chosen at run time.

Why not `jax.random.categorical`: over Gemma's 262k vocabulary it draws one Gumbel number
per entry per step (8.4 M at batch 32), which on a CPU costs as much as the whole forward.
Instead, `sample_two_level` is exact inverse-CDF sampling in two stages: the vocabulary is
cut into `num_blocks` blocks of `block_size`; one `exp` pass gives every block's mass, a
block is drawn from those masses, then a token is drawn inside the chosen block from its
recomputed weights. P(token) = P(block) P(token | block) = mass_b / Z * e_t / mass_b = e_t / Z,
with two uniforms per row instead of `vocab` Gumbels.

Truncation (top-k, top-p) follows the usual definition (as in Hugging Face's warpers, applied
after temperature, top-k before top-p): sort the tempered probabilities in decreasing order,
keep the `k` largest, renormalise, then keep the smallest prefix whose mass reaches `top_p`
(a token is kept when the mass strictly before it is `< top_p`). It is computed on the
`num_candidates` largest entries from `lax.top_k`. That is exact whenever the kept set lies
inside the candidates: always with `0 < top_k <= num_candidates`, and for top-p alone when
the candidates' mass reaches `top_p`. When it does not, an exact fallback runs instead: a
bisection on the float bit pattern finds the smallest tempered logit `t` with
mass(logit >= t) >= top_p, and two-level sampling runs on the logits masked below `t`
(identical to the sorted-prefix rule except that ties at the threshold are all kept).

The log-probability returned for every sampled token is the *untruncated* tempered
log-softmax `log_softmax(logits / T)[token]` — what the learner recomputes
(`absolute_zero.logprob_heads.token_logprobs`). Greedy (T == 0) reports T = 1 log-probs.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
_NEG_INF = -jnp.inf


class SamplingKnobs(NamedTuple):
  """Run-time sampling settings (traced scalars, so new values do not recompile)."""

  temperature: Array  # [] float32; <= 0 means greedy
  top_p: Array  # [] float32 in (0, 1]; 1 means off
  top_k: Array  # [] int32; 0 means off

  @staticmethod
  def make(temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0) -> "SamplingKnobs":
    return SamplingKnobs(jnp.float32(temperature), jnp.float32(top_p), jnp.int32(top_k))


def default_block_size(vocab_size: int) -> int:
  """A power of two near sqrt(vocab): both stages then scan about sqrt(vocab) entries."""
  return max(8, 2 ** math.ceil(math.log2(math.sqrt(max(vocab_size, 1)))))


def _pick_from_cdf(weights: Array, u: Array) -> Array:
  """Inverse-CDF draw: index i with probability weights[i] / sum (weights >= 0).

  weights [b, n] float32, u [b] uniform in [0, 1). Never returns a zero-weight index.
  """
  cdf = jnp.cumsum(weights, axis=-1)  # [b, n]
  target = u * cdf[:, -1]  # [b]
  idx = jnp.sum(cdf <= target[:, None], axis=-1)  # [b], first i with cdf[i] > target
  n = weights.shape[-1]
  last_positive = n - 1 - jnp.argmax((weights > 0)[:, ::-1], axis=-1)  # rounding guard
  return jnp.minimum(idx, last_positive).astype(jnp.int32)


def _blocks(x: Array, block_size: int) -> Array:
  """x [b, V] -> [b, num_blocks, block_size], padding the vocabulary with -inf."""
  b, v = x.shape
  num_blocks = -(-v // block_size)
  pad = num_blocks * block_size - v
  if pad:
    x = jnp.pad(x, ((0, 0), (0, pad)), constant_values=_NEG_INF)
  return x.reshape(b, num_blocks, block_size)


def sample_two_level(x: Array, key: Array, block_size: int) -> tuple[Array, Array]:
  """Exact draw from softmax(x) per row; x [b, V] float32 (entries may be -inf).

  Returns (token ids [b] int32, logsumexp(x) [b] float32 as a by-product).
  """
  blocks = _blocks(x, block_size)  # [b, nb, bs]
  m = jnp.max(x, axis=-1)  # [b]
  block_mass = jnp.sum(jnp.exp(blocks - m[:, None, None]), axis=-1)  # [b, nb]
  u = jax.random.uniform(key, (x.shape[0], 2), jnp.float32)  # [b, 2]
  blk = _pick_from_cdf(block_mass, u[:, 0])  # [b]
  inner = jnp.take_along_axis(blocks, blk[:, None, None], axis=1)[:, 0]  # [b, bs]
  within = _pick_from_cdf(jnp.exp(inner - m[:, None]), u[:, 1])  # [b]
  lse = m + jnp.log(jnp.sum(block_mass, axis=-1))
  return blk * block_size + within, lse


def _sortable_int(x: Array) -> Array:
  """float32 -> int32 with the same order (for bisection on float values)."""
  i = jax.lax.bitcast_convert_type(x, jnp.int32)
  return jnp.where(i < 0, i ^ jnp.int32(0x7FFFFFFF), i)


def nucleus_threshold(x: Array, lse: Array, top_p: Array) -> Array:
  """Per row, the largest t with sum(softmax(x)[x >= t]) >= top_p, as a sortable int.

  x [b, V] float32 tempered logits, lse [b] their logsumexp. Bisection over the int32
  images of the floats (32 halvings of [min, max]); returns the int32 key of t [b].
  """
  keys = _sortable_int(x)  # [b, V]
  probs = jnp.exp(x - lse[:, None])  # [b, V]
  lo = jnp.min(keys, axis=-1)  # mass(keys >= lo) = 1 >= top_p: lo always qualifies
  hi = jnp.max(keys, axis=-1)

  def body(_, bounds):
    lo, hi = bounds
    # Upper middle (so the loop makes progress), in wrapping uint32 arithmetic: hi - lo
    # can exceed the int32 range when the row has logits of both signs.
    lo_u, hi_u = lo.astype(jnp.uint32), hi.astype(jnp.uint32)
    mid = (lo_u + ((hi_u - lo_u) >> 1) + ((hi_u - lo_u) & 1)).astype(jnp.int32)
    mass = jnp.sum(jnp.where(keys >= mid[:, None], probs, 0.0), axis=-1)
    ok = mass >= top_p
    return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid - 1)

  lo, hi = jax.lax.fori_loop(0, 33, body, (lo, hi))
  return lo


def truncated_weights_from_candidates(
    cand: Array, lse: Array, top_k: Array, top_p: Array
) -> tuple[Array, Array]:
  """Weights of the kept candidates and whether the candidates were enough.

  cand [b, C] tempered logits sorted in decreasing order; lse [b] the full logsumexp.
  Returns (weights [b, C] >= 0, unnormalised; covered [b] bool).
  """
  c = cand.shape[-1]
  rank = jnp.arange(c)[None, :]  # [1, C]
  probs = jnp.exp(cand - lse[:, None])  # [b, C], normalised over the full vocabulary
  use_k = top_k > 0
  keep_k = jnp.where(use_k, rank < top_k, True)  # [b, C]
  kept = jnp.where(keep_k, probs, 0.0)
  # Renormalise over the top-k set when top-k is on; over the full vocabulary otherwise.
  total = jnp.where(use_k, jnp.sum(kept, axis=-1, keepdims=True), 1.0)  # [b, 1]
  renorm = kept / total
  before = jnp.cumsum(renorm, axis=-1) - renorm  # mass strictly before each candidate
  keep = keep_k & (before < top_p)
  covered = use_k | (jnp.sum(probs, axis=-1) >= top_p)  # [b]
  return jnp.where(keep, probs, 0.0), covered


def sample_tokens(
    logits: Array,
    knobs: SamplingKnobs,
    key: Array,
    *,
    num_candidates: int = 256,
    block_size: int | None = None,
) -> tuple[Array, Array]:
  """Next tokens and their tempered log-probs from logits [b, V] float32.

  Returns (tokens [b] int32, logprobs [b] float32). See the module docstring.
  """
  vocab = logits.shape[-1]
  block_size = block_size or default_block_size(vocab)
  num_candidates = min(num_candidates, vocab)
  logits = logits.astype(jnp.float32)
  greedy = knobs.temperature <= 0
  temperature = jnp.where(greedy, 1.0, knobs.temperature)

  # Each branch returns (tokens [b], logsumexp of the tempered logits [b]).
  def greedy_branch(key):
    del key
    return (jnp.argmax(logits, axis=-1).astype(jnp.int32), jax.nn.logsumexp(logits, axis=-1))

  def full_branch(key):
    return sample_two_level(logits / temperature, key, block_size)

  def truncated_branch(key):
    x = logits / temperature  # [b, V]
    lse = jax.nn.logsumexp(x, axis=-1)  # [b]
    cand, cand_idx = jax.lax.top_k(x, num_candidates)  # [b, C] each, decreasing
    weights, covered = truncated_weights_from_candidates(cand, lse, knobs.top_k, knobs.top_p)
    k_cand, k_fallback = jax.random.split(key)

    def from_candidates(_):
      u = jax.random.uniform(k_cand, (x.shape[0],), jnp.float32)
      j = _pick_from_cdf(weights, u)  # [b]
      return jnp.take_along_axis(cand_idx, j[:, None], axis=-1)[:, 0].astype(jnp.int32)

    def exact_fallback(_):
      # Only top-p alone can need this (top-k <= num_candidates is always covered).
      threshold = nucleus_threshold(x, lse, knobs.top_p)  # [b]
      masked = jnp.where(_sortable_int(x) >= threshold[:, None], x, _NEG_INF)
      return sample_two_level(masked, k_fallback, block_size)[0]

    tokens = jax.lax.cond(jnp.all(covered), from_candidates, exact_fallback, None)
    return tokens, lse

  truncate = (knobs.top_k > 0) | (knobs.top_p < 1.0)
  branch = jnp.where(greedy, 0, jnp.where(truncate, 2, 1))
  tokens, lse = jax.lax.switch(branch, (greedy_branch, full_branch, truncated_branch), key)
  picked = jnp.take_along_axis(logits, tokens[:, None], axis=-1)[:, 0] / temperature
  return tokens, picked - lse
