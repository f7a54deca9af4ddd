"""The Absolute Zero semantics: task objects, prompts, parsers, validators, buffers, rewards.

Host-side plain Python; the sandbox (``absolute_zero.sandbox``) runs the programs.
Import submodules directly (``from absolute_zero.tasks import parsers``); the pure ones
(types, prompts, parsers, buffers, rewards) import without the sandbox.
"""
