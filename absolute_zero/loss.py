"""Loss pieces for Task-Relative REINFORCE++ with a clipped surrogate (spec §5).

Everything here is a pure, jit-friendly JAX function; the learner wires them
together (coefficients, micro-batching, optimiser). The log-probs these terms take come
from `absolute_zero.logprob_heads`. Conventions:

* Shapes: `B` sequences, `T` token positions, `D` hidden size, `V` vocabulary.
* Masks are built from lengths (`batching.build_train_batch`), never from `token == pad`.
* Per-token terms return masked *sums* plus a token count, so micro-batches
  aggregate by tokens: the learner adds sums and counts over micro-batches and
  divides once at the end (token-mean over the whole batch).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

AdvantageMode = Literal["task_relative", "global"]
KLEstimator = Literal["k1", "k3"]

# Bound on |log π_θ − log π_old| before `exp`. exp(20) ≈ 4.9e8: finite with
# headroom in float32 and bfloat16 (both reach ~3e38) even after multiplying by
# an advantage, yet far outside any ratio PPO cares about (the trust region is
# |log ρ| ≲ 0.2), so it never changes a healthy update; it only stops one stale
# or corrupted token from producing inf/NaN. Beyond the bound the gradient is 0.
DEFAULT_LOG_RATIO_CLIP = 20.0


# ----------------------------------------------------------------------------
# Advantages
# ----------------------------------------------------------------------------


def _is_concrete(*arrays) -> bool:
  return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def group_reward_stats(
    rewards: jax.Array,  # [N] float
    group_ids: jax.Array,  # [N] int in [0, num_groups)
    num_groups: int,
    valid: jax.Array,  # [N] bool
    weights: jax.Array | None = None,  # [N] float >= 0, e.g. response lengths
    unbiased: bool = True,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Per-group reward mean, standard deviation and member count.

  Rows with `valid=False` are ignored. `weights` (optional) weights each row,
  e.g. by its number of response tokens to reproduce the reference's
  token-level whitening. With `unbiased=True` the variance carries Bessel's
  correction `W / (W − 1)`, where `W` is the summed weight (the row count when
  `weights` is None), as the reference's `masked_var` does.

  Returns `(mean [G], std [G], count [G])`; `count` is the number of valid
  rows. A group with `W <= 1` (incl. empty groups) gets std 0.
  """
  rewards = jnp.asarray(rewards, jnp.float32)  # [N]
  group_ids = jnp.asarray(group_ids, jnp.int32)  # [N]
  valid = jnp.asarray(valid, bool)  # [N]
  if rewards.ndim != 1 or group_ids.shape != rewards.shape or valid.shape != rewards.shape:
    raise ValueError(
        "rewards, group_ids and valid must all have shape [N]; got "
        f"{rewards.shape}, {group_ids.shape}, {valid.shape}"
    )
  if num_groups < 1:
    raise ValueError(f"num_groups must be >= 1, got {num_groups}")
  if _is_concrete(group_ids, valid):
    ids = np.asarray(group_ids)[np.asarray(valid)]
    if ids.size and (ids.min() < 0 or ids.max() >= num_groups):
      raise ValueError(
          f"group_ids of valid rows must lie in [0, {num_groups}); "
          f"got range [{ids.min()}, {ids.max()}]"
      )
  row_weight = valid.astype(jnp.float32)  # [N]
  if weights is not None:
    weights = jnp.asarray(weights, jnp.float32)
    if weights.shape != rewards.shape:
      raise ValueError(f"weights must have shape {rewards.shape}, got {weights.shape}")
    row_weight = row_weight * weights
  # Invalid rows are sent to group 0 with weight 0, so they never contribute.
  safe_ids = jnp.where(valid, group_ids, 0)  # [N]
  seg_sum = lambda x: jax.ops.segment_sum(x, safe_ids, num_segments=num_groups)  # noqa: E731
  count = seg_sum(valid.astype(jnp.int32))  # [G]
  total_weight = seg_sum(row_weight)  # [G]
  safe_rewards = jnp.where(valid, rewards, 0.0)  # [N]
  mean = seg_sum(row_weight * safe_rewards) / jnp.maximum(total_weight, 1e-30)  # [G]
  centred = safe_rewards - mean[safe_ids]  # [N]
  sq_sum = seg_sum(row_weight * centred * centred)  # [G]
  denom = total_weight - 1.0 if unbiased else total_weight  # [G]
  var = jnp.where(denom > 0, sq_sum / jnp.where(denom > 0, denom, 1.0), 0.0)  # [G]
  return mean, jnp.sqrt(var), count


