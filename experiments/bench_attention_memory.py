"""Peak memory of one learner train step vs sequence length: blockwise vs dense attention.

For each length and attention implementation the jitted `train_step` (forward, backward
through the chunked fused head, AdamW) of one row is lowered and compiled, and XLA's
compiled memory analysis (`jit(...).lower(...).compile().memory_analysis()`) gives its
peak: arguments + outputs - donated aliases + temporaries. Nothing runs, so the dense
figures at 16k tokens (tens of GiB of scores) are reported without allocating them. The
memory the step needs grows ~linearly with length for "blockwise" and ~quadratically for
"dense" (the former attention, which held the whole [b, kv, g, t, s] score tensor).

  python experiments/bench_attention_memory.py
  python experiments/bench_attention_memory.py --model=tiny-gemma3 --lengths=1024,2048
"""

from __future__ import annotations

import os
import sys
import time

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout

from experiments import cli  # noqa: E402

PROG = "bench_attention_memory"
FLAGS = flags.FLAGS
flags.DEFINE_string(
    "model", "smollm2-135m", "Model preset (random weights; only shapes " "matter: nothing is run)."
)
flags.DEFINE_list("lengths", ["2048", "4096", "8192", "16384"], "Tokens per row (batch 1).")
flags.DEFINE_list(
    "impls",
    ["blockwise", "dense"],
    "Attention implementations to compare " "(models/attention.py: blockwise, dense, cudnn, auto).",
)
flags.DEFINE_integer("block_size", 512, "Query/key block of the blockwise attention.")
flags.DEFINE_integer("prompt_len", 256, "Prompt tokens of the row (not in the loss).")
flags.DEFINE_enum(
    "remat",
    "full",
    ["none", "full", "dots", "dots_no_batch"],
    "Remat policy of the scanned layers (azr's default: full).",
)
flags.DEFINE_string(
    "dtype",
    "float32",
    "Compute dtype (float32 or bfloat16); weights and " "AdamW state stay float32.",
)

GIB = 1024**3


def _step_memory(config, length: int) -> dict:
  """Compiled memory analysis of one train step on a [1, length] row."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from absolute_zero import learner, sharding
  from absolute_zero.batching import BatchShapes, build_train_batch

  p = min(FLAGS.prompt_len, length - 1)
  rng = np.random.default_rng(0)
  tokens = rng.integers(1, config.vocab_size, length)
  batch = build_train_batch(
      [list(tokens[:p])],
      [list(tokens[p:])],
      [1.0],
      [[0.0] * (length - p)],
      shapes=BatchShapes(length_buckets=(length,)),
  )
  lc = learner.LearnerConfig(micro_batch_size=1)
  mesh = sharding.single_device_mesh()
  abstract_state = learner.abstract_train_state(config, lc, mesh)
  abstract_batch = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.asarray(x).dtype), batch
  )
  t0 = time.perf_counter()
  compiled = (
      learner.make_train_step(config, lc, mesh).lower(abstract_state, abstract_batch).compile()
  )
  m = compiled.memory_analysis()
  peak = (
      m.argument_size_in_bytes
      + m.output_size_in_bytes
      - m.alias_size_in_bytes
      + m.temp_size_in_bytes
  )
  return dict(
      peak=peak,
      temp=m.temp_size_in_bytes,
      args=m.argument_size_in_bytes,
      compile_s=time.perf_counter() - t0,
  )


def main(argv) -> None:
  del argv
  from absolute_zero.models import attention as attention_lib
  from absolute_zero.models import get_config

  try:
    lengths = [int(x) for x in FLAGS.lengths]
  except ValueError:
    raise cli.InputError(
        f"--lengths={','.join(FLAGS.lengths)}: give integers, e.g. " "2048,4096"
    ) from None
  cli.check(all(n >= 2 for n in lengths), "--lengths: every length must be >= 2")
  cli.one_of("impls", FLAGS.impls, attention_lib.IMPLEMENTATIONS)
  cli.at_least("block_size", 1)
  cli.check(
      FLAGS.dtype in ("float32", "bfloat16"), f"--dtype={FLAGS.dtype}: choose float32 or bfloat16"
  )
  try:
    base = get_config(FLAGS.model)
  except ValueError as e:
    raise cli.InputError(f"--model: {e}") from None
  import jax

  print(
      f"{base.name}: train step of 1 row, remat {FLAGS.remat}, compute {FLAGS.dtype}, "
      f"float32 weights + AdamW; peak = arguments + outputs - aliases + temporaries from "
      f"XLA's compiled memory analysis ({jax.default_backend()}, nothing run)",
      flush=True,
  )
  results = {}
  for impl in FLAGS.impls:
    config = base.replace(
        attention=impl,
        attention_block_size=FLAGS.block_size,
        remat_policy=FLAGS.remat,
        dtype=FLAGS.dtype,
    )
    for n in lengths:
      r = _step_memory(config, n)
      results[impl, n] = r
      print(
          f"  {impl:9s} {n:6d} tokens: peak {r['peak'] / GIB:7.2f} GiB (temporaries "
          f"{r['temp'] / GIB:7.2f} GiB, arguments {r['args'] / GIB:5.2f} GiB; compiled in "
          f"{r['compile_s']:.0f} s)",
          flush=True,
      )
    if len(lengths) > 1:
      lo, hi = min(lengths), max(lengths)
      ratio = results[impl, hi]["peak"] / results[impl, lo]["peak"]
      print(
          f"  {impl:9s} peak({hi}) / peak({lo}) = {ratio:.2f} (length ratio " f"{hi / lo:.0f})",
          flush=True,
      )


if __name__ == "__main__":
  cli.run(main, PROG)
