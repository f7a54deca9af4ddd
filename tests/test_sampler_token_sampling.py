"""The token-level samplers against analytic distributions computed in NumPy.

Chi-square goodness of fit over many draws (fixed seeds, so deterministic), for every
regime: full-vocabulary two-level sampling (several blocks, a vocabulary that does not fill
the last block), temperature, top-k, top-p by rejection (every way it decides membership:
the block bound, the gathered and the all-rows passes, the bisection fallback), and top-k +
top-p together.
"""

import functools

import numpy as np
import pytest
from scipy import stats

import jax
import jax.numpy as jnp

from absolute_zero.sampling.token_sampling import (
    SamplingKnobs,
    default_block_size,
    greedy_tokens,
    sample_tokens,
)
from absolute_zero.sampling.token_sampling import nucleus_threshold as _nucleus_threshold

nucleus_threshold = jax.jit(_nucleus_threshold)

VOCAB = 1000  # not a multiple of the block size: the padded tail must never be drawn
ROWS = 4000
DRAWS = 5  # -> 20000 samples per case


def _logits(seed=0):
  rng = np.random.default_rng(seed)
  # A skewed distribution with a long tail, like an LM's.
  return (rng.standard_normal(VOCAB) * 2.0 + np.linspace(3, -3, VOCAB)).astype(np.float32)


def reference_distribution(logits, temperature, top_k=0, top_p=1.0):
  """The definition, by sorting: temperature, then top-k, renormalise, then top-p."""
  x = logits.astype(np.float64) / temperature
  p = np.exp(x - x.max())
  p /= p.sum()
  order = np.argsort(-p, kind="stable")
  sorted_p = p[order]
  keep = np.ones_like(sorted_p, bool)
  if top_k > 0:
    keep[top_k:] = False
  renorm = np.where(keep, sorted_p, 0.0)
  renorm /= renorm.sum()
  before = np.cumsum(renorm) - renorm
  keep &= before < top_p
  out = np.zeros_like(p)
  out[order] = np.where(keep, sorted_p, 0.0)
  return out / out.sum()


@functools.lru_cache(maxsize=None)
def _jitted_sampler(num_candidates, draws=8, check_rows=8):
  """One compiled program per static setting: the knobs are traced."""
  return jax.jit(
      functools.partial(
          sample_tokens,
          num_candidates=num_candidates,
          block_size=32,
          top_p_draws=draws,
          top_p_check_rows=check_rows,
      )
  )


def _draw(logits, knobs, num_candidates, draws=8, check_rows=8):
  batch = jnp.broadcast_to(jnp.asarray(logits), (ROWS, VOCAB))
  fn = _jitted_sampler(num_candidates, draws, check_rows)
  tokens = [np.asarray(fn(batch, knobs, jax.random.key(i))[0]) for i in range(DRAWS)]
  return np.concatenate(tokens)


def chi_square_pvalue(samples, expected_probs):
  """Pearson chi-square p-value; bins with expected count < 5 are pooled into one."""
  counts = np.bincount(samples, minlength=expected_probs.size).astype(np.float64)
  assert counts[expected_probs == 0].sum() == 0, "drew a token of probability zero"
  expected = expected_probs * samples.size
  big = expected >= 5
  obs = np.append(counts[big], counts[~big].sum())
  exp = np.append(expected[big], expected[~big].sum())
  if exp[-1] == 0:
    obs, exp = obs[:-1], exp[:-1]
  return stats.chisquare(obs, exp).pvalue


CASES = [
    # (temperature, top_k, top_p, num_candidates)
    (1.0, 0, 1.0, 64),  # two-level over the full vocabulary (32 blocks of 32)
    (0.6, 0, 1.0, 64),
    (1.3, 20, 1.0, 64),  # top-k
    (0.5, 0, 0.7, 64),  # top-p inside the candidates
    (1.0, 0, 0.9, 8),  # top-p needing the exact bisection fallback
    (0.8, 40, 0.8, 64),  # both
]


