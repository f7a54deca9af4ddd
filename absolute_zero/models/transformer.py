"""Decoder-only transformer for Gemma 3, Qwen2/2.5 and Llama 3.x, in Flax Linen.

Parameters live outside the module as a plain pytree (`init_params` / `Transformer.apply`).
The layers are stacked along a leading `layers` axis and run with `nn.scan`; Gemma 3's
heterogeneous local/global layers are handled with a per-layer boolean that selects the
mask and RoPE table, so every layer has the same structure.

The forward returns final-normed hidden states; logits are computed apart
(`compute_logits`, or chunked in the loss/sampler) so the `[batch, seq, vocab]` array is
never built unless asked for.

One call signature covers the three uses:
  * full forward (training, parity tests): no cache; `valid` marks real tokens;
  * prefill: a cache and `cache_index=0`: the prompt's keys/values are written to slots
    `[0, T)`;
  * decode: a cache and `cache_index=i`: T new tokens (usually 1) go to slots `[i, i+T)`.
Causality and the sliding window are expressed in token *positions* (so left-padded rows
work), validity in an explicit per-slot mask (never `token == pad`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from absolute_zero.models import attention as attention_lib
from absolute_zero.models.config import ModelConfig, RopeScaling
from absolute_zero.models.partitioning import constrain
from absolute_zero.models.projection import project

Array = jax.Array
_MASK_VALUE = attention_lib.MASK_VALUE  # finite: all-masked rows stay NaN-free


class KVCache(NamedTuple):
  """Keys/values of every layer plus the position and validity of each slot."""

  k: Array  # [layers, batch, slots, kv_heads, head_dim]
  v: Array  # [layers, batch, slots, kv_heads, head_dim]
  positions: Array  # [batch, slots] int32
  valid: Array  # [batch, slots] bool


def init_cache(config: ModelConfig, batch: int, slots: int, dtype=None) -> KVCache:
  dtype = dtype or config.dtype
  shape = (config.num_layers, batch, slots, config.num_kv_heads, config.head_dim)
  return KVCache(
      k=jnp.zeros(shape, dtype),
      v=jnp.zeros(shape, dtype),
      positions=jnp.zeros((batch, slots), jnp.int32),
      valid=jnp.zeros((batch, slots), bool),
  )


# ---------------------------------------------------------------------------- helpers


def rope_inv_freq(head_dim: int, base: float, scaling: RopeScaling | None) -> np.ndarray:
  """Inverse frequencies [head_dim // 2] in float32, as the HF reference computes them."""
  exponents = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim
  inv_freq = (1.0 / (np.float32(base) ** exponents)).astype(np.float32)
  if scaling is None:
    return inv_freq
  if scaling.kind == "linear":
    return (inv_freq / np.float32(scaling.factor)).astype(np.float32)
  if scaling.kind == "llama3":
    old_len = scaling.original_max_position
    low_wavelen = old_len / scaling.low_freq_factor
    high_wavelen = old_len / scaling.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
    smooth = (old_len / wavelen - scaling.low_freq_factor) / (
        scaling.high_freq_factor - scaling.low_freq_factor
    )
    smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return np.where(medium, smoothed, scaled).astype(np.float32)
  raise ValueError(f"unknown RoPE scaling kind {scaling.kind!r}")


def rope_tables(positions: Array, inv_freq: np.ndarray) -> tuple[Array, Array]:
  """sin, cos tables [batch, seq, 1, head_dim // 2] for the given positions."""
  angles = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)  # [b, t, hd/2]
  return jnp.sin(angles)[:, :, None, :], jnp.cos(angles)[:, :, None, :]


def apply_rope(x: Array, sin: Array, cos: Array) -> Array:
  """Rotate-half RoPE (the HF convention) on x [batch, seq, heads, head_dim]."""
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)


def embed_tokens(embedding: Array, tokens: Array, config: ModelConfig) -> Array:
  """Token embeddings [b, t, d] in the compute dtype (times sqrt(d) for Gemma)."""
  dtype = jnp.dtype(config.dtype)
  x = jnp.take(embedding, tokens, axis=0).astype(dtype)  # [b, t, d]
  if config.embed_scale:
    x = x * jnp.asarray(math.sqrt(config.embed_dim), dtype)
  return x


