"""Learner: token-weighted micro-batch accumulation, 1 device vs 8-device mesh, remat, KL/entropy.

The reference objective below is written out with plain jnp from the spec's formula
(full `[B, T, V]` log-softmax, no chunking, no micro-batches, nothing from `loss.py`), and
differentiated by `jax.grad`: the learner's accumulated gradients must equal it.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from absolute_zero import learner, sharding
from absolute_zero.batching import BatchShapes, build_train_batch
from absolute_zero.models import get_config, init_params
from absolute_zero.models.transformer import compute_logits, forward

ONE_DEVICE = sharding.single_device_mesh()
MODEL = get_config("tiny-gemma3")  # local + global layers, window 8 < T, all family switches
# Adam's first step is lr * g / (|g| + eps); a larger eps keeps coordinates whose
# gradient is ~0 (where float summation order decides the sign) from moving by ~lr.
LEARNER = learner.LearnerConfig(
    learning_rate=1e-3,
    adam_eps=1e-4,
    temperature=0.7,
    logprob_row_chunk_size=24,
    logprob_vocab_chunk_size=24,
    micro_batch_size=8,
)


def reference_objective(params, batch, config=MODEL, lc=LEARNER):
  """Token-mean clipped surrogate over the whole batch, from the formula."""
  hidden = forward(params, batch.tokens, batch.positions, batch.valid, config)
  logits = compute_logits(params, hidden, config) / lc.temperature  # [B, T, V]
  logp_all = jax.nn.log_softmax(logits, axis=-1)
  logp = jnp.take_along_axis(logp_all, batch.targets[..., None], axis=-1)[..., 0]  # [B, T]
  mask = batch.loss_mask.astype(jnp.float32)
  log_ratio = jnp.clip(jnp.where(batch.loss_mask, logp - batch.old_logprobs, 0.0), -20, 20)
  ratio = jnp.exp(log_ratio)
  adv = batch.advantages[:, None]
  per_token = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - lc.clip_low, 1 + lc.clip_high) * adv)
  return jnp.sum(per_token * mask) / jnp.sum(mask), logp


def _tree_max_abs_diff(a, b):
  # On the host: `a` and `b` may live on different meshes (one device vs eight).
  pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b))
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in pairs)


@pytest.fixture(scope="module")
def setup():
  params = init_params(MODEL, jax.random.key(3))
  # The preset's N(0, 1) tied embedding makes near one-hot logits; scale it so the policy
  # has real entropy and moderate log-probs, as a trained model does.
  params = {**params, "embedding": params["embedding"] * 0.1}
  rng = np.random.default_rng(7)
  # Very uneven completion lengths so micro-batches hold different token counts.
  prompt_lens = [3, 7, 2, 5, 4, 9, 1, 6]
  comp_lens = [20, 1, 12, 0, 17, 3, 22, 8]
  prompts = [list(rng.integers(1, MODEL.vocab_size, n)) for n in prompt_lens]
  comps = [list(rng.integers(1, MODEL.vocab_size, n)) for n in comp_lens]
  advantages = rng.normal(size=8).astype(np.float32)
  zeros = [[0.0] * n for n in comp_lens]
  shapes = BatchShapes(length_buckets=(16, 32), row_multiple=8)
  draft = build_train_batch(prompts, comps, advantages, zeros, shapes=shapes)
  # Old log-probs = current ones + noise: ratios both inside and outside the clip range.
  _, logp = jax.jit(reference_objective)(params, learner.shard_batch(draft, ONE_DEVICE))
  logp = np.asarray(logp)
  olds = [
      list(logp[i, p - 1 : p - 1 + c] + rng.normal(0, 0.3, c))
      for i, (p, c) in enumerate(zip(prompt_lens, comp_lens))
  ]
  batch = build_train_batch(prompts, comps, advantages, olds, shapes=shapes)
  ref_obj, _ = jax.jit(reference_objective)(params, learner.shard_batch(batch, ONE_DEVICE))
  ref_grads = jax.jit(lambda p, b: jax.grad(lambda q: reference_objective(q, b)[0])(p))(
      params, learner.shard_batch(batch, ONE_DEVICE)
  )
  return dict(params=params, batch=batch, ref_obj=float(ref_obj), ref_grads=ref_grads)


@functools.lru_cache(maxsize=None)
def _step_fn(micro_batch_size):
  lc = learner.LearnerConfig(**{**LEARNER.__dict__, "micro_batch_size": micro_batch_size})
  return lc, learner.make_train_step(MODEL, lc, ONE_DEVICE)


@pytest.fixture(scope="module")
def one_step_results(setup):
  """Params and metrics after one step, with 1 and with 4 micro-batches."""
  out = {}
  for mbs in (8, 2):
    lc, step = _step_fn(mbs)
    state = learner.init_train_state(setup["params"], lc, ONE_DEVICE, MODEL)
    new_state, metrics = step(state, learner.shard_batch(setup["batch"], ONE_DEVICE))
    out[mbs] = (new_state, jax.device_get(metrics))
  return out


def test_micro_batches_hold_uneven_token_counts(setup):
  # Rows m, m + 4 form micro-batch m when splitting 8 rows into 4 (see _split_micro_batches).
  mask = setup["batch"].loss_mask
  counts = [int(mask[[m, m + 4]].sum()) for m in range(4)]
  assert len(set(counts)) == 4, counts  # the mean of micro-batch means would be wrong


@pytest.mark.parametrize("fused_head,at_completions", [(True, True), (True, False), (False, True)])
def test_gradients_equal_the_whole_batch_token_mean(setup, fused_head, at_completions):
  # 4 micro-batches; the 1-micro-batch step is checked through its update below.
  # at_completions: the head sees only the batch's completion_index positions (the
  # builder's default) or every position; both must equal the all-position reference.
  lc = dataclasses.replace(LEARNER, micro_batch_size=2, fused_head=fused_head)
  batch = setup["batch"]
  assert batch.completion_index is not None
  assert batch.completion_index.shape[1] < batch.tokens.shape[1]  # fewer head rows
  if not at_completions:
    batch = batch._replace(completion_index=None)
  grads, stats = jax.jit(lambda p, b: learner.compute_gradients(p, b, MODEL, lc, ONE_DEVICE))(
      setup["params"], learner.shard_batch(batch, ONE_DEVICE)
  )
  scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(setup["ref_grads"]))
  assert scale > 1e-3
  assert _tree_max_abs_diff(grads, setup["ref_grads"]) < 1e-5 * scale
  assert float(stats["tokens"]) == setup["batch"].num_tokens
  np.testing.assert_allclose(
      float(stats["objective_sum"]) / float(stats["tokens"]), setup["ref_obj"], rtol=1e-5
  )


def _rows_of(batch, rows):
  """The given rows of the fixture's rollouts, rebuilt as their own (shorter) batch."""
  b = jax.device_get(batch)
  prompts, comps, olds = [], [], []
  for i in rows:
    p = int(np.argmax(b.loss_mask[i])) + 1 if b.loss_mask[i].any() else int(b.valid[i].sum())
    total = int(b.valid[i].sum())
    prompts.append(list(b.tokens[i, :p]))
    comps.append(list(b.tokens[i, p:total]))
    olds.append(list(b.old_logprobs[i, p - 1 : total - 1]))
  return prompts, comps, b.advantages[list(rows)], olds


