"""Model configuration: one frozen dataclass covering Gemma 3, Qwen2/2.5 and Llama 3.x.

Each family differs from a plain pre-norm decoder by a handful of switches (QKV bias,
QK-norm, post-norms, `1+scale` RMSNorm, sqrt(d) embedding scale, sliding-window layers with
their own RoPE base, Llama 3.1 RoPE scaling). They are fields here, so one module tree
serves all three and a preset is just a set of values.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

Family = Literal["gemma3", "qwen2", "llama"]
Activation = Literal["gelu_tanh", "silu"]
RematPolicy = Literal["none", "full", "dots", "dots_no_batch"]
AttentionImpl = Literal["auto", "blockwise", "cudnn", "dense", "splash"]  # models/attention.py
ATTENTION_IMPLS: tuple[str, ...] = ("auto", "blockwise", "cudnn", "dense", "splash")


def default_compute_dtype(backend: str) -> str:
  """Compute (activation) dtype for a JAX backend name: bfloat16 on "gpu"/"tpu" (their
  matrix units run bfloat16 with float32 accumulation), float32 elsewhere (CPU has no
  fast bfloat16 matmul). Weights and optimizer state keep `param_dtype` either way."""
  return "bfloat16" if backend in ("gpu", "tpu") else "float32"


@dataclasses.dataclass(frozen=True)
class RopeScaling:
  """RoPE frequency scaling.

  kind='llama3': Llama 3.1's piecewise scaling of long wavelengths.
  kind='linear': positions divided by `factor` (Gemma 3 4B+ global layers).
  """

  kind: Literal["llama3", "linear"]
  factor: float
  low_freq_factor: float = 1.0
  high_freq_factor: float = 4.0
  original_max_position: int = 8192


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Shapes and per-family switches of a decoder-only transformer."""

  name: str
  family: Family
  vocab_size: int
  embed_dim: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  mlp_dim: int
  rms_norm_eps: float = 1e-6
  activation: Activation = "silu"
  qkv_bias: bool = False
  qk_norm: bool = False
  post_norms: bool = False  # Gemma: norms after attention and after the MLP too.
  norm_offset: float = 0.0  # 1.0 for Gemma: RMSNorm multiplies by (1 + scale).
  embed_scale: bool = False  # Gemma: embeddings multiplied by sqrt(embed_dim).
  tie_embeddings: bool = True
  rope_base: float = 10_000.0  # global (full-attention) layers
  rope_base_local: float | None = None  # sliding-window layers; None: same as global
  rope_scaling: RopeScaling | None = None  # applies to global layers
  sliding_window: int | None = None  # keys with q_pos - k_pos < window are visible
  global_every: int = 0  # Gemma 3: every 6th layer is global; 0 means all global
  query_pre_attn_scalar: float | None = None  # None: head_dim
  final_logit_softcap: float | None = None
  attn_logit_softcap: float | None = None  # scores -> cap * tanh(scores / cap) (Gemma 2)
  max_position: int = 32_768
  dtype: str = "float32"  # activation / compute dtype
  param_dtype: str = "float32"
  remat_policy: RematPolicy = "none"
  # Multi-token attention (training, prefill); decode has its own path. "auto": cuDNN on
  # GPU where it applies, else blockwise online softmax; "dense": the whole score tensor.
  attention: AttentionImpl = "auto"
  attention_block_size: int = 512  # query and key block of the blockwise attention

  def __post_init__(self):
    if self.num_heads % self.num_kv_heads:
      raise ValueError(
          f"{self.name}: num_heads={self.num_heads} must be a multiple of "
          f"num_kv_heads={self.num_kv_heads}"
      )
    if self.global_every and self.sliding_window is None:
      raise ValueError(f"{self.name}: global_every needs a sliding_window")
    if self.family not in ("gemma3", "qwen2", "llama"):
      raise ValueError(f"unknown model family {self.family!r}")
    if self.attention not in ATTENTION_IMPLS:
      raise ValueError(f"unknown attention {self.attention!r}: one of {', '.join(ATTENTION_IMPLS)}")
    if self.attention_block_size < 1:
      raise ValueError(f"attention_block_size must be >= 1, got {self.attention_block_size}")

  @property
  def is_local_layer(self) -> tuple[bool, ...]:
    """Per layer: True for sliding-window layers (Gemma 3: 5 local, then 1 global)."""
    if not self.global_every:
      return tuple(False for _ in range(self.num_layers))
    return tuple((i + 1) % self.global_every != 0 for i in range(self.num_layers))

  @property
  def query_scale(self) -> float:
    return (self.query_pre_attn_scalar or self.head_dim) ** -0.5

  def num_params(self) -> int:
    """Parameter count (embedding counted once when tied)."""
    d, h, k, hd, f = (
        self.embed_dim,
        self.num_heads,
        self.num_kv_heads,
        self.head_dim,
        self.mlp_dim,
    )
    attn = d * h * hd * 2 + d * k * hd * 2
    if self.qkv_bias:
      attn += (h + 2 * k) * hd
    if self.qk_norm:
      attn += 2 * hd
    norms = d * (4 if self.post_norms else 2)
    layer = attn + 3 * d * f + norms
    emb = self.vocab_size * d * (1 if self.tie_embeddings else 2)
    return self.num_layers * layer + emb + d

  def replace(self, **changes) -> "ModelConfig":
    return dataclasses.replace(self, **changes)