def rope_pair(positions: Array, config: ModelConfig) -> tuple[tuple[Array, Array], ...]:
  """(global, local) (sin, cos) RoPE tables for `positions` [b, t] (see `rope_tables`)."""
  c = config
  rope_global = rope_tables(positions, rope_inv_freq(c.head_dim, c.rope_base, c.rope_scaling))
  rope_local = rope_tables(
      positions, rope_inv_freq(c.head_dim, c.rope_base_local or c.rope_base, None)
  )
  return rope_global, rope_local


def merge_kv_heads(x: Array) -> Array:
  """[b, t, kv, hd] -> [b * kv, t, hd] (kv-major): the per-layer decode cache's layout."""
  b, t, k, hd = x.shape
  return x.transpose(0, 2, 1, 3).reshape(b * k, t, hd)


def _decode_attention(
    q: Array, key: Array, val: Array, mask: Array, scale: float, dtype, softcap: float | None = None
) -> Array:
  """One query position against the cache: out [b, kv, g, hd].

  q [b, kv, g, hd]; key/val [b, slots, kv, hd]; mask [b, slots]. Decode attention only
  streams the cache, so its speed is memory bandwidth: with the query group as the minor
  output axis ([b, kv, slots, g]) XLA:CPU reads the cache once per product, about 2x faster
  than the [b, kv, g, slots] layout the multi-token path uses (Gemma 3 270M shapes, batch
  32, 576 slots, 2-core CPU: attention of 18 layers alone 339 -> 172 ms; the whole decode
  trunk, same process, machine under load: 1453 -> 1003 ms).
  """
  logits = (
      jnp.einsum("bkgh,bskh->bksg", q, key, preferred_element_type=jnp.float32) * scale
  )  # [b, kv, slots, g]
  if softcap is not None:
    logits = softcap * jnp.tanh(logits / softcap)
  logits = jnp.where(mask[:, None, :, None], logits, _MASK_VALUE)
  probs = jax.nn.softmax(logits, axis=2).astype(dtype)
  return jnp.einsum("bksg,bskh->bkgh", probs, val)


def _decode_attention_merged(
    q: Array, key: Array, val: Array, mask: Array, scale: float, dtype, softcap: float | None = None
) -> Array:
  """`_decode_attention` on a per-layer cache with batch and kv heads merged.

  q [B, g, hd]; key/val [B, slots, hd]; mask [B, slots] (B = batch * kv heads).
  Returns [B, g, hd].
  """
  logits = (
      jnp.einsum("Bgh,Bsh->Bsg", q, key, preferred_element_type=jnp.float32) * scale
  )  # [B, slots, g]
  if softcap is not None:
    logits = softcap * jnp.tanh(logits / softcap)
  logits = jnp.where(mask[:, :, None], logits, _MASK_VALUE)
  probs = jax.nn.softmax(logits, axis=1).astype(dtype)
  return jnp.einsum("Bsg,Bsh->Bgh", probs, val)


def _remat_policy(name: str):
  return {
      "full": None,
      "dots": jax.checkpoint_policies.checkpoint_dots,
      "dots_no_batch": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
  }[name]


# ---------------------------------------------------------------------------- modules


class RMSNorm(nn.Module):
  """RMSNorm in float32; multiplies by (offset + scale) (offset 1 for Gemma)."""

  eps: float
  offset: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    init = nn.initializers.zeros if self.offset else nn.initializers.ones
    scale = self.param(
        "scale", nn.with_logical_partitioning(init, ("norm",)), (x.shape[-1],), self.param_dtype
    )
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return (y * (self.offset + scale.astype(jnp.float32))).astype(self.dtype)


def _dense_init(fan_in: int, names: tuple[str, ...]):
  return nn.with_logical_partitioning(nn.initializers.normal(stddev=fan_in**-0.5), names)


