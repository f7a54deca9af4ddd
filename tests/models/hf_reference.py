"""Tiny random transformers models matching our tiny presets (test-time reference only)."""

import numpy as np

from absolute_zero.models import get_config


def hf_config_for(name: str):
  """A transformers config with the same shapes as our tiny preset `name`."""
  import transformers

  c = get_config(name)
  common = dict(
      vocab_size=c.vocab_size,
      hidden_size=c.embed_dim,
      intermediate_size=c.mlp_dim,
      num_hidden_layers=c.num_layers,
      num_attention_heads=c.num_heads,
      num_key_value_heads=c.num_kv_heads,
      head_dim=c.head_dim,
      rms_norm_eps=c.rms_norm_eps,
      tie_word_embeddings=c.tie_embeddings,
  )
  if c.family == "gemma3":
    return transformers.Gemma3TextConfig(
        **common,
        sliding_window=c.sliding_window,
        query_pre_attn_scalar=int(c.query_pre_attn_scalar),
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": c.rope_base_local},
            "full_attention": {"rope_type": "default", "rope_theta": c.rope_base},
        },
    )
  if c.family == "qwen2":
    return transformers.Qwen2Config(
        **common, rope_parameters={"rope_type": "default", "rope_theta": c.rope_base}
    )
  s = c.rope_scaling
  return transformers.LlamaConfig(
      **common,
      rope_parameters={
          "rope_type": "llama3",
          "rope_theta": c.rope_base,
          "factor": s.factor,
          "low_freq_factor": s.low_freq_factor,
          "high_freq_factor": s.high_freq_factor,
          "original_max_position_embeddings": s.original_max_position,
      },
  )


def random_hf_model(name: str, seed: int = 0):
  """A float32 transformers model with random weights, norms and biases included."""
  import torch
  import transformers

  torch.manual_seed(seed)
  config = hf_config_for(name)
  config._attn_implementation = "eager"
  model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
  gen = np.random.default_rng(seed)
  with torch.no_grad():
    for pname, p in model.named_parameters():
      if "norm" in pname or pname.endswith("bias"):  # default init is 0/1: randomise
        p.copy_(torch.from_numpy(gen.normal(0, 0.3, p.shape).astype(np.float32)))
  return model.eval()