@pytest.mark.parametrize("temperature,top_k,top_p,num_candidates", CASES)
def test_sampled_distribution_matches_definition(temperature, top_k, top_p, num_candidates):
  logits = _logits()
  expected = reference_distribution(logits, temperature, top_k, top_p)
  if top_p < 1 and not top_k:  # the case tests the path it claims to
    tempered = np.sort(reference_distribution(logits, temperature))[::-1]
    assert (tempered[:num_candidates].sum() >= top_p) == (num_candidates > 8)
  samples = _draw(logits, SamplingKnobs.make(temperature, top_p, top_k), num_candidates)
  assert chi_square_pvalue(samples, expected) > 1e-3
  # The test can fail: the same samples against the untruncated / untempered law.
  if (temperature, top_k, top_p) != (1.0, 0, 1.0):
    assert chi_square_pvalue(samples, reference_distribution(logits, 1.0)) < 1e-6


def _peaked_logits():
  """A few dominant tokens (the nucleus lies in two blocks) over a long flat tail."""
  x = np.full(VOCAB, -4.0, np.float32) + np.linspace(0, -2, VOCAB).astype(np.float32)
  x[[3, 40, 41, 700]] = [6.0, 5.5, 5.0, 4.0]
  return x


def reference_top_p_ties_kept(logits, top_p):
  """The nucleus with every token tied at the boundary kept: mass(x_j > x_i) < top_p."""
  x = logits.astype(np.float64)
  p = np.exp(x - x.max())
  p /= p.sum()
  above = np.array([p[x > xi].sum() for xi in x])
  keep = above < top_p
  return np.where(keep, p, 0.0) / p[keep].sum()


TOP_P_CASES = [
    # (name, logits, temperature, top_p, draws, check_rows)
    ("flat, all-rows passes", _logits, 1.0, 0.9, 8, 8),
    ("flat, gathered passes only", _logits, 1.0, 0.9, 8, ROWS),
    ("one gathered row at a time", _logits, 0.7, 0.8, 8, 1),
    ("mostly the fallback", _logits, 1.0, 0.6, 1, 8),
    ("many rejections", _logits, 1.0, 0.4, 8, 8),
    ("peaked: the block bound decides", _peaked_logits, 1.0, 0.95, 8, 8),
]


@pytest.mark.parametrize(
    "name,make_logits,temperature,top_p,draws,check_rows",
    TOP_P_CASES,
    ids=[c[0] for c in TOP_P_CASES],
)
def test_top_p_by_rejection_matches_definition(
    name, make_logits, temperature, top_p, draws, check_rows
):
  logits = make_logits()
  expected = reference_distribution(logits, temperature, 0, top_p)
  samples = _draw(logits, SamplingKnobs.make(temperature, top_p), 64, draws, check_rows)
  assert chi_square_pvalue(samples, expected) > 1e-3, name
  assert chi_square_pvalue(samples, reference_distribution(logits, temperature)) < 1e-6


def test_top_p_keeps_every_token_tied_at_the_boundary():
  # Sorted: 0.5 then five tokens tied at 0.08 each, then a tail. With top_p 0.6 the
  # sorted prefix would stop inside the tie; the nucleus keeps all five tied tokens.
  x = np.full(VOCAB, -30.0, np.float32)
  x[0] = np.log(0.5)
  x[[10, 200, 201, 650, 999]] = np.log(0.08)
  x[500] = np.log(0.1)
  expected = reference_top_p_ties_kept(x, 0.65)
  assert np.count_nonzero(expected) == 7
  samples = _draw(x, SamplingKnobs.make(1.0, 0.65), 64)
  assert chi_square_pvalue(samples, expected) > 1e-3
  assert set(np.unique(samples)) == {0, 10, 200, 201, 500, 650, 999}