class Attention(nn.Module):
  """Grouped-query attention with optional QKV bias and QK-norm."""

  config: ModelConfig
  mesh: Any = None
  rules: tuple = ()
  causal_slots: bool = False  # see Transformer

  @nn.compact
  def __call__(self, x, sin, cos, attn_pos, is_local, layer, cache, cache_index):
    """attn_pos: (q_pos [b, t], k_pos [b, s], k_valid [b, s]); is_local: traced bool."""
    c = self.config
    dtype, pdtype = jnp.dtype(c.dtype), jnp.dtype(c.param_dtype)
    d, h, k, hd = c.embed_dim, c.num_heads, c.num_kv_heads, c.head_dim
    wq = self.param("q_proj", _dense_init(d, ("embed", "q_heads", "head_dim")), (d, h, hd), pdtype)
    wk = self.param("k_proj", _dense_init(d, ("embed", "kv_heads", "head_dim")), (d, k, hd), pdtype)
    wv = self.param("v_proj", _dense_init(d, ("embed", "kv_heads", "head_dim")), (d, k, hd), pdtype)
    wo = self.param(
        "o_proj", _dense_init(h * hd, ("q_heads", "head_dim", "embed")), (h, hd, d), pdtype
    )
    q = project(x, wq.astype(dtype))  # [b, t, heads, hd]
    key = project(x, wk.astype(dtype))  # [b, t, kv, hd]
    val = project(x, wv.astype(dtype))  # [b, t, kv, hd]
    if c.qkv_bias:
      zeros = nn.initializers.zeros
      q = q + self.param(
          "q_bias", nn.with_logical_partitioning(zeros, ("q_heads", "head_dim")), (h, hd), pdtype
      ).astype(dtype)
      key = key + self.param(
          "k_bias", nn.with_logical_partitioning(zeros, ("kv_heads", "head_dim")), (k, hd), pdtype
      ).astype(dtype)
      val = val + self.param(
          "v_bias", nn.with_logical_partitioning(zeros, ("kv_heads", "head_dim")), (k, hd), pdtype
      ).astype(dtype)
    if c.qk_norm:
      norm = dict(eps=c.rms_norm_eps, offset=c.norm_offset, dtype=dtype, param_dtype=pdtype)
      q = RMSNorm(name="q_norm", **norm)(q)
      key = RMSNorm(name="k_norm", **norm)(key)
    q = apply_rope(q, sin, cos)
    key = apply_rope(key, sin, cos)
    q = constrain(
        q,
        ("activation_batch", "activation_length", "activation_heads", None),
        self.mesh,
        self.rules,
    )

    b, t = q.shape[:2]
    groups = h // k
    q_pos, k_pos, k_valid = attn_pos
    if cache is not None and cache.k.ndim == 3:
      # One layer's own cache [b * kv, slots, hd] (`decode_step`, one token): the token's
      # key/value are written in place, then read with the rest. The layout is the one the
      # attention products take as is (kv-major, batch and kv merged): any reshape between
      # the update and the product lets XLA:CPU fuse a second copy of the update into the
      # product's operand, and two updates of one buffer cannot both be in place (it then
      # copied every layer's cache four times per step).
      if t != 1:
        raise ValueError("a per-layer cache takes one token per call")
      start = (0, cache_index, 0)
      cache = cache._replace(
          k=jax.lax.dynamic_update_slice(cache.k, merge_kv_heads(key).astype(cache.k.dtype), start),
          v=jax.lax.dynamic_update_slice(cache.v, merge_kv_heads(val).astype(cache.v.dtype), start),
      )
      window = attention_lib.effective_window(c.sliding_window, is_local)
      mask = attention_lib.visible(q_pos, k_pos, k_valid, window)[:, 0]  # [b, slots]
      out = _decode_attention_merged(
          q.reshape(b * k, groups, hd),
          cache.k.astype(dtype),
          cache.v.astype(dtype),
          jnp.repeat(mask, k, axis=0),
          c.query_scale,
          dtype,
          c.attn_logit_softcap,
      )  # [b * kv, g, hd]: kv-major heads, as below
    else:
      if cache is not None:
        # Write this call's keys/values into the layer's slots [cache_index, +t).
        start = (layer, 0, cache_index, 0, 0)
        cache_k = jax.lax.dynamic_update_slice(cache.k, key[None].astype(cache.k.dtype), start)
        cache_v = jax.lax.dynamic_update_slice(cache.v, val[None].astype(cache.v.dtype), start)
        cache = cache._replace(k=cache_k, v=cache_v)
        if isinstance(cache_index, int) and cache_index == 0 and t == cache.k.shape[2]:
          # A prefill writes every slot: attend over the values just written (the same
          # numbers) instead of reading the stacked cache back, a read after the write that
          # made XLA:CPU copy the whole stacked cache (keys and values) at every layer.
          key = key.astype(cache.k.dtype).astype(dtype)
          val = val.astype(cache.v.dtype).astype(dtype)
        else:
          key = cache_k[layer].astype(dtype)  # [b, slots, kv, hd]
          val = cache_v[layer].astype(dtype)
      q = q.reshape(b, t, k, groups, hd)
      if t == 1:
        window = attention_lib.effective_window(c.sliding_window, is_local)
        mask = attention_lib.visible(q_pos, k_pos, k_valid, window)  # [b, 1, slots]
        out = _decode_attention(
            q[:, 0], key, val, mask[:, 0], c.query_scale, dtype, c.attn_logit_softcap
        )  # [b, kv, g, hd]
      else:
        out = attention_lib.attention(
            q,
            key,
            val,
            q_pos,
            k_pos,
            k_valid,
            scale=c.query_scale,
            window=c.sliding_window,
            local=is_local,
            softcap=c.attn_logit_softcap,
            impl=c.attention,
            block_size=c.attention_block_size,
            causal_slots=self.causal_slots,
        )  # [b, t, kv, g, hd]
    out = out.reshape(b, t, h, hd)
    out = constrain(
        out,
        ("activation_batch", "activation_length", "activation_heads", None),
        self.mesh,
        self.rules,
    )
    return project(out, wo.astype(dtype), contract=2), cache  # [b, t, d]


