"""Generation internals: token sampling, shape buckets, and the jitted decode loop.

The public entry point is `absolute_zero.sampler.Sampler`.
"""