def test_parts_with_their_own_lengths_equal_the_whole_batch(setup):
  # The self-play update packs proposer and solver rows as separate parts, each padded to
  # its own length bucket; the gradient must still be the token mean over all rows, as the
  # whole-batch formula (the reference) computes it.
  long_rows, short_rows = (0, 2, 4, 6), (1, 3, 5, 7)  # completions 20,12,17,22 | 1,0,3,8
  parts = []
  for rows, buckets in ((long_rows, (16, 32)), (short_rows, (8, 16, 32))):
    prompts, comps, adv, olds = _rows_of(setup["batch"], rows)
    parts.append(
        build_train_batch(
            prompts,
            comps,
            adv,
            olds,
            shapes=BatchShapes(length_buckets=buckets, row_multiple=2),
            min_rows=4,
        )
    )
  assert parts[0].tokens.shape[1] > parts[1].tokens.shape[1]  # really different lengths
  assert sum(p.num_tokens for p in parts) == setup["batch"].num_tokens
  lc = dataclasses.replace(LEARNER, micro_batch_size=2)
  grads, stats = jax.jit(lambda p, b: learner.compute_gradients(p, b, MODEL, lc, ONE_DEVICE))(
      setup["params"], learner.shard_batch(tuple(parts), ONE_DEVICE)
  )
  scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(setup["ref_grads"]))
  assert _tree_max_abs_diff(grads, setup["ref_grads"]) < 1e-5 * scale
  assert float(stats["tokens"]) == setup["batch"].num_tokens
  np.testing.assert_allclose(
      float(stats["objective_sum"]) / float(stats["tokens"]), setup["ref_obj"], rtol=1e-5
  )
  # The jitted train step takes the parts too, and matches the one-batch step.
  step = learner.make_train_step(MODEL, lc, ONE_DEVICE)
  state = learner.init_train_state(setup["params"], lc, ONE_DEVICE, MODEL)
  new_parts, m_parts = step(state, learner.shard_batch(tuple(parts), ONE_DEVICE))
  state = learner.init_train_state(setup["params"], lc, ONE_DEVICE, MODEL)
  new_one, m_one = step(state, learner.shard_batch(setup["batch"], ONE_DEVICE))
  assert _tree_max_abs_diff(new_parts.params, new_one.params) < 1e-6
  np.testing.assert_allclose(float(m_parts["loss"]), float(m_one["loss"]), rtol=1e-5)


