"""One process of the multi-process self-play test (tests/selfplay/test_multiprocess.py).

    python tests/selfplay/multiprocess_worker.py --assets DIR --out SUMMARY.json \
        --process_id I --num_processes N --coordinator 127.0.0.1:PORT [--checkpoint_dir D]

The parent sets XLA_FLAGS (fake CPU devices per process) and JAX_PLATFORMS=cpu. With
N > 1 the process joins the job through `distributed.maybe_initialize_distributed` (the
explicit JAX_* variables, as `launch/slurm_gpu.sbatch` sets them) with gloo CPU
collectives, builds the taught tiny model of `teach_tiny_model` on a ('data', 'fsdp',
'tensor') mesh over every device of the job, seeds the buffers, runs `--steps` steps with
the real sandbox and writes a JSON summary: fingerprints of the params and buffers, the
metrics, and how many sandbox jobs this process ran. Nothing here is collected by pytest.

`teach_tiny_model` (run once by the parent) writes the assets: a BPE tokenizer and a tiny
Llama fine-tuned (tests/selfplay/teaching.py) to answer deduction/abduction proposer
prompts with one of two memorised valid proposals, so that self-play really sends jobs to
the sandbox (a random model's output never parses, and then there would be nothing to
split). Induction is left
out of the run: the taught model sends it nothing, and it would only add compilations.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

from absolute_zero.tasks.types import TaskType

if __package__ in (None, ""):  # run as a script: the repository root holds `tests`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tests.selfplay import teaching  # noqa: E402

VALID = teaching.VALID
# A large BPE vocabulary trained on the prompts themselves: prompts of ~150 tokens instead
# of ~700, which makes teaching and self-play several times faster on CPU.
VOCAB = 1024
MESH = (2, 2, 1)  # data across the two processes, fsdp inside each
LEARNING_RATE = 1e-5
# One prompt bucket and one new-token bucket: every prompt and budget of the run share a
# few compiled sampler programs (compilation is most of this test's time on CPU).
SAMPLER = dict(min_length_bucket=512, new_token_buckets=(64,))
SELFPLAY = dict(
    task_types=(TaskType.DEDUCTION, TaskType.ABDUCTION),
    batch_size=2,
    n_solver_samples=2,
    num_references=1,
    max_seed_rounds=1,
    max_prompt_tokens=4000,
    max_proposer_tokens=64,
    max_solver_tokens=16,
)


def model_config():
  from absolute_zero.models import get_config

  return get_config("tiny-llama").replace(
      vocab_size=VOCAB, rope_scaling=None, num_layers=2, max_position=4096
  )


def teach_tiny_model(out_dir: str, sft_steps: int = 20) -> None:
  """Writes tokenizer.json and params.npz of a tiny Llama that emits memorised proposals."""
  import jax

  from absolute_zero.models import init_params
  from absolute_zero.tokenizers import from_tokenizer_json

  prompts = teaching.proposer_prompts()
  targets = teaching.proposal_texts(VALID)
  path = os.path.join(out_dir, "tokenizer.json")
  teaching.train_bpe(prompts + targets * 20, path, vocab_size=VOCAB - 12)
  tok = from_tokenizer_json(path)
  cfg = model_config()
  params, loss = teaching.teach(
      cfg, init_params(cfg, jax.random.key(0)), tok, prompts, targets, steps=sft_steps
  )
  if not loss < 0.2:  # two equally likely answers: floor log(2) per choice
    raise RuntimeError(f"tiny model did not learn the proposals (loss {loss})")
  leaves = jax.tree.leaves(params)
  np.savez(
      os.path.join(out_dir, "params.npz"),
      **{f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)},
  )


def load_assets(assets: str):
  """(model config, host params, tokenizer) written by `teach_tiny_model`."""
  import jax
  from absolute_zero.models import init_params
  from absolute_zero.tokenizers import from_tokenizer_json

  cfg = model_config()
  treedef = jax.tree.structure(jax.eval_shape(lambda: init_params(cfg, jax.random.key(0))))
  with np.load(os.path.join(assets, "params.npz")) as data:
    leaves = [data[f"leaf{i}"] for i in range(treedef.num_leaves)]
  return (
      cfg,
      jax.tree.unflatten(treedef, leaves),
      from_tokenizer_json(os.path.join(assets, "tokenizer.json")),
  )


class CountingPool:
  """Passes jobs to the real pool and counts them (the jobs this process ran)."""

  def __init__(self, pool):
    self.pool, self.jobs = pool, 0

  def run_batch(self, jobs):
    self.jobs += len(jobs)
    return self.pool.run_batch(jobs)


def fingerprint(tree) -> str:
  """sha256 of every leaf's dtype, shape and bytes, in tree order."""
  import jax

  h = hashlib.sha256()
  for x in jax.tree.leaves(tree):
    x = np.ascontiguousarray(x)
    h.update(f"{x.dtype}{x.shape}".encode())
    h.update(x.tobytes())
  return h.hexdigest()


