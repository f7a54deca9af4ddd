"""The unbiased pass@k estimator against its combinatorial definition."""

import itertools
import math

import pytest

from absolute_zero.evaluation.pass_at_k import default_ks, mean_pass_at_k, pass_at_k


@pytest.mark.parametrize(
    "n, c, k", [(n, c, k) for n in range(1, 8) for c in range(n + 1) for k in range(1, n + 1)]
)
def test_matches_enumeration_of_k_subsets(n, c, k):
  samples = [True] * c + [False] * (n - c)
  subsets = list(itertools.combinations(samples, k))
  expected = sum(any(s) for s in subsets) / len(subsets)
  assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_large_n_matches_binomial_formula():
  n, c, k = 200, 13, 50
  expected = 1 - math.comb(n - c, k) / math.comb(n, k)
  assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12)


def test_pass_at_1_is_fraction_correct():
  assert mean_pass_at_k([10, 10], [3, 7], 1) == pytest.approx(0.5)


def test_bad_arguments():
  with pytest.raises(ValueError):
    pass_at_k(5, 6, 1)
  with pytest.raises(ValueError):
    pass_at_k(5, 2, 6)
  with pytest.raises(ValueError):
    mean_pass_at_k([1], [1, 1], 1)


def test_default_ks():
  assert default_ks(1) == [1]
  assert default_ks(10) == [1, 5, 10]
  assert default_ks(16) == [1, 5, 10, 16]