def test_four_micro_batches_equal_one(setup, one_step_results):
  state_1, metrics_1 = one_step_results[8]
  state_4, metrics_4 = one_step_results[2]
  moved = _tree_max_abs_diff(state_1.params, setup["params"])
  assert moved > 1e-4  # the step really changed the params: the comparison can fail
  assert _tree_max_abs_diff(state_1.params, state_4.params) < 1e-5
  assert int(state_1.step) == int(state_4.step) == 1
  for key in ("loss", "grad_norm", "clip_fraction", "approx_kl", "tokens"):
    np.testing.assert_allclose(metrics_1[key], metrics_4[key], rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(metrics_1["loss"], setup["ref_obj"], rtol=1e-5)
  assert 0 < metrics_1["clip_fraction"] < 1
  ref_norm = np.sqrt(sum(float(jnp.sum(g * g)) for g in jax.tree.leaves(setup["ref_grads"])))
  np.testing.assert_allclose(metrics_1["grad_norm"], ref_norm, rtol=1e-5)


def test_step_matches_reference_adamw_update(setup, one_step_results):
  """Clip by global norm, then AdamW's first step, written out by hand."""
  state_1, _ = one_step_results[8]
  g = setup["ref_grads"]
  norm = np.sqrt(sum(float(jnp.sum(x * x)) for x in jax.tree.leaves(g)))
  clip = min(1.0, LEARNER.max_grad_norm / norm)
  # First step: m = (1-b1) g, v = (1-b2) g^2; bias-corrected m_hat = g, v_hat = g^2.
  expected = jax.tree.map(
      lambda p, gr: p
      - LEARNER.learning_rate * (clip * gr) / (jnp.abs(clip * gr) + LEARNER.adam_eps),
      setup["params"],
      g,
  )
  assert _tree_max_abs_diff(state_1.params, expected) < 1e-5


def test_sharded_step_on_8_devices_matches_one_device(setup, one_step_results):
  if len(jax.devices()) < 8:
    pytest.skip("needs 8 (fake) devices: XLA_FLAGS=--xla_force_host_platform_device_count=8")
  mesh = sharding.make_mesh((2, 2, 2))
  lc = learner.LearnerConfig(**{**LEARNER.__dict__, "micro_batch_size": 4})
  state = learner.init_train_state(setup["params"], lc, mesh=mesh, model_config=MODEL)
  step = learner.make_train_step(MODEL, lc, mesh=mesh)
  new_state, metrics = step(state, learner.shard_batch(setup["batch"], mesh))
  state_1, metrics_1 = one_step_results[8]
  assert _tree_max_abs_diff(new_state.params, state_1.params) < 1e-5
  np.testing.assert_allclose(float(metrics["loss"]), metrics_1["loss"], rtol=1e-5)
  # State stays where the rules put it (FSDP over embed, tensor over heads).
  q_proj = new_state.params["layers"]["attn"]["q_proj"]
  assert tuple(q_proj.sharding.spec) == (None, "fsdp", "tensor", None)
  mu = new_state.opt_state[1][0].mu["layers"]["attn"]["q_proj"]
  assert mu.sharding.spec == q_proj.sharding.spec


def test_remat_gives_the_same_gradients(setup):
  batch = learner.shard_batch(setup["batch"], ONE_DEVICE)
  lc, _ = _step_fn(4)
  grads = {}
  for policy in ("none", "full"):
    cfg = MODEL.replace(remat_policy=policy)
    grads[policy] = jax.jit(
        lambda p, b, cfg=cfg: learner.compute_gradients(p, b, cfg, lc, ONE_DEVICE)[0]
    )(setup["params"], batch)
  assert _tree_max_abs_diff(grads["none"], grads["full"]) < 1e-6


def test_state_is_donated(setup, one_step_results):
  lc, step = _step_fn(8)
  state = learner.init_train_state(setup["params"], lc, ONE_DEVICE, MODEL)
  step(state, learner.shard_batch(setup["batch"], ONE_DEVICE))
  assert all(x.is_deleted() for x in jax.tree.leaves(state.params))
  # init_train_state copied: the caller's params survive.
  assert not any(x.is_deleted() for x in jax.tree.leaves(setup["params"]))


@pytest.mark.parametrize("entropy_coef", [0.1, 0.0])  # 0: the fused head path
def test_kl_and_entropy_terms(setup, entropy_coef):
  """With ref == old log-probs and KL/entropy on, the loss adds their token means."""
  b = setup["batch"]
  batch = b._replace(ref_logprobs=b.old_logprobs)
  lc = dataclasses.replace(LEARNER, kl_coef=0.5, kl_estimator="k1", entropy_coef=entropy_coef)
  grads, stats = jax.jit(lambda p, bb: learner.compute_gradients(p, bb, MODEL, lc, ONE_DEVICE))(
      setup["params"], learner.shard_batch(batch, ONE_DEVICE)
  )
  # Independent values: k1 = logp - ref, entropy of the tempered full softmax.
  hidden = forward(setup["params"], b.tokens, b.positions, b.valid, MODEL)
  logits = compute_logits(setup["params"], hidden, MODEL) / lc.temperature
  logp_all = np.asarray(jax.nn.log_softmax(logits, axis=-1), np.float64)
  logp = np.take_along_axis(logp_all, b.targets[..., None], -1)[..., 0]
  mask = b.loss_mask
  n = mask.sum()
  kl = ((logp - b.old_logprobs) * mask).sum() / n
  ent = (-(np.exp(logp_all) * logp_all).sum(-1) * mask).sum() / n
  np.testing.assert_allclose(float(stats["kl_sum"]) / n, kl, rtol=1e-4, atol=1e-6)
  if entropy_coef:
    np.testing.assert_allclose(float(stats["entropy_sum"]) / n, ent, rtol=1e-5)
  else:
    assert "entropy_sum" not in stats
  np.testing.assert_allclose(
      float(stats["objective_sum"]) / n,
      setup["ref_obj"] + 0.5 * kl - entropy_coef * ent,
      rtol=1e-5,
      atol=1e-6,
  )

  # The gradient is the reference objective's plus the terms' (written out here).
  def with_terms(p):
    obj, logp_ = reference_objective(p, batch)
    h = forward(p, b.tokens, b.positions, b.valid, MODEL)
    z = jax.nn.log_softmax(compute_logits(p, h, MODEL) / lc.temperature, axis=-1)
    ent_ = -jnp.sum(jnp.exp(z) * z, axis=-1)
    m = b.loss_mask.astype(jnp.float32)
    return obj + (
        0.5 * jnp.sum((logp_ - b.old_logprobs) * m) - entropy_coef * jnp.sum(ent_ * m)
    ) / jnp.sum(m)

  ref_grads = jax.jit(jax.grad(with_terms))(setup["params"])
  scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(ref_grads))
  assert _tree_max_abs_diff(grads, ref_grads) < 1e-5 * scale
  assert _tree_max_abs_diff(grads, setup["ref_grads"]) > 1e-4  # the terms reach the gradient


