"""Named model presets: real checkpoints' shapes plus tiny configs for tests.

Values follow each family's published `config.json`. Gemma 3's local RoPE base, layer
pattern and query scale are not stored in its GGUF file, so they live here.
"""

from __future__ import annotations

from absolute_zero.models.config import ModelConfig, RopeScaling


def _gemma3(
    name,
    *,
    vocab=262_144,
    d,
    layers,
    heads,
    kv,
    head_dim=256,
    mlp,
    window=512,
    rope_scaling=None,
    qpas=256.0,
) -> ModelConfig:
  return ModelConfig(
      name=name,
      family="gemma3",
      vocab_size=vocab,
      embed_dim=d,
      num_layers=layers,
      num_heads=heads,
      num_kv_heads=kv,
      head_dim=head_dim,
      mlp_dim=mlp,
      rms_norm_eps=1e-6,
      activation="gelu_tanh",
      qk_norm=True,
      post_norms=True,
      norm_offset=1.0,
      embed_scale=True,
      tie_embeddings=True,
      rope_base=1_000_000.0,
      rope_base_local=10_000.0,
      rope_scaling=rope_scaling,
      sliding_window=window,
      global_every=6,
      query_pre_attn_scalar=qpas,
      max_position=32_768,
  )


def _qwen2(name, *, vocab, d, layers, heads, kv, head_dim=128, mlp, tied, eps=1e-6):
  return ModelConfig(
      name=name,
      family="qwen2",
      vocab_size=vocab,
      embed_dim=d,
      num_layers=layers,
      num_heads=heads,
      num_kv_heads=kv,
      head_dim=head_dim,
      mlp_dim=mlp,
      rms_norm_eps=eps,
      activation="silu",
      qkv_bias=True,
      tie_embeddings=tied,
      rope_base=1_000_000.0,
      max_position=32_768,
  )


def _llama(
    name,
    *,
    vocab,
    d,
    layers,
    heads,
    kv,
    head_dim,
    mlp,
    tied,
    rope_base,
    eps=1e-5,
    rope_scaling=None,
    max_position=8192,
):
  return ModelConfig(
      name=name,
      family="llama",
      vocab_size=vocab,
      embed_dim=d,
      num_layers=layers,
      num_heads=heads,
      num_kv_heads=kv,
      head_dim=head_dim,
      mlp_dim=mlp,
      rms_norm_eps=eps,
      activation="silu",
      tie_embeddings=tied,
      rope_base=rope_base,
      rope_scaling=rope_scaling,
      max_position=max_position,
  )


_LLAMA31_SCALING = RopeScaling(
    kind="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position=8192
)

PRESETS: dict[str, ModelConfig] = {
    c.name: c
    for c in [
        _gemma3("gemma3-270m", d=640, layers=18, heads=4, kv=1, mlp=2048),
        _gemma3("gemma3-1b", d=1152, layers=26, heads=4, kv=1, mlp=6912),
        _gemma3(
            "gemma3-4b",
            d=2560,
            layers=34,
            heads=8,
            kv=4,
            mlp=10240,
            window=1024,
            rope_scaling=RopeScaling(kind="linear", factor=8.0),
        ),
        _qwen2(
            "qwen2.5-0.5b",
            vocab=151_936,
            d=896,
            layers=24,
            heads=14,
            kv=2,
            head_dim=64,
            mlp=4864,
            tied=True,
        ),
        _qwen2(
            "qwen2.5-1.5b", vocab=151_936, d=1536, layers=28, heads=12, kv=2, mlp=8960, tied=True
        ),
        _qwen2(
            "qwen2.5-3b", vocab=151_936, d=2048, layers=36, heads=16, kv=2, mlp=11008, tied=True
        ),
        _qwen2(
            "qwen2.5-7b", vocab=152_064, d=3584, layers=28, heads=28, kv=4, mlp=18944, tied=False
        ),
        _qwen2(
            "qwen2.5-coder-7b",
            vocab=152_064,
            d=3584,
            layers=28,
            heads=28,
            kv=4,
            mlp=18944,
            tied=False,
        ),
        _qwen2(
            "qwen2.5-14b",
            vocab=152_064,
            d=5120,
            layers=48,
            heads=40,
            kv=8,
            mlp=13824,
            tied=False,
            eps=1e-5,
        ),
        _llama(
            "llama3.1-8b",
            vocab=128_256,
            d=4096,
            layers=32,
            heads=32,
            kv=8,
            head_dim=128,
            mlp=14336,
            tied=False,
            rope_base=500_000.0,
            rope_scaling=_LLAMA31_SCALING,
            max_position=131_072,
        ),
        _llama(
            "llama3.2-1b",
            vocab=128_256,
            d=2048,
            layers=16,
            heads=32,
            kv=8,
            head_dim=64,
            mlp=8192,
            tied=True,
            rope_base=500_000.0,
            rope_scaling=RopeScaling(
                kind="llama3",
                factor=32.0,
                low_freq_factor=1.0,
                high_freq_factor=4.0,
                original_max_position=8192,
            ),
            max_position=131_072,
        ),
        _llama(
            "smollm2-135m",
            vocab=49_152,
            d=576,
            layers=30,
            heads=9,
            kv=3,
            head_dim=64,
            mlp=1536,
            tied=True,
            rope_base=100_000.0,
        ),
        # Tiny configs for tests: every family switch on, seconds to run.
        _gemma3(
            "tiny-gemma3",
            vocab=512,
            d=64,
            layers=6,
            heads=4,
            kv=2,
            head_dim=16,
            mlp=128,
            window=8,
            qpas=16.0,
        ),
        _qwen2(
            "tiny-qwen2", vocab=512, d=64, layers=2, heads=4, kv=2, head_dim=16, mlp=128, tied=False
        ),
        _llama(
            "tiny-llama",
            vocab=512,
            d=64,
            layers=2,
            heads=4,
            kv=2,
            head_dim=16,
            mlp=128,
            tied=False,
            rope_base=500_000.0,
            rope_scaling=RopeScaling(
                kind="llama3",
                factor=8.0,
                low_freq_factor=1.0,
                high_freq_factor=4.0,
                original_max_position=64,
            ),
        ),
    ]
}


def get_config(name: str, **overrides) -> ModelConfig:
  """Returns the preset `name`, optionally with fields replaced."""
  try:
    config = PRESETS[name]
  except KeyError:
    raise ValueError(
        f"unknown model preset {name!r}; known presets: {', '.join(sorted(PRESETS))}"
    ) from None
  return config.replace(**overrides) if overrides else config