class MLP(nn.Module):
  """Gated MLP: act(x W_gate) * (x W_up) W_down."""

  config: ModelConfig
  mesh: Any = None
  rules: tuple = ()

  @nn.compact
  def __call__(self, x):
    c = self.config
    dtype, pdtype = jnp.dtype(c.dtype), jnp.dtype(c.param_dtype)
    d, f = c.embed_dim, c.mlp_dim
    gate = self.param("gate_proj", _dense_init(d, ("embed", "mlp")), (d, f), pdtype)
    up = self.param("up_proj", _dense_init(d, ("embed", "mlp")), (d, f), pdtype)
    down = self.param("down_proj", _dense_init(f, ("mlp", "embed")), (f, d), pdtype)
    g = project(x, gate.astype(dtype))  # [b, t, f]
    u = project(x, up.astype(dtype))  # [b, t, f]
    act = jax.nn.gelu(g, approximate=True) if c.activation == "gelu_tanh" else jax.nn.silu(g)
    hidden = constrain(
        act * u, ("activation_batch", "activation_length", "activation_mlp"), self.mesh, self.rules
    )
    return project(hidden, down.astype(dtype))  # [b, t, d]


class Block(nn.Module):
  """One decoder layer; scanned over the `layers` axis."""

  config: ModelConfig
  mesh: Any = None
  rules: tuple = ()
  causal_slots: bool = False  # see Transformer

  @nn.compact
  def __call__(self, carry, is_local, rope_global, rope_local, attn_pos, cache_index):
    x, cache, layer = carry
    c = self.config
    norm = dict(
        eps=c.rms_norm_eps,
        offset=c.norm_offset,
        dtype=jnp.dtype(c.dtype),
        param_dtype=jnp.dtype(c.param_dtype),
    )
    sin = jnp.where(is_local, rope_local[0], rope_global[0])
    cos = jnp.where(is_local, rope_local[1], rope_global[1])

    h = RMSNorm(name="pre_attn_norm", **norm)(x)
    h, cache = Attention(c, self.mesh, self.rules, self.causal_slots, name="attn")(
        h, sin, cos, attn_pos, is_local, layer, cache, cache_index
    )
    if c.post_norms:
      h = RMSNorm(name="post_attn_norm", **norm)(h)
    x = x + h
    h = RMSNorm(name="pre_mlp_norm", **norm)(x)
    h = MLP(c, self.mesh, self.rules, name="mlp")(h)
    if c.post_norms:
      h = RMSNorm(name="post_mlp_norm", **norm)(h)
    x = x + h
    x = constrain(
        x, ("activation_batch", "activation_length", "activation_embed"), self.mesh, self.rules
    )
    return (x, cache, layer + 1), None