def _bits(tree) -> list[np.ndarray]:
  """Every leaf's raw bytes (so -0.0 != +0.0 and NaN payloads count)."""
  return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


def test_learning_rate_zero_leaves_the_state_bit_identical(setup):
  """The control arm of a learning check: lr 0 with weight decay changes nothing, not even
  the sign of a -0.0 parameter (AdamW at rate 0 would add -0 * update and flip it to +0.0
  wherever the update is negative: this test fails on that path); the same step at lr > 0
  moves the params."""
  params = {
      **setup["params"],
      "final_norm": {"scale": -jnp.zeros_like(setup["params"]["final_norm"]["scale"])},
  }  # -0.0 everywhere; gradients of both signs
  batch = learner.shard_batch(setup["batch"], ONE_DEVICE)
  frozen_lc = dataclasses.replace(LEARNER, learning_rate=0.0, weight_decay=0.1)
  state = learner.init_train_state(params, frozen_lc, ONE_DEVICE, MODEL)
  before = _bits(state.params), _bits(state.opt_state)
  new_state, metrics = learner.make_train_step(MODEL, frozen_lc, ONE_DEVICE)(state, batch)
  assert _bits(new_state.params) == before[0]
  assert _bits(new_state.opt_state) == before[1]
  assert int(new_state.step) == 1
  assert float(metrics["tokens"]) == setup["batch"].num_tokens
  # Self-play hands the step a batch in parts (one per role): frozen there too.
  state = learner.init_train_state(
      params, frozen_lc, ONE_DEVICE, MODEL
  )  # the step above donated it
  new_state, metrics = learner.make_train_step(MODEL, frozen_lc, ONE_DEVICE)(state, (batch, batch))
  assert _bits(new_state.params) == before[0]
  assert float(metrics["tokens"]) == 2 * setup["batch"].num_tokens
  trained_lc = dataclasses.replace(frozen_lc, learning_rate=1e-3)
  state = learner.init_train_state(params, trained_lc, ONE_DEVICE, MODEL)
  moved, _ = learner.make_train_step(MODEL, trained_lc, ONE_DEVICE)(state, batch)
  changed = [a != b for a, b in zip(_bits(moved.params), before[0])]
  assert all(changed), changed  # weight decay alone moves every leaf at lr > 0


def test_config_and_batch_errors(setup):
  with pytest.raises(ValueError, match="learning_rate"):
    learner.LearnerConfig(learning_rate=-1e-6)
  with pytest.raises(ValueError, match="kl_estimator"):
    learner.LearnerConfig(kl_estimator="k2")
  lc = learner.LearnerConfig(micro_batch_size=3)
  with pytest.raises(ValueError, match="not a multiple of micro_batch_size=3"):
    learner.compute_gradients(
        setup["params"], learner.shard_batch(setup["batch"], ONE_DEVICE), MODEL, lc, ONE_DEVICE
    )
  lc = learner.LearnerConfig(kl_coef=0.1)
  with pytest.raises(ValueError, match="ref_logprobs"):
    learner.compute_gradients(
        setup["params"], learner.shard_batch(setup["batch"], ONE_DEVICE), MODEL, lc, ONE_DEVICE
    )
