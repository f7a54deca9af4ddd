"""absolute-zero: Absolute Zero self-play reinforcement learning in JAX."""

__version__ = "0.1.0"