class Transformer(nn.Module):
  """The trunk: embed, scanned layers, final norm. Returns hidden states [b, t, d]."""

  config: ModelConfig
  mesh: Any = None  # a jax.sharding.Mesh for sharding constraints; None: one device
  rules: tuple = ()  # logical-axis rules used with `mesh`
  # The caller guarantees that a token never sees one in a later slot of its row (positions
  # increase along each row's valid slots, as in left- or right-padded rows): self-attention
  # over several tokens then skips the score blocks above the diagonal
  # (`attention.causal_dense_attention`). Not checked; leave False for other rows (packed
  # sequences with restarting positions, arbitrary positions).
  causal_slots: bool = False

  @nn.compact
  def __call__(
      self,
      tokens: Array,
      positions: Array,
      valid: Array | None = None,
      cache: KVCache | None = None,
      cache_index: Array | int = 0,
  ):
    """tokens/positions [b, t] int; valid [b, t] bool (default all True).

    Returns (hidden [b, t, d], cache); cache is None when none was given.
    """
    c = self.config
    dtype = jnp.dtype(c.dtype)
    if valid is None:
      valid = jnp.ones(tokens.shape, bool)
    embedding = self.param(
        "embedding",
        nn.with_logical_partitioning(nn.initializers.normal(stddev=1.0), ("vocab", "embed")),
        (c.vocab_size, c.embed_dim),
        jnp.dtype(c.param_dtype),
    )
    x = embed_tokens(embedding, tokens, c)  # [b, t, d]
    x = constrain(
        x, ("activation_batch", "activation_length", "activation_embed"), self.mesh, self.rules
    )

    if cache is None:
      k_pos, k_valid = positions, valid
    else:
      k_pos = jax.lax.dynamic_update_slice(
          cache.positions, positions.astype(jnp.int32), (0, cache_index)
      )
      k_valid = jax.lax.dynamic_update_slice(cache.valid, valid, (0, cache_index))
      cache = cache._replace(positions=k_pos, valid=k_valid)
    attn_pos = (positions.astype(jnp.int32), k_pos.astype(jnp.int32), k_valid)
    rope_global, rope_local = rope_pair(positions, c)

    block = Block
    if c.remat_policy != "none":
      block = nn.remat(Block, policy=_remat_policy(c.remat_policy), prevent_cse=False)
    layers = nn.scan(
        block,
        variable_axes={"params": 0},
        split_rngs={"params": True},
        in_axes=(0, nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast),
        length=c.num_layers,
        metadata_params={nn.PARTITION_NAME: "layers"},
    )(c, self.mesh, self.rules, self.causal_slots, name="layers")
    is_local = jnp.asarray(c.is_local_layer)
    (x, cache, _), _ = layers(
        (x, cache, jnp.int32(0)), is_local, rope_global, rope_local, attn_pos, cache_index
    )
    x = RMSNorm(
        eps=c.rms_norm_eps,
        offset=c.norm_offset,
        dtype=dtype,
        param_dtype=jnp.dtype(c.param_dtype),
        name="final_norm",
    )(x)
    if not c.tie_embeddings:
      # Untied head stored like the embedding, [vocab, d], so logits code is shared.
      self.param(
          "lm_head",
          nn.with_logical_partitioning(
              nn.initializers.normal(stddev=c.embed_dim**-0.5), ("vocab", "embed")
          ),
          (c.vocab_size, c.embed_dim),
          jnp.dtype(c.param_dtype),
      )
    return x, cache


