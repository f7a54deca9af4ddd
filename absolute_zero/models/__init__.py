"""Policy model: configs, presets, the transformer and weight import."""

from absolute_zero.models.config import ModelConfig, RopeScaling
from absolute_zero.models.presets import PRESETS, get_config
from absolute_zero.models.transformer import (
    KVCache,
    Transformer,
    compute_logits,
    forward,
    init_cache,
    init_params,
    logical_axes,
    unembedding,
)