def main(argv=None) -> int:
  parser = argparse.ArgumentParser()
  parser.add_argument("--assets", required=True)
  parser.add_argument("--out", required=True)
  parser.add_argument("--process_id", type=int, default=0)
  parser.add_argument("--num_processes", type=int, default=1)
  parser.add_argument("--coordinator", default="")
  parser.add_argument("--steps", type=int, default=2)
  parser.add_argument("--checkpoint_dir", default="")
  args = parser.parse_args(argv)
  start = time.perf_counter()

  import jax
  from absolute_zero import distributed

  if args.num_processes > 1:
    # gloo: cross-process collectives on CPU (jax's default; named so it is explicit).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    joined = distributed.maybe_initialize_distributed(
        {
            "JAX_COORDINATOR_ADDRESS": args.coordinator,
            "JAX_NUM_PROCESSES": str(args.num_processes),
            "JAX_PROCESS_ID": str(args.process_id),
        }
    )
    assert joined and jax.process_count() == args.num_processes
  from absolute_zero import learner, sharding
  from absolute_zero.sampler import TRACE_COUNTS, SamplerConfig
  from absolute_zero.sandbox import SandboxPool
  from absolute_zero.selfplay.selfplay_config import SelfPlayConfig
  from absolute_zero.selfplay.run import SelfPlayRun

  cfg, params, tok = load_assets(args.assets)
  mesh = sharding.make_mesh(MESH)
  with SandboxPool(num_workers=2) as real_pool:
    counting = CountingPool(real_pool)
    run = SelfPlayRun(
        cfg,
        params,
        tok,
        SelfPlayConfig(**SELFPLAY),
        learner.LearnerConfig(learning_rate=LEARNING_RATE, micro_batch_size=4),
        pool=counting,
        mesh=mesh,
        sampler_config=SamplerConfig(**SAMPLER),
    )
    log = lambda what: print(
        f"[worker {args.process_id}] {what} at " f"{time.perf_counter() - start:.1f}s",
        file=sys.stderr,
        flush=True,
    )
    log("set up")
    seed_metrics = run.seed_buffers()
    log("seeded")
    metrics = []
    for _ in range(args.steps):
      metrics.append(run.run_step())
      log(f"step {run.step}")
    host_params = distributed.to_host(run.train_state.params)
    checkpoint = None
    if args.checkpoint_dir:
      from absolute_zero.checkpointing import RunCheckpointer

      with RunCheckpointer(args.checkpoint_dir, async_save=False) as ckpt:
        ckpt.save(
            run.step, run.train_state, run.base_key, run.buffers.state_dict(), {"model": {}}, {}
        )
        restored = ckpt.restore(None, run.train_state)
      checkpoint = {
          "restored_params": fingerprint(distributed.to_host(restored.train_state.params)),
          "restored_buffers": restored.buffers == run.buffers.state_dict(),
      }
  buffers = run.buffers.state_dict()
  np.savez(
      args.out + ".params.npz",
      **{f"leaf{i}": x for i, x in enumerate(jax.tree.leaves(host_params))},
  )
  summary = {
      "process_index": jax.process_index(),
      "process_count": jax.process_count(),
      "devices": jax.device_count(),
      "local_devices": jax.local_device_count(),
      "params": fingerprint(host_params),
      "buffers": hashlib.sha256(json.dumps(buffers, sort_keys=True).encode()).hexdigest(),
      "buffer_state": buffers,
      "buffer_sizes": run.buffers.sizes(),
      "seed_metrics": seed_metrics,
      "metrics": metrics,
      "step": run.step,
      "sandbox_jobs": counting.jobs,
      "sandbox_batches": getattr(run.pool, "batches", None),
      "sampler_traces": dict(TRACE_COUNTS),
      "checkpoint": checkpoint,
      "seconds": time.perf_counter() - start,
  }
  with open(args.out, "w") as f:
    json.dump(summary, f)
  return 0


if __name__ == "__main__":
  sys.exit(main())