# ---------------------------------------------------------------------------- pure API


def unembedding(params: dict, config: ModelConfig) -> Array:
  """The [vocab, d] matrix that maps hidden states to logits."""
  return params["embedding"] if config.tie_embeddings else params["lm_head"]


def compute_logits(params: dict, hidden: Array, config: ModelConfig) -> Array:
  """Logits [..., vocab] in float32 from hidden states [..., d]."""
  w = unembedding(params, config)
  logits = jnp.einsum(
      "...d,vd->...v", hidden, w.astype(hidden.dtype), preferred_element_type=jnp.float32
  )
  if config.final_logit_softcap:
    cap = config.final_logit_softcap
    logits = cap * jnp.tanh(logits / cap)
  return logits


def split_cache(cache: KVCache) -> KVCache:
  """The stacked cache as `decode_step` takes it: k/v become tuples of one
  `[batch * kv_heads, slots, head_dim]` array per layer (`merge_kv_heads`)."""

  def per_layer(stacked: Array) -> tuple[Array, ...]:
    return tuple(merge_kv_heads(stacked[i]) for i in range(stacked.shape[0]))

  return cache._replace(k=per_layer(cache.k), v=per_layer(cache.v))


def ring_slots(config: ModelConfig, slots: int) -> tuple[int, ...]:
  """Slots of each layer's per-layer decode cache: a local layer whose window is shorter
  than `slots` keeps a ring of `sliding_window` slots (`ring_cache`), the others `slots`."""
  window = config.sliding_window
  return tuple(
      window if local and window is not None and window < slots else slots
      for local in config.is_local_layer
  )


def ring_view(k_pos: Array, k_valid: Array, index: Array, size: int) -> tuple[Array, Array, Array]:
  """The ring of `size` slots as seen when slot `index` of the full row was just written.

  Ring slot j holds full slot g(j) = index - ((index - j) mod size), the latest slot <=
  index congruent to j (none yet when g(j) < 0). k_pos/k_valid [b, slots] of the full row.
  Returns (positions [b, size], valid [b, size], the ring slot of `index`).
  """
  j = jnp.arange(size, dtype=jnp.int32)
  g = index - jnp.mod(index - j, size)  # [size]
  safe = jnp.maximum(g, 0)
  return (
      jnp.take(k_pos, safe, axis=1),
      jnp.take(k_valid, safe, axis=1) & (g >= 0)[None, :],
      jnp.mod(index, size),
  )


def ring_cache(kv: Array, last: int, size: int) -> Array:
  """A per-layer cache [b, slots, hd] (slots `[0, last]` written) as a ring of `size`
  slots: ring slot j holds full slot `ring_view`'s g(j) for index `last` (zeros where that
  slot does not exist). Keys within a window of `size` positions of every later query are
  all kept, since the ring holds the last `size` slots.
  """
  j = np.arange(size)
  g = last - np.mod(last - j, size)  # [size], static
  out = jnp.take(kv, np.maximum(g, 0), axis=1)  # [b, size, hd]
  return jnp.where(jnp.asarray(g >= 0)[None, :, None], out, jnp.zeros((), kv.dtype))


def split_layer_params(params: dict, config: ModelConfig) -> dict:
  """`params` with the stacked `layers` replaced by a list of per-layer parameter dicts
  (copies: one per call of the caller, e.g. once per decode call, not per step)."""
  layers = params["layers"]
  return dict(
      params, layers=[jax.tree.map(lambda a, i=i: a[i], layers) for i in range(config.num_layers)]
  )