def test_fallback_really_runs_for_wide_nucleus():
  """With 8 candidates the 0.9-nucleus of this distribution is not covered."""
  x = jnp.asarray(_logits())[None]
  probs = jax.nn.softmax(x)
  assert float(jnp.sort(probs[0])[::-1][:8].sum()) < 0.9
  # The threshold found by bisection is the sorted-prefix boundary.
  lse = jax.nn.logsumexp(x, axis=-1)
  key = int(nucleus_threshold(x, lse, jnp.float32(0.9))[0])
  sorted_p = np.sort(np.asarray(probs[0], np.float64))[::-1]
  size = int(np.searchsorted(np.cumsum(sorted_p) - sorted_p, 0.9, side="left"))
  boundary = np.sort(np.asarray(x[0]))[::-1][size - 1]
  assert key == _order_key(boundary)


def _order_key(value: float) -> int:
  """NumPy image of a float32 under the order-preserving float -> int32 map."""
  i = int(np.float32(value).view(np.int32))
  return i ^ 0x7FFFFFFF if i < 0 else i


def test_bisection_threshold_with_mixed_sign_logits():
  x = jnp.asarray([[-5.0, -1.0, 0.5, 2.0, 1e-3, -300.0]], jnp.float32)
  lse = jax.nn.logsumexp(x, axis=-1)
  # Sorted probabilities: 0.710 (2.0), 0.158 (0.5), 0.096 (1e-3), 0.035 (-1), ...
  for top_p, smallest_kept in (
      (0.5, 2.0),
      (0.85, 0.5),
      (0.9, 1e-3),
      (0.97, -1.0),
      (0.999, -1.0),
      (0.9995, -5.0),
  ):
    key = int(nucleus_threshold(x, lse, jnp.float32(top_p))[0])
    assert key == _order_key(smallest_kept), (top_p, smallest_kept)


def test_greedy_is_argmax_and_logprobs_are_tempered_log_softmax():
  rng = np.random.default_rng(3)
  logits = rng.standard_normal((ROWS, VOCAB)).astype(np.float32) * 3
  sample = _jitted_sampler(64)  # same program as the distribution tests
  tokens, logprobs = sample(jnp.asarray(logits), SamplingKnobs.make(0.0), jax.random.key(0))
  tokens = np.asarray(tokens)
  np.testing.assert_array_equal(tokens, logits.argmax(-1))
  ref = _np_log_softmax(logits)[np.arange(ROWS), tokens]
  np.testing.assert_allclose(np.asarray(logprobs), ref, atol=1e-5)
  # Sampled tokens: log-probs under the tempered, untruncated distribution.
  tokens, logprobs = sample(
      jnp.asarray(logits), SamplingKnobs.make(0.7, 0.9, 30), jax.random.key(1)
  )
  tokens = np.asarray(tokens)
  ref = _np_log_softmax(logits / np.float32(0.7))[np.arange(ROWS), tokens]
  np.testing.assert_allclose(np.asarray(logprobs), ref, atol=1e-5)


def _np_log_softmax(x):
  x = x.astype(np.float64)
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_greedy_through_blocks_takes_the_first_of_tied_maxima():
  x = np.full((3, VOCAB), -1.0, np.float32)
  x[0, [40, 900]] = 7.0  # tie across blocks: the lower index
  x[1, [33, 34]] = 7.0  # tie inside a block
  x[2, VOCAB - 1] = 7.0  # in the padded last block
  tokens, lse = jax.jit(greedy_tokens, static_argnums=1)(jnp.asarray(x), 32)
  np.testing.assert_array_equal(np.asarray(tokens), [40, 33, VOCAB - 1])
  np.testing.assert_allclose(
      np.asarray(lse), np.log(np.exp(x.astype(np.float64)).sum(-1)), rtol=1e-6
  )


def test_default_block_size():
  assert default_block_size(262_144) == 512
  assert default_block_size(512) == 32
  assert default_block_size(151_936) == 512


