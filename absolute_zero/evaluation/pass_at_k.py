"""The unbiased pass@k estimator (Chen et al., 2021, the HumanEval paper).

With n samples of which c are correct, pass@k = 1 - C(n - c, k) / C(n, k): the chance that
k samples drawn without replacement from the n include a correct one. Computed as a
product so large n does not overflow.
"""

from __future__ import annotations

from typing import Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
  """Unbiased pass@k for one problem with `c` correct out of `n` samples (k <= n)."""
  if not 0 <= c <= n:
    raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
  if not 1 <= k <= n:
    raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
  if n - c < k:
    return 1.0
  prob_all_wrong = 1.0
  for i in range(n - c + 1, n + 1):  # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i)
    prob_all_wrong *= 1.0 - k / i
  return 1.0 - prob_all_wrong


def mean_pass_at_k(num_samples: Sequence[int], num_correct: Sequence[int], k: int) -> float:
  """pass@k averaged over problems."""
  if len(num_samples) != len(num_correct):
    raise ValueError("num_samples and num_correct differ in length")
  if not num_samples:
    return 0.0
  return sum(pass_at_k(n, c, k) for n, c in zip(num_samples, num_correct)) / len(num_samples)


def default_ks(n: int) -> list[int]:
  """1, and the usual 5, 10, ... that fit in n samples, and n itself."""
  return sorted({k for k in (1, 5, 10, 20, 50, 100, n) if 1 <= k <= n})