def decode_step(
    params: dict,
    tokens: Array,
    positions: Array,
    cache: KVCache,
    cache_index: Array,
    config: ModelConfig,
) -> tuple[Array, KVCache]:
  """One decode step on one device with a per-layer cache (`split_cache`) and per-layer
  weights (`split_layer_params`).

  tokens/positions [b, 1] int (every row's token real); the token's keys/values go to slot
  `cache_index` (cache.positions/valid [b, slots] describe the full row), in a local layer
  whose cache is a ring shorter than the row (`ring_slots`, `ring_cache`) to ring slot
  `cache_index mod size`: such a layer reads only its window. Returns (hidden [b, 1, d],
  the updated cache): the same values as `Transformer.apply` with the stacked cache.

  Why not the scanned trunk: inside `nn.scan` each layer's keys and values are a dynamic
  slice of the stacked [layers, b, slots, kv, hd] cache, which XLA:CPU copies out before the
  attention products: the whole cache read and written once more per step (with its
  weights' slices, a third of the trunk's time). Here the layers are unrolled over separate
  per-layer caches that are updated and read in place. The weights come split too: static
  slices of the stacked weights inside a decode loop stay in its body, and XLA copies
  them at every step (400 MB for Gemma 3 270M in float32). Unrolled, so it compiles longer
  than the scan: the sampler uses it on one device, where this copying was measured.
  """
  c = config
  x = embed_tokens(params["embedding"], tokens, c)  # [b, 1, d]
  k_pos = jax.lax.dynamic_update_slice(
      cache.positions, positions.astype(jnp.int32), (0, cache_index)
  )
  k_valid = jax.lax.dynamic_update_slice(
      cache.valid, jnp.ones(tokens.shape, bool), (0, cache_index)
  )
  q_pos = positions.astype(jnp.int32)
  slots = k_pos.shape[1]
  views = {}  # ring size -> (attn_pos, write index) of the layers with a ring cache
  rope_global, rope_local = rope_pair(positions, c)
  block = Block(c)
  new_k, new_v = [], []
  for layer, layer_params in enumerate(params["layers"]):
    size = cache.k[layer].shape[1]
    if size == slots:
      attn_pos, index = (q_pos, k_pos, k_valid), cache_index
    else:  # a local layer's ring of its window's last slots (`ring_cache`)
      if size not in views:
        ring_pos, ring_valid, index = ring_view(k_pos, k_valid, cache_index, size)
        views[size] = ((q_pos, ring_pos, ring_valid), index)
      attn_pos, index = views[size]
    (x, layer_cache, _), _ = block.apply(
        {"params": layer_params},
        (x, KVCache(cache.k[layer], cache.v[layer], attn_pos[1], attn_pos[2]), jnp.int32(layer)),
        jnp.asarray(c.is_local_layer[layer]),
        rope_global,
        rope_local,
        attn_pos,
        index,
    )
    new_k.append(layer_cache.k)
    new_v.append(layer_cache.v)
  x = RMSNorm(
      eps=c.rms_norm_eps,
      offset=c.norm_offset,
      dtype=jnp.dtype(c.dtype),
      param_dtype=jnp.dtype(c.param_dtype),
  ).apply({"params": params["final_norm"]}, x)
  return x, KVCache(tuple(new_k), tuple(new_v), k_pos, k_valid)


def init_params(config: ModelConfig, rng: Array) -> dict:
  """Random parameters (plain arrays, no partitioning boxes)."""
  model = Transformer(config)
  tokens = jnp.zeros((1, 1), jnp.int32)
  variables = model.init(rng, tokens, tokens)
  return nn.meta.unbox(variables["params"])


def logical_axes(config: ModelConfig) -> dict:
  """Pytree (like the params) of logical axis-name tuples, one per parameter."""
  model = Transformer(config)
  tokens = jnp.zeros((1, 1), jnp.int32)
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), tokens, tokens))
  return nn.get_partition_spec(abstract)["params"]


def forward(
    params: dict,
    tokens: Array,
    positions: Array,
    valid: Array | None,
    config: ModelConfig,
    mesh=None,
    rules: tuple = (),
    causal_slots: bool = False,
) -> Array:
  """Full forward without cache: hidden states [b, t, d].

  causal_slots: the rows' positions increase along their valid slots (`Transformer`), so
  attention may skip the blocks above the diagonal; not checked.
  """
  model = Transformer(config, mesh, rules, causal_slots)
  hidden, _ = model.apply({"params": params}, tokens, positions, valid)
  return hidden