def task_relative_advantages(
    rewards: jax.Array,  # [N] float
    group_ids: jax.Array,  # [N] int: (task type, role) group of each row
    num_groups: int,
    valid: jax.Array,  # [N] bool: False for padding rows
    eps: float = 1e-6,
    mode: AdvantageMode = "task_relative",
    weights: jax.Array | None = None,  # [N] optional row weights
    unbiased: bool = True,
) -> jax.Array:  # [N] float32
  """Sequence advantages `A = (r − μ_g) / (σ_g + eps)` (spec §5).

  `mode="task_relative"`: μ, σ per (task, role) group given by `group_ids`.
  `mode="global"`: one baseline over every valid row (ablation; `group_ids`
  is ignored).

  Std convention: Bessel-corrected (`unbiased=True`, sample std), matching
  the reference trainer, which whitens each problem type's batch with verl's
  `masked_whiten` (unbiased `masked_var`). The reference whitens over tokens
  (each row weighted by its response length, then `rsqrt(var + 1e-8)`);
  by default we weight rows equally as the spec's formula does; pass
  `weights=response_lengths` for the reference's token weighting.

  Rows with `valid=False` are ignored in the statistics and get 0. A row
  alone in its group gets 0: it has no peers to form a baseline (its own
  mean is itself, so the centred reward is 0 and the sample std is 0/0);
  0 is that limit and keeps a lone sample from pushing the policy at all.
  Likewise a group whose rewards are all equal (σ = 0) gets 0, also with
  `eps=0`.
  """
  if mode not in ("task_relative", "global"):
    raise ValueError(f"mode must be 'task_relative' or 'global', got {mode!r}")
  if eps < 0:
    raise ValueError(f"eps must be >= 0, got {eps}")
  valid = jnp.asarray(valid, bool)  # [N]
  if mode == "global":
    group_ids = jnp.zeros(jnp.shape(rewards), jnp.int32)  # [N]
    num_groups = 1
  group_ids = jnp.asarray(group_ids, jnp.int32)
  mean, std, count = group_reward_stats(
      rewards, group_ids, num_groups, valid, weights=weights, unbiased=unbiased
  )  # [G] each
  safe_ids = jnp.where(valid, group_ids, 0)  # [N]
  rewards = jnp.asarray(rewards, jnp.float32)
  row_std = std[safe_ids]  # [N]
  keep = valid & (count[safe_ids] > 1) & (row_std > 0)  # [N]
  denom = jnp.where(keep, row_std + eps, 1.0)  # [N]; never 0/0, even with eps=0
  return jnp.where(keep, (rewards - mean[safe_ids]) / denom, 0.0)


# ----------------------------------------------------------------------------
# Policy loss and optional regularisers
# ----------------------------------------------------------------------------


def clipped_surrogate_loss(
    logprobs: jax.Array,  # [B, T] log π_θ at the sampled tokens
    old_logprobs: jax.Array,  # [B, T] log π_old (rollout policy)
    advantages: jax.Array,  # [B] sequence advantages (or [B, T] per token)
    mask: jax.Array,  # [B, T] bool/0-1: response tokens
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    log_ratio_clip: float = DEFAULT_LOG_RATIO_CLIP,
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
  """PPO clipped surrogate, summed over response tokens.

  `ρ = exp(clip(logp − old_logp, −c, c))`; per-token loss
  `−min(ρ·A, clip(ρ, 1 − clip_low, 1 + clip_high)·A)`.

  Returns `(loss_sum, token_count, metric_sums)`: the learner sums these over
  micro-batches and divides by the total token count (token-mean). Metric
  sums (divide by `token_count`, see `metric_means`):
  `clipped_tokens` (tokens whose gradient the clip removed),
  `clipped_low_tokens` / `clipped_high_tokens` (ρ below / above the range with
  A < 0 / A > 0), `approx_kl_sum` (k3 estimate of KL(π_old‖π_θ)),
  `ratio_sum` (Σρ).
  """
  if logprobs.shape != old_logprobs.shape or logprobs.shape != mask.shape:
    raise ValueError(
        "logprobs, old_logprobs and mask must share a [B, T] shape; got "
        f"{logprobs.shape}, {old_logprobs.shape}, {mask.shape}"
    )
  if advantages.ndim == 1:
    if advantages.shape[0] != logprobs.shape[0]:
      raise ValueError(f"advantages [B] must have B={logprobs.shape[0]}, got {advantages.shape}")
    advantages = advantages[:, None]  # [B, 1]
  elif advantages.shape != logprobs.shape:
    raise ValueError(f"advantages must be [B] or {logprobs.shape}, got {advantages.shape}")
  if clip_low < 0 or clip_high < 0 or clip_low >= 1:
    raise ValueError(f"need 0 <= clip_low < 1 and clip_high >= 0; got {clip_low}, {clip_high}")
  if log_ratio_clip <= 0:
    raise ValueError(f"log_ratio_clip must be positive, got {log_ratio_clip}")

  mask = jnp.asarray(mask).astype(bool)  # [B, T]
  advantages = jnp.asarray(advantages, jnp.float32)
  # Sanitise masked positions first so padding can never produce inf/NaN
  # (neither in the value nor in the gradient).
  log_ratio = jnp.where(mask, logprobs.astype(jnp.float32) - old_logprobs.astype(jnp.float32), 0.0)
  log_ratio = jnp.clip(log_ratio, -log_ratio_clip, log_ratio_clip)  # [B, T]
  ratio = jnp.exp(log_ratio)  # [B, T]
  clipped_ratio = jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)  # [B, T]
  per_token = -jnp.minimum(ratio * advantages, clipped_ratio * advantages)  # [B, T]
  maskf = mask.astype(jnp.float32)
  loss_sum = jnp.sum(per_token * maskf)
  token_count = jnp.sum(maskf)

  ratio_sg = jax.lax.stop_gradient(ratio)
  log_ratio_sg = jax.lax.stop_gradient(log_ratio)
  low = (ratio_sg < 1.0 - clip_low) & (advantages < 0) & mask  # [B, T]
  high = (ratio_sg > 1.0 + clip_high) & (advantages > 0) & mask  # [B, T]
  metrics = {
      "clipped_tokens": jnp.sum((low | high).astype(jnp.float32)),
      "clipped_low_tokens": jnp.sum(low.astype(jnp.float32)),
      "clipped_high_tokens": jnp.sum(high.astype(jnp.float32)),
      "approx_kl_sum": jnp.sum(((ratio_sg - 1.0) - log_ratio_sg) * maskf),
      "ratio_sum": jnp.sum(ratio_sg * maskf),
  }
  return loss_sum, token_count, metrics


