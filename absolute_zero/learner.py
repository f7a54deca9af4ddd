"""One policy update: clipped-surrogate loss on a `TrainBatch`, AdamW, jitted and sharded.

`make_train_step(model_config, learner_config, mesh)` returns `train_step(state, batch)`:
  1. split the batch into micro-batches (`lax.scan`, so only one micro-batch of
     activations is alive at a time);
  2. per micro-batch: trunk forward -> hidden `[b, T, D]` -> per-token log-probs of the
     targets at the learner temperature (a head of `absolute_zero.logprob_heads`, logits in
     chunks, never `[b, T, V]`) -> clipped surrogate (+ optional KL / entropy) as a token
     *sum*; by default the vocabulary head's gradient is formed in the same pass as its
     log-probs (`logprob_heads.fused_head_objective`), so each logits chunk is built once;
  3. gradients are accumulated as sums divided by the token count of the *whole* batch,
     so the result is the token-mean over the batch however it is split (never the mean
     of micro-batch means);
  4. clip by global norm, AdamW (optax), step + 1.
The state is donated: the caller must not reuse the `state` it passed in.

`learning_rate=0` freezes the policy (the control arm of `experiments/learning_check.py`):
the step computes no gradients and returns the parameters and optimizer state it was
given, bit for bit (an AdamW step at rate 0 would add -0 * update, which turns a -0.0
parameter into +0.0 and a NaN update into a NaN parameter), with step + 1.

Batch layout and alignment: see `absolute_zero.batching`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from absolute_zero import distributed, logprob_heads
from absolute_zero import loss as loss_lib
from absolute_zero import sharding as sharding_lib
from absolute_zero.batching import TrainBatch
from absolute_zero.models.config import ModelConfig
from absolute_zero.models.transformer import forward, init_params, unembedding


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
  """Optimiser and loss settings (defaults: spec §5)."""

  learning_rate: float = 1e-6  # 0: frozen policy (no gradients, see make_train_step)
  b1: float = 0.9
  b2: float = 0.999
  adam_eps: float = 1e-8
  weight_decay: float = 0.0
  max_grad_norm: float | None = 1.0  # None: no clipping
  clip_low: float = 0.2  # ratio floor 1 - clip_low (for A < 0)
  clip_high: float = 0.2  # ratio ceiling 1 + clip_high (for A > 0)
  log_ratio_clip: float = loss_lib.DEFAULT_LOG_RATIO_CLIP
  micro_batch_size: int | None = None  # rows per micro-batch; None: the whole batch
  temperature: float = 1.0  # must equal the sampler's temperature
  # The log-prob head (absolute_zero.logprob_heads). With entropy_coef == 0 and fused_head,
  # the fused head: the head's gradient formed while each chunk's logits exist (3 vocabulary
  # matmuls per chunk instead of 4), `logprob_row_chunk_size` rows of [rows, vocab] logits at
  # a time (None: all rows at once). Otherwise the autodiff head, `logprob_vocab_chunk_size`
  # vocabulary columns of [rows, columns] logits at a time (None: the whole vocabulary).
  fused_head: bool = True
  logprob_row_chunk_size: int | None = 512
  logprob_vocab_chunk_size: int | None = 512
  kl_coef: float = 0.0  # > 0 needs batch.ref_logprobs
  kl_estimator: loss_lib.KLEstimator = "k3"
  entropy_coef: float = 0.0  # > 0 adds -coef * token-mean entropy to the loss
  advantage_mode: loss_lib.AdvantageMode = "task_relative"
  advantage_eps: float = 1e-6

  def __post_init__(self):
    if not self.learning_rate >= 0:
      raise ValueError(
          f"learning_rate must be >= 0 (0: a frozen policy), got " f"{self.learning_rate}"
      )
    if not self.temperature > 0:
      raise ValueError(f"temperature must be positive, got {self.temperature}")
    if self.micro_batch_size is not None and self.micro_batch_size < 1:
      raise ValueError(f"micro_batch_size must be >= 1 or None, got {self.micro_batch_size}")
    for name in ("logprob_row_chunk_size", "logprob_vocab_chunk_size"):
      value = getattr(self, name)
      if value is not None and value < 1:
        raise ValueError(f"{name} must be >= 1 or None, got {value}")
    if self.max_grad_norm is not None and not self.max_grad_norm > 0:
      raise ValueError(f"max_grad_norm must be positive or None, got {self.max_grad_norm}")
    if self.kl_estimator not in ("k1", "k3"):
      raise ValueError(f"kl_estimator must be 'k1' or 'k3', got {self.kl_estimator!r}")
    if self.advantage_mode not in ("task_relative", "global"):
      raise ValueError(
          f"advantage_mode must be 'task_relative' or 'global', got {self.advantage_mode!r}"
      )
    if self.kl_coef < 0 or self.entropy_coef < 0:
      raise ValueError("kl_coef and entropy_coef must be >= 0")


class TrainState(NamedTuple):
  """Everything one update changes (a pytree; checkpoint it whole)."""

  params: Any
  opt_state: Any
  step: jax.Array  # int32 scalar: updates applied so far


# ---------------------------------------------------------------------------- setup


def make_optimizer(config: LearnerConfig) -> optax.GradientTransformation:
  """clip_by_global_norm (optional) then AdamW at a constant learning rate."""
  adamw = optax.adamw(
      config.learning_rate,
      b1=config.b1,
      b2=config.b2,
      eps=config.adam_eps,
      weight_decay=config.weight_decay,
  )
  if config.max_grad_norm is None:
    return adamw
  return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), adamw)


def train_state_shardings(
    model_config: ModelConfig,
    learner_config: LearnerConfig,
    mesh: Mesh,
    rules=sharding_lib.TRAIN_RULES,
) -> TrainState:
  """NamedShardings for every leaf of the TrainState: optimizer moments like their params."""
  param_sh = sharding_lib.param_shardings(model_config, mesh, rules)
  optimizer = make_optimizer(learner_config)
  abstract_params = jax.eval_shape(lambda: init_params(model_config, jax.random.key(0)))
  abstract_opt = jax.eval_shape(optimizer.init, abstract_params)
  replicated = NamedSharding(mesh, PartitionSpec())
  opt_sh = optax.tree_map_params(
      optimizer, lambda _, sh: sh, abstract_opt, param_sh, transform_non_params=lambda _: replicated
  )
  return TrainState(params=param_sh, opt_state=opt_sh, step=replicated)


def init_train_state(
    params,
    learner_config: LearnerConfig,
    mesh: Mesh,
    model_config: ModelConfig,
    rules=sharding_lib.TRAIN_RULES,
) -> TrainState:
  """A fresh TrainState: params and moments placed on `mesh` by `rules` (one device: the
  1 x 1 x 1 mesh of `sharding.single_device_mesh`).

  The state holds its own copy of `params` (train steps donate the state, so sharing
  buffers with the caller would delete the caller's arrays).
  """
  optimizer = make_optimizer(learner_config)
  shardings = train_state_shardings(model_config, learner_config, mesh, rules)
  params = jax.tree.map(_own_copy, params, shardings.params)
  opt_state = jax.jit(optimizer.init, out_shardings=shardings.opt_state)(params)
  step = distributed.put_global(np.zeros((), np.int32), shardings.step)
  return TrainState(params=params, opt_state=opt_state, step=step)


def abstract_train_state(
    model_config: ModelConfig,
    learner_config: LearnerConfig,
    mesh: Mesh,
    rules=sharding_lib.TRAIN_RULES,
) -> TrainState:
  """The TrainState as `jax.ShapeDtypeStruct`s laid out on `mesh` by `rules` (nothing is
  allocated): the target a checkpoint restore needs."""
  shardings = train_state_shardings(model_config, learner_config, mesh, rules)
  optimizer = make_optimizer(learner_config)

  def init():
    params = init_params(model_config, jax.random.key(0))
    return TrainState(
        params=params, opt_state=optimizer.init(params), step=jnp.zeros((), jnp.int32)
    )

  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      jax.eval_shape(init),
      shardings,
  )


def _own_copy(x, sharding) -> jax.Array:
  """`x` on `sharding`, in buffers of its own (copied on device first: a resharded array
  may share buffers with its source, and train steps donate the state)."""
  return distributed.put_global(jnp.array(x, copy=True), sharding)


def shard_batch(
    batch: TrainBatch | tuple[TrainBatch, ...], mesh: Mesh, rules=sharding_lib.TRAIN_RULES
) -> TrainBatch | tuple[TrainBatch, ...]:
  """Device arrays for `batch` (or each part): rows split over the batch axes of `mesh`.

  Multi-process: every process holds the same whole host batch, and `put_global` makes
  each global array from it (each process fills the shards of its own devices).
  """
  return jax.tree.map(
      lambda x: distributed.put_global(x, sharding_lib.batch_sharding(mesh, rules, np.ndim(x))),
      batch,
  )


# ---------------------------------------------------------------------------- the loss


def token_logprobs(
    params,
    batch: TrainBatch,
    model_config: ModelConfig,
    learner_config: LearnerConfig,
    mesh: Mesh,
    rules=sharding_lib.TRAIN_RULES,
    return_entropy: bool = False,
) -> tuple[jax.Array, jax.Array | None]:
  """Log-probs `[b, T]` of `batch.targets` under the policy at the learner temperature.

  Entry t is log pi(tokens[t + 1] | tokens[<= t]); see `absolute_zero.batching`. The
  autodiff head (`logprob_heads.token_logprobs`), `logprob_vocab_chunk_size` columns at a
  time; the entropy too with `return_entropy`.
  """
  # Rows from `batching`: positions 0, 1, 2, ... in every slot (causal in slot order).
  hidden = forward(
      params, batch.tokens, batch.positions, batch.valid, model_config, mesh, rules, True
  )  # [b, T, D]
  return logprob_heads.token_logprobs(
      hidden,
      unembedding(params, model_config),
      batch.targets,
      temperature=learner_config.temperature,
      vocab_chunk_size=learner_config.logprob_vocab_chunk_size,
      logit_softcap=model_config.final_logit_softcap,
      return_entropy=return_entropy,
  )


def _at_completions(mb: TrainBatch, hidden):
  """(mb, hidden) restricted to each row's loss positions `mb.completion_index` [b, C].

  Per-token arrays become [b, C] (the loss mask also drops the -1 padding entries), the
  hidden states [b, C, D]; the gather's gradient scatters back into [b, T, D].
  """
  index = mb.completion_index  # [b, C]
  keep = index >= 0
  safe = jnp.maximum(index, 0)

  def take(x):  # [b, T] -> [b, C]
    return None if x is None else jnp.take_along_axis(x, safe, axis=1)

  picked = mb._replace(
      targets=take(mb.targets),
      loss_mask=take(mb.loss_mask) & keep,
      old_logprobs=take(mb.old_logprobs),
      ref_logprobs=take(mb.ref_logprobs),
      completion_index=None,
  )
  return picked, jnp.take_along_axis(hidden, safe[:, :, None], axis=1)  # [b, C, D]


def _fused_micro_batch_sums(params, mb: TrainBatch, model_config, lc: LearnerConfig, mesh, rules):
  """`_micro_batch_sums` with the head gradient fused into the forward (no entropy)."""
  # Rows from `batching`: positions 0, 1, 2, ... in every slot (causal in slot order).
  hidden = forward(
      params, mb.tokens, mb.positions, mb.valid, model_config, mesh, rules, True
  )  # [b, T, D]
  use_kl = lc.kl_coef > 0
  if mb.completion_index is not None:
    # Only the loss positions reach the head: [b, T, ...] -> [b, C, ...].
    mb, hidden = _at_completions(mb, hidden)
  b, t, d = hidden.shape

  def token_objective(logp, old, adv, mask, *ref):  # [1, C] each
    pg, _, _ = loss_lib.clipped_surrogate_loss(
        logp,
        old,
        adv,
        mask > 0,
        clip_low=lc.clip_low,
        clip_high=lc.clip_high,
        log_ratio_clip=lc.log_ratio_clip,
    )
    if use_kl:
      pg = pg + lc.kl_coef * loss_lib.kl_penalty(logp, ref[0], mask > 0, lc.kl_estimator)
    return pg

  args = [
      mb.old_logprobs.reshape(-1),
      jnp.broadcast_to(mb.advantages[:, None], (b, t)).reshape(-1),
      mb.loss_mask.astype(jnp.float32).reshape(-1),
  ]
  if use_kl:
    args.append(mb.ref_logprobs.reshape(-1))
  objective, logp = logprob_heads.fused_head_objective(
      hidden.reshape(b * t, d),
      unembedding(params, model_config),
      mb.targets.reshape(-1),
      token_objective,
      args,
      lc.temperature,
      lc.logprob_row_chunk_size,
      model_config.final_logit_softcap,
  )
  logp = logp.reshape(b, t)  # [b, T], no gradient: metrics only
  pg_sum, tokens, metric_sums = loss_lib.clipped_surrogate_loss(
      logp,
      mb.old_logprobs,
      mb.advantages,
      mb.loss_mask,
      clip_low=lc.clip_low,
      clip_high=lc.clip_high,
      log_ratio_clip=lc.log_ratio_clip,
  )
  stats = dict(
      metric_sums, pg_loss_sum=pg_sum, tokens=tokens, objective_sum=jax.lax.stop_gradient(objective)
  )
  if use_kl:
    stats["kl_sum"] = loss_lib.kl_penalty(logp, mb.ref_logprobs, mb.loss_mask, lc.kl_estimator)
  return objective, stats


def _micro_batch_sums(params, mb: TrainBatch, model_config, learner_config, mesh, rules):
  """Token sums for one micro-batch: (objective_sum, stats) with stats all sums."""
  lc = learner_config
  if lc.fused_head and lc.entropy_coef == 0:
    return _fused_micro_batch_sums(params, mb, model_config, lc, mesh, rules)
  need_entropy = lc.entropy_coef > 0
  logp, entropy = token_logprobs(
      params, mb, model_config, lc, mesh, rules, return_entropy=need_entropy
  )  # [b, T]
  pg_sum, tokens, metric_sums = loss_lib.clipped_surrogate_loss(
      logp,
      mb.old_logprobs,
      mb.advantages,
      mb.loss_mask,
      clip_low=lc.clip_low,
      clip_high=lc.clip_high,
      log_ratio_clip=lc.log_ratio_clip,
  )
  objective = pg_sum
  stats = dict(metric_sums, pg_loss_sum=pg_sum, tokens=tokens)
  if lc.kl_coef > 0:
    kl_sum = loss_lib.kl_penalty(logp, mb.ref_logprobs, mb.loss_mask, lc.kl_estimator)
    objective = objective + lc.kl_coef * kl_sum
    stats["kl_sum"] = kl_sum
  if need_entropy:
    entropy_sum = loss_lib.entropy_bonus(entropy, mb.loss_mask)
    objective = objective - lc.entropy_coef * entropy_sum
    stats["entropy_sum"] = entropy_sum
  stats["objective_sum"] = objective
  return objective, stats


def _split_micro_batches(batch: TrainBatch, micro_batch_size: int) -> TrainBatch:
  """[B, ...] -> [M, mb, ...]: micro-batch m takes rows m, m + M, m + 2M, ...

  The strided split keeps every micro-batch spread over all data-parallel shards (rows
  are sharded in contiguous blocks), so the reshape needs no data movement.
  """
  rows = batch.tokens.shape[0]
  num_micro = rows // micro_batch_size
  return jax.tree.map(
      lambda x: x.reshape((micro_batch_size, num_micro) + x.shape[1:]).swapaxes(0, 1), batch
  )


def _check_batch(batch: TrainBatch, lc: LearnerConfig, mesh: Mesh, rules) -> int:
  rows = batch.tokens.shape[0]
  mbs = lc.micro_batch_size or rows
  if rows % mbs:
    raise ValueError(
        f"batch of {rows} rows is not a multiple of micro_batch_size={mbs}; "
        "build it with BatchShapes(row_multiple=micro_batch_size x data-parallel)"
    )
  dp = sharding_lib.data_parallel_size(mesh, rules)
  if mbs % dp:
    raise ValueError(
        f"micro_batch_size={mbs} must be a multiple of the data-parallel "
        f"size {dp} of mesh {dict(mesh.shape)}"
    )
  if lc.kl_coef > 0 and batch.ref_logprobs is None:
    raise ValueError("kl_coef > 0 needs ref_logprobs in the batch")
  return mbs


def _parts(batch) -> tuple[TrainBatch, ...]:
  """A `TrainBatch` or a sequence of them (parts with their own `[B_k, T_k]`) as a tuple."""
  parts = (batch,) if isinstance(batch, TrainBatch) else tuple(batch)
  if not parts or not all(isinstance(p, TrainBatch) for p in parts):
    raise TypeError("batch must be a TrainBatch or a non-empty sequence of TrainBatch parts")
  return parts


def _loss_tokens(parts: Sequence[TrainBatch]) -> jax.Array:
  """Completion (loss) tokens over all parts: the token mean's denominator."""
  return sum(jnp.sum(p.loss_mask.astype(jnp.float32)) for p in parts)


def compute_gradients(
    params,
    batch: TrainBatch | Sequence[TrainBatch],
    model_config: ModelConfig,
    learner_config: LearnerConfig,
    mesh: Mesh,
    rules=sharding_lib.TRAIN_RULES,
    grad_shardings=None,
):
  """(grads, stats): gradient of the batch token-mean objective, micro-batch accumulated.

  `batch` is one `TrainBatch` `[B, T]` or a sequence of parts `[B_k, T_k]`, each padded to
  its own length (rows of very different lengths, e.g. proposer and solver rows, then cost
  their own length, not the longest row's). The objective is the same token mean over all
  completion tokens of all parts; each part is split into micro-batches of
  `micro_batch_size` rows and all micro-batches share one gradient accumulator.
  `stats` holds token sums over the whole batch (see `_micro_batch_sums`).
  """
  lc = learner_config
  parts = _parts(batch)
  mbs = [_check_batch(p, lc, mesh, rules) for p in parts]
  inv_tokens = 1.0 / jnp.maximum(_loss_tokens(parts), 1.0)
  micros = [_split_micro_batches(p, m) for p, m in zip(parts, mbs)]

  def scaled(p, mb):
    objective, stats = _micro_batch_sums(p, mb, model_config, lc, mesh, rules)
    return objective * inv_tokens, stats

  grad_fn = jax.grad(scaled, has_aux=True)

  def constrain(g):  # the accumulator laid out like the params (as the optimizer wants it)
    if grad_shardings is None:
      return g
    return jax.lax.with_sharding_constraint(g, grad_shardings)

  def body(carry, mb):
    acc, stat_acc = carry
    g, stats = grad_fn(params, mb)
    acc = constrain(jax.tree.map(jnp.add, acc, g))
    stat_acc = jax.tree.map(jnp.add, stat_acc, stats)
    return (acc, stat_acc), None

  if len(micros) == 1 and micros[0].tokens.shape[0] == 1:
    # One micro-batch: no accumulator (saves a params-sized buffer).
    grads, stats = grad_fn(params, jax.tree.map(lambda x: x[0], micros[0]))
    return constrain(grads), stats

  zeros = constrain(jax.tree.map(jnp.zeros_like, params))
  stat_zeros = jax.tree.map(
      lambda s: jnp.zeros(s.shape, s.dtype),
      jax.eval_shape(
          lambda p, mb: _micro_batch_sums(p, mb, model_config, lc, mesh, rules)[1],
          params,
          jax.tree.map(lambda x: x[0], micros[0]),
      ),
  )
  carry = (zeros, stat_zeros)
  for micro in micros:  # one scan per part: its micro-batches share the part's [mb, T_k]
    carry, _ = jax.lax.scan(body, carry, micro)
  return carry


def _metrics(stats, grad_norm, lc: LearnerConfig) -> dict[str, jax.Array]:
  tokens = stats["tokens"]
  denom = jnp.maximum(tokens, 1.0)
  out = loss_lib.metric_means(stats, tokens)
  out.update(
      loss=stats["objective_sum"] / denom,
      pg_loss=stats["pg_loss_sum"] / denom,
      grad_norm=grad_norm,
      tokens=tokens,
  )
  if "kl_sum" in stats:
    out["kl"] = stats["kl_sum"] / denom
  if "entropy_sum" in stats:
    out["entropy"] = stats["entropy_sum"] / denom
  return out


def make_train_step(
    model_config: ModelConfig,
    learner_config: LearnerConfig,
    mesh: Mesh,
    rules=sharding_lib.TRAIN_RULES,
) -> Callable[[TrainState, TrainBatch], tuple[TrainState, dict]]:
  """Jitted `train_step(state, batch) -> (state, metrics)`; `state` is donated.

  `batch`: a `TrainBatch` or a tuple of parts with their own lengths (`compute_gradients`).

  Metrics (scalars): loss, pg_loss, grad_norm (before clipping), clip_fraction (+ low /
  high), approx_kl (k3 of pi_old vs pi_theta), ratio_mean, tokens, and kl / entropy when
  their coefficients are on. Shapes of `batch` are static: keep them to a few buckets.
  With `learning_rate == 0` the step is frozen: no gradients, params and optimizer state
  returned unchanged, metrics `tokens` only.
  """
  lc = learner_config
  optimizer = make_optimizer(lc)
  state_sh = train_state_shardings(model_config, lc, mesh, rules)

  def train_step(state: TrainState, batch: TrainBatch | tuple[TrainBatch, ...]):
    if not isinstance(batch, TrainBatch):
      batch = _parts(batch)
    batch = jax.tree.map(
        lambda x: sharding_lib.constrain(
            x, ("activation_batch",) + (None,) * (x.ndim - 1), mesh, rules
        ),
        batch,
    )
    grads, stats = compute_gradients(
        state.params,
        batch,
        model_config,
        lc,
        mesh,
        rules,
        grad_shardings=state_sh.params,
    )
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = TrainState(params=params, opt_state=opt_state, step=state.step + 1)
    return new_state, _metrics(stats, grad_norm, lc)

  def frozen_step(state: TrainState, batch: TrainBatch | tuple[TrainBatch, ...]):
    return state._replace(step=state.step + 1), {"tokens": _loss_tokens(_parts(batch))}

  if lc.learning_rate == 0:
    train_step = frozen_step
  replicated = NamedSharding(mesh, PartitionSpec())
  return jax.jit(train_step, donate_argnums=0, out_shardings=(state_sh, replicated))
