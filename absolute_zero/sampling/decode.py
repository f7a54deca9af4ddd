"""Device side of generation: prefill, cache replication, and the `lax.while_loop` decode.

Pure functions of (params, arrays, traced settings); the static arguments are the model
config, mesh/rules and the sampler's fixed choices (candidate count, block size). The host
wrapper (`absolute_zero.sampler`) jits them and pads shapes into buckets.

Cache layout: `[layers, batch, slots, kv_heads, head_dim]` with `slots = P + N` (P the
prompt bucket, N the new-token bucket). Prefill fills a P-slot cache for the distinct
prompts; `replicate_slots` gathers its keys, then its values, to the `n` sample rows of each
prompt and pads the slot axis to P + N (the prompt is computed once, however many samples
are drawn), and `start_decode` builds the rest of the decode state; the decode loop then
writes slot P + step in place (the state is donated). On one device the decode
state holds the cache split per layer instead (`transformer.split_cache`: one
`[batch * kv_heads, slots, head_dim]` array per layer; a local layer whose window is
shorter than the row keeps a ring of `sliding_window` slots, so it reads and holds only
its window) and the loop runs `transformer.decode_step`, which XLA:CPU updates and reads
in place; on a mesh of several devices it keeps the stacked cache and the scanned trunk.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from absolute_zero.models.config import ModelConfig
from absolute_zero.models.transformer import (
    KVCache,
    Transformer,
    compute_logits,
    decode_step,
    init_cache,
    merge_kv_heads,
    ring_cache,
    split_layer_params,
)
from absolute_zero.sharding import constrain
from absolute_zero.sampling.token_sampling import SamplingKnobs, sample_tokens

Array = jax.Array

RUNNING, FINISH_EOS, FINISH_STOP, FINISH_LENGTH, PADDING_ROW = 0, 1, 2, 3, 4


class DecodeSettings(NamedTuple):
  """Traced per-call settings: new values never recompile."""

  knobs: SamplingKnobs
  max_new_tokens: Array  # [] int32, <= the new-token bucket N
  eos_ids: Array  # [E] int32, padded with -1: finish reason "eos"
  stop_ids: Array  # [E] int32, padded with -1: finish reason "stop"


class DecodeState(NamedTuple):
  """Everything the decode loop carries; donated between calls."""

  cache: KVCache  # k/v [layers, B, P + N, kv, hd]; one device: per-layer tuples (split_cache)
  hidden: Array  # [B, d] final hidden state of the last token fed (next one is drawn from it)
  tokens: Array  # [B, N] int32 generated ids (0 after a row finished)
  logprobs: Array  # [B, N] float32 tempered log-probs of `tokens`
  finish: Array  # [B] int32: RUNNING or a FINISH_* code or PADDING_ROW
  num_generated: Array  # [B] int32
  next_position: Array  # [B] int32 position of the next token
  step: Array  # [] int32 decode steps taken
  key: Array  # PRNG key of this call


def _per_layer(mesh) -> bool:
  """Whether decode runs `decode_step` over a per-layer cache (one device)."""
  return mesh is None or mesh.size == 1


def _shard_cache(cache: KVCache, mesh, rules) -> KVCache:
  if isinstance(cache.k, tuple):  # per-layer: one device, nothing to constrain
    return cache
  kv_names = ("layers", "activation_batch", None, "activation_kv_heads", None)
  return KVCache(
      k=constrain(cache.k, kv_names, mesh, rules),
      v=constrain(cache.v, kv_names, mesh, rules),
      positions=constrain(cache.positions, ("activation_batch", None), mesh, rules),
      valid=constrain(cache.valid, ("activation_batch", None), mesh, rules),
  )


def prefill(
    params: dict,
    tokens: Array,
    positions: Array,
    valid: Array,
    *,
    config: ModelConfig,
    mesh,
    rules: tuple = (),
) -> tuple[Array, KVCache]:
  """Runs the prompts once: (last-position hidden [Bp, d], cache with P slots).

  tokens/positions/valid [Bp, P], left-padded so the last position is real in every row,
  positions increasing along each row's valid slots (`padding.left_pad`: attention skips
  the blocks above the diagonal, `Transformer.causal_slots`); logits are not computed here
  (the decode loop takes them from the returned hidden).
  """
  batch, length = tokens.shape
  cache = _shard_cache(init_cache(config, batch, length), mesh, rules)
  hidden, cache = Transformer(config, mesh, rules, causal_slots=True).apply(
      {"params": params}, tokens, positions, valid, cache=cache, cache_index=0
  )
  return hidden[:, -1], _shard_cache(cache, mesh, rules)  # [Bp, d]


def replicate_slots(
    kv: Array,
    row_prompt: Array,
    *,
    new_slots: int,
    mesh,
    rules: tuple = (),
    layer_slots: tuple[int, ...] = (),
) -> Array | tuple[Array, ...]:
  """One prefill cache array (keys or values) for the decode rows, with N empty slots.

  kv [L, Bp, P, kv, hd] -> decode row r holds prompt row_prompt[r]'s P slots, then N zero
  slots: on one device one [B * kv, P + N, hd] array per layer (built layer by layer), else
  stacked [L, B, P + N, kv, hd]. On one device `layer_slots` (`transformer.ring_slots`;
  empty: P + N for all) gives each layer's size: a layer of fewer slots gets a ring of its
  window's last slots (`transformer.ring_cache`). Keys and values go through separately so
  the caller can free each prefill array before the next copy exists (the prefill cache and
  the decode cache are never whole side by side).
  """
  if _per_layer(mesh):
    prompt_slots = kv.shape[2]
    out = []
    for layer in range(kv.shape[0]):
      x = merge_kv_heads(jnp.take(kv[layer], row_prompt, axis=0))  # [B * kv, P, hd]
      size = layer_slots[layer] if layer_slots else prompt_slots + new_slots
      if size < prompt_slots + new_slots:  # a ring: the next write goes to slot P mod size
        out.append(ring_cache(x, prompt_slots - 1, size))
      else:
        out.append(jnp.pad(x, ((0, 0), (0, new_slots), (0, 0))))
    return tuple(out)
  pad = ((0, 0), (0, 0), (0, new_slots), (0, 0), (0, 0))
  kv_names = ("layers", "activation_batch", None, "activation_kv_heads", None)
  return constrain(jnp.pad(jnp.take(kv, row_prompt, axis=1), pad), kv_names, mesh, rules)


def start_decode(
    k: Array | tuple[Array, ...],
    v: Array | tuple[Array, ...],
    prompt_positions: Array,
    prompt_valid: Array,
    last_hidden: Array,
    row_prompt: Array,
    prompt_lengths: Array,
    row_is_real: Array,
    key: Array,
    *,
    new_slots: int,
    mesh,
    rules: tuple = (),
) -> DecodeState:
  """The decode state for N new tokens after a prefill.

  k, v: the prefill cache's keys and values already replicated to the B decode rows with
  P + N slots (`replicate_slots`); they become the state's cache as they are (a caller
  that donates them gets no copy). prompt_positions/prompt_valid [Bp, P]: the prefill
  cache's; last_hidden [Bp, d]; row_prompt [B] int32 (which prompt each decode row
  samples); prompt_lengths [B]; row_is_real [B] bool.
  """
  slot_pad = ((0, 0), (0, new_slots))
  positions = jnp.pad(jnp.take(prompt_positions, row_prompt, axis=0), slot_pad)  # [B, P + N]
  valid = jnp.pad(jnp.take(prompt_valid, row_prompt, axis=0), slot_pad)
  rows = row_prompt.shape[0]
  hidden = jnp.take(last_hidden, row_prompt, axis=0)  # [B, d]
  # Per-row arrays split over the batch axes, as `decode` returns them: the state `decode`
  # gets from here and from itself then has the same shardings (one compilation, not two).
  row = lambda x: constrain(x, ("activation_batch",) + (None,) * (x.ndim - 1), mesh, rules)
  cache = KVCache(k, v, positions, valid)
  return DecodeState(
      cache=_shard_cache(cache, mesh, rules),
      hidden=row(hidden),
      tokens=row(jnp.zeros((rows, new_slots), jnp.int32)),
      logprobs=row(jnp.zeros((rows, new_slots), jnp.float32)),
      finish=row(jnp.where(row_is_real, RUNNING, PADDING_ROW).astype(jnp.int32)),
      num_generated=row(jnp.zeros((rows,), jnp.int32)),
      next_position=row(prompt_lengths.astype(jnp.int32)),
      step=jnp.int32(0),
      key=key,
  )


def decode(
    params: dict,
    state: DecodeState,
    settings: DecodeSettings,
    step_limit: Array,
    *,
    config: ModelConfig,
    mesh,
    rules: tuple = (),
    num_candidates: int = 256,
    block_size: int | None = None,
) -> DecodeState:
  """Draws tokens until step `step_limit` or until every row has finished.

  Each step: logits from the carried hidden state (one `[B, d] x [V, d]` product, the only
  logits ever built), sample, record, then feed the token through the trunk, writing its
  keys/values to slot P + step. With a per-layer cache (one device) `params["layers"]` may
  be the stacked layers or a list of per-layer dicts (`split_layer_params`' layout); the
  stacked cache (several devices) takes the stacked layers only.
  """
  model = Transformer(config, mesh, rules)
  new_slots = state.tokens.shape[1]
  per_layer = isinstance(state.cache.k, tuple)
  slots = state.cache.positions.shape[1]  # the full row (ring layers hold fewer)
  prompt_slots = slots - new_slots

  if per_layer:
    # Each layer's weights as separate arrays: slices of the stacked weights inside the loop
    # body are copied at every step (400 MB per step for Gemma 3 270M in float32). A caller
    # may pass them split already (`layers` a list, e.g. views of the stacked host buffer:
    # no copy at all); else they are sliced here once per call, before the loop.
    split = isinstance(params["layers"], (list, tuple))
    step_params = params if split else split_layer_params(params, config)

  def cond(s: DecodeState):
    return (s.step < step_limit) & jnp.any(s.finish == RUNNING)

  def body(s: DecodeState) -> DecodeState:
    logits = compute_logits(params, s.hidden, config)  # [B, V] float32
    logits = constrain(logits, ("activation_batch", "activation_vocab"), mesh, rules)
    token, logprob = sample_tokens(
        logits,
        settings.knobs,
        jax.random.fold_in(s.key, s.step),
        num_candidates=num_candidates,
        block_size=block_size,
    )
    running = s.finish == RUNNING
    token = jnp.where(running, token, 0)  # [B]
    logprob = jnp.where(running, logprob, 0.0)
    tokens = jax.lax.dynamic_update_slice(s.tokens, token[:, None], (0, s.step))
    logprobs = jax.lax.dynamic_update_slice(s.logprobs, logprob[:, None], (0, s.step))
    generated = s.num_generated + running.astype(jnp.int32)
    is_eos = jnp.any(token[:, None] == settings.eos_ids[None, :], axis=-1)
    is_stop = jnp.any(token[:, None] == settings.stop_ids[None, :], axis=-1)
    finish = jnp.where(
        running & is_eos,
        FINISH_EOS,
        jnp.where(
            running & is_stop,
            FINISH_STOP,
            jnp.where(running & (generated >= settings.max_new_tokens), FINISH_LENGTH, s.finish),
        ),
    )
    if per_layer:
      hidden, cache = decode_step(
          step_params,
          token[:, None],
          s.next_position[:, None],
          s.cache,
          prompt_slots + s.step,
          config,
      )
    else:
      hidden, cache = model.apply(
          {"params": params},
          token[:, None],
          s.next_position[:, None],
          jnp.ones_like(token[:, None], bool),
          cache=s.cache,
          cache_index=prompt_slots + s.step,
      )
    return DecodeState(
        cache=_shard_cache(cache, mesh, rules),
        hidden=constrain(hidden[:, 0], ("activation_batch", None), mesh, rules),
        tokens=tokens,
        logprobs=logprobs,
        finish=finish,
        num_generated=generated,
        next_position=s.next_position + 1,
        step=s.step + 1,
        key=s.key,
    )

  return jax.lax.while_loop(cond, body, state)
