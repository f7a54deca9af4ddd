"""Generation internals: token sampling, left padding, and the jitted decode loop.

The public entry point is `absolute_zero.sampler.Sampler`.
"""