@pytest.mark.parametrize("n", [1, 5, 32, 100, 512, 1000])
def test_pick_from_cdf_is_the_inverse_cdf(n):
  """The two-stage pick equals searchsorted on the full prefix sums (integer weights, so
  every sum is exact), including zero weights, a ragged last chunk, u near 0 and 1."""
  from absolute_zero.sampling.token_sampling import _pick_from_cdf

  rng = np.random.default_rng(n)
  weights = rng.integers(0, 4, size=(6, n)).astype(np.float32)
  weights[:, rng.random(n) < 0.3] = 0.0  # runs of zeros, whole zero chunks
  weights[:, -1] = 0.0  # a zero tail: the rounding guard must never pick it
  weights[:, 0] = np.where(weights.sum(-1) == 0, 1.0, weights[:, 0])
  u = rng.random((6, 40)).astype(np.float32)
  u[:, :3] = [0.0, np.nextafter(np.float32(1), np.float32(0)), 0.5]
  got = np.asarray(jax.jit(_pick_from_cdf)(jnp.asarray(weights), jnp.asarray(u)))
  cdf = np.cumsum(weights, axis=-1)
  target = u * cdf[:, -1:]
  want = np.stack([np.searchsorted(c, t, side="right") for c, t in zip(cdf, target)])
  assert np.array_equal(got, want)
  assert np.all(np.take_along_axis(weights, got, axis=-1) > 0)


def test_pick_from_cdf_never_lands_on_a_zero_weight_under_rounding():
  """Float weights over eight decades, u up to the largest float below 1: rounding makes
  the residual reach past a chunk's own prefix sums, and the pick must still stay on a
  positive weight."""
  from absolute_zero.sampling.token_sampling import _pick_from_cdf

  rng = np.random.default_rng(7)
  n = 512
  weights = (10.0 ** rng.uniform(-8, 0, size=(64, n))).astype(np.float32)
  weights[:, 16::32] = 0.0  # a zero after the middle of every chunk ...
  weights[:, 31::32] = 0.0  # ... and at every chunk's end
  top = np.nextafter(np.float32(1), np.float32(0))
  u = np.concatenate(
      [rng.uniform(0.999, 1.0, size=(64, 200)), np.full((64, 8), top)], axis=-1
  ).astype(np.float32)
  u = np.minimum(u, top)
  got = np.asarray(jax.jit(_pick_from_cdf)(jnp.asarray(weights), jnp.asarray(u)))
  assert got.min() >= 0 and got.max() < n
  assert np.all(np.take_along_axis(weights, got, axis=-1) > 0)


@pytest.mark.parametrize(
    "vocab,num,block_size",
    [
        (262144, 256, 512),
        (1000, 64, 32),
        (5000, 40, 64),
        (300, 64, 32),
        (200, 64, 32),
        (4096, 8, 64),
    ],
)
def test_top_candidates_equal_a_full_top_k(vocab, num, block_size):
  """The block-cut candidates are the full row's lax.top_k (distinct values), including
  rows whose largest entries crowd into one block, -inf entries and a ragged last block."""
  from absolute_zero.sampling.token_sampling import top_candidates

  rng = np.random.default_rng(vocab)
  x = rng.standard_normal((4, vocab)).astype(np.float32)
  x[1, :num] += 50.0  # the whole top in the first few blocks
  x[2, -num:] += 50.0  # ... in the last (ragged) ones
  x[3, rng.random(vocab) < 0.5] = -np.inf
  x = jnp.asarray(x)
  m = jnp.max(x, axis=-1)
  scale = jnp.float32(1.0 / 0.7)
  values, ids = jax.jit(top_candidates, static_argnums=(3, 4))(x, m, scale, num, block_size)
  want_values, want_ids = jax.lax.top_k((x - m[:, None]) * scale, num)
  np.testing.assert_array_equal(np.asarray(ids), np.asarray(want_ids))
  np.testing.assert_array_equal(np.asarray(values), np.asarray(want_values))