def metric_means(metric_sums: dict[str, jax.Array], token_count: jax.Array) -> dict[str, jax.Array]:
  """Turn `clipped_surrogate_loss` metric sums into per-token means."""
  denom = jnp.maximum(token_count, 1.0)
  return {
      "clip_fraction": metric_sums["clipped_tokens"] / denom,
      "clip_fraction_low": metric_sums["clipped_low_tokens"] / denom,
      "clip_fraction_high": metric_sums["clipped_high_tokens"] / denom,
      "approx_kl": metric_sums["approx_kl_sum"] / denom,
      "ratio_mean": metric_sums["ratio_sum"] / denom,
  }


def kl_per_token(
    logprobs: jax.Array,  # [B, T] log π_θ
    ref_logprobs: jax.Array,  # [B, T] log π_ref
    estimator: KLEstimator = "k1",
    log_ratio_clip: float = DEFAULT_LOG_RATIO_CLIP,
) -> jax.Array:  # [B, T]
  """Per-token estimate of KL(π_θ‖π_ref) from tokens sampled by the policy.

  `k1 = logp − ref` (unbiased, high variance, can be negative);
  `k3 = exp(ref − logp) − (ref − logp) − 1` (Schulman's low-variance,
  non-negative estimator; its log-difference is clipped before `exp`).
  """
  diff = logprobs.astype(jnp.float32) - ref_logprobs.astype(jnp.float32)  # [B, T]
  if estimator == "k1":
    return diff
  if estimator == "k3":
    neg = jnp.clip(-diff, -log_ratio_clip, log_ratio_clip)
    return jnp.exp(neg) - neg - 1.0
  raise ValueError(f"estimator must be 'k1' or 'k3', got {estimator!r}")


def kl_penalty(
    logprobs: jax.Array,  # [B, T]
    ref_logprobs: jax.Array,  # [B, T]
    mask: jax.Array,  # [B, T]
    estimator: KLEstimator = "k1",
) -> jax.Array:  # scalar: masked token sum
  """Masked token-sum of `kl_per_token`; divide by the token count like the loss.

  Off by default: the learner multiplies it by `kl_coef` (0 in the spec).
  """
  if logprobs.shape != ref_logprobs.shape or logprobs.shape != mask.shape:
    raise ValueError(f"shapes differ: {logprobs.shape}, {ref_logprobs.shape}, {mask.shape}")
  mask = jnp.asarray(mask).astype(bool)
  safe_ref = jnp.where(mask, ref_logprobs, logprobs)  # padding contributes exactly 0
  kl = kl_per_token(logprobs, safe_ref, estimator)
  return jnp.sum(jnp.where(mask, kl, 0.0))


def entropy_bonus(
    entropy: jax.Array,  # [B, T] per-token entropy (logprob_heads.token_logprobs)
    mask: jax.Array,  # [B, T]
) -> jax.Array:  # scalar: masked token sum
  """Masked token-sum of entropy; the learner subtracts `coef * sum / tokens`."""
  if entropy.shape != mask.shape:
    raise ValueError(f"entropy {entropy.shape} and mask {mask.shape} differ")
  return jnp.sum(jnp.where(jnp.asarray(mask).astype(bool), entropy, 0.0))
