"""Tokens/s and peak memory of one learner train step, JAX vs a PyTorch forward+backward.

Default: Gemma 3 270M, batch 8 x 512 tokens, float32, CPU. Configurations:
  jax_chunked    our jitted train_step (chunked log-probs with the fused head gradient,
                 remat of each layer by default, AdamW update included)
  jax_unchunked  the same with the full [B, T, V] log-softmax (no fused head,
                 logprob_vocab_chunk_size=None)
  torch_chunked  transformers Gemma3ForCausalLM (random init from config), forward +
                 backward of the same clipped surrogate, log-probs in row chunks under
                 torch.utils.checkpoint (no optimizer step: less work than the JAX step)
  torch_unchunked the same with full logits (about 3 x 4 GiB of logits: usually skipped)
Each configuration runs in its own subprocess so peak RSS (ru_maxrss) is its own; it runs
--warmup_steps untimed steps, then --timed_steps, and reports the fastest timed step.
Runs whose estimated memory exceeds MemAvailable are skipped (the machine is shared).

  python experiments/bench_learner.py
  python experiments/bench_learner.py --configs=jax_chunked --seq_len=256
  python experiments/bench_learner.py --configs=jax_chunked,torch_chunked --rounds=3
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "gemma3-270m", "preset name")
flags.DEFINE_bool(
    "embedded_weights", False, "JAX: load the embedded GGUF weights (same cost as random init)"
)
flags.DEFINE_integer("batch", 8, "rows")
flags.DEFINE_integer("seq_len", 512, "tokens per row")
flags.DEFINE_integer("prompt_len", 64, "prompt tokens per row (not in the loss)")
flags.DEFINE_integer(
    "chunk_size",
    512,
    "log-prob rows per chunk (chunked configs: the fused head; vocabulary columns with --nofused_head)",
)
flags.DEFINE_integer("micro_batch_size", 8, "JAX micro-batch rows (at most --batch)")
flags.DEFINE_enum(
    "remat",
    "full",
    ["none", "full", "dots", "dots_no_batch"],
    "JAX remat policy of the scanned block",
)
flags.DEFINE_bool("fused_head", True, "JAX chunked: fuse the head gradient into the forward")
flags.DEFINE_bool(
    "head_at_completions",
    True,
    "JAX: build vocabulary logits only at the completion (loss) positions, as "
    "the learner does by default; false: at every position, as PyTorch here",
)
flags.DEFINE_integer(
    "warmup_steps",
    0,
    "untimed steps first, in both frameworks (measured: the first step is "
    "as fast as later ones in both, so none by default)",
)
flags.DEFINE_integer("timed_steps", 1, "timed steps after the warm-up; the fastest is reported")
flags.DEFINE_integer(
    "rounds",
    1,
    "run every configuration this many times, interleaved (JAX, PyTorch, "
    "JAX, ...), and print the median of the same-round ratios: the host's "
    "speed drifts by tens of percent between minutes",
)
flags.DEFINE_list(
    "configs", ["jax_chunked", "jax_unchunked", "torch_chunked"], "configurations to run"
)
flags.DEFINE_bool("force", False, "run even when the memory estimate exceeds MemAvailable")
flags.DEFINE_string("worker", None, "internal: run one configuration and print JSON")
flags.DEFINE_string("json_out", None, "also write the results here")

GIB = 1024**3


def _mem_available() -> int:
  with open("/proc/meminfo") as f:
    for line in f:
      if line.startswith("MemAvailable:"):
        return int(line.split()[1]) * 1024
  return 0


def _estimate_bytes(name: str, config) -> int:
  """Rough peak: weights/grads/optimizer + logits (the part chunking changes)."""
  params = config.num_params() * 4
  state = params * (4 if name.startswith("jax") else 2)  # + grads (+ Adam moments)
  rows = FLAGS.batch * FLAGS.seq_len
  logit_rows = FLAGS.chunk_size if "_chunked" in name else rows
  logits = 3 * logit_rows * config.vocab_size * 4  # logits, log-softmax, their gradient
  # Saved activations per layer, in units of one [rows, embed] float32 array (rough):
  # PyTorch and JAX without remat keep each layer's intermediates, remat only its input.
  if name.startswith("torch"):
    per_layer = 25
  else:
    per_layer = 40 if FLAGS.remat == "none" else 4
  activations = per_layer * rows * config.embed_dim * 4 * config.num_layers
  return state + logits + activations


def _batch_arrays(vocab: int):
  import numpy as np

  rng = np.random.default_rng(0)
  b, t, p = FLAGS.batch, FLAGS.seq_len, FLAGS.prompt_len
  tokens = rng.integers(0, vocab, (b, t)).astype(np.int32)
  old = (-rng.uniform(1.0, 12.0, (b, t))).astype(np.float32)
  adv = rng.normal(size=b).astype(np.float32)
  return tokens, old, adv, p


def _peak_rss_bytes() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---------------------------------------------------------------------------- JAX


def _run_jax(chunked: bool) -> dict:
  import jax
  import numpy as np

  from absolute_zero import learner, sharding
  from absolute_zero.batching import BatchShapes, build_train_batch
  from absolute_zero.models import get_config, init_params
  from absolute_zero.policy_loading import load_model

  if FLAGS.embedded_weights:
    config, params = load_model(FLAGS.model)
  else:
    config = get_config(FLAGS.model)
    params = jax.jit(init_params, static_argnums=0)(config, jax.random.key(0))
  config = config.replace(remat_policy=FLAGS.remat)
  tokens, old, adv, p = _batch_arrays(config.vocab_size)
  t = FLAGS.seq_len
  micro = min(FLAGS.micro_batch_size, FLAGS.batch)  # never pad rows PyTorch does not run
  batch = build_train_batch(
      [list(r[:p]) for r in tokens],
      [list(r[p:]) for r in tokens],
      adv,
      [list(r[p - 1 : t - 1]) for r in old],
      shapes=BatchShapes(length_buckets=(t,), row_multiple=micro),
  )
  if not FLAGS.head_at_completions:
    batch = batch._replace(completion_index=None)
  lc = learner.LearnerConfig(
      micro_batch_size=micro,
      logprob_row_chunk_size=FLAGS.chunk_size,
      logprob_vocab_chunk_size=FLAGS.chunk_size if chunked else None,
      fused_head=FLAGS.fused_head and chunked,
  )
  mesh = sharding.single_device_mesh()
  state = learner.init_train_state(params, lc, mesh, config)
  del params
  batch = learner.shard_batch(batch, mesh)
  step = learner.make_train_step(config, lc, mesh)
  t0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  times = []
  metrics = None
  for _ in range(FLAGS.warmup_steps + FLAGS.timed_steps):
    t0 = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t0)
  return dict(
      _step_times(times),
      compile_s=compile_s,
      loss=float(metrics["loss"]),
      grad_norm=float(metrics["grad_norm"]),
      tokens=int(metrics["tokens"]),
  )


def _step_times(times: list[float]) -> dict:
  """step_s: the fastest timed step (after the warm-up steps); every step's time too."""
  return dict(
      step_s=min(times[FLAGS.warmup_steps :]),
      first_step_s=times[0],
      step_times=[round(t, 2) for t in times],
  )


# ---------------------------------------------------------------------------- PyTorch


def _run_torch(chunked: bool) -> dict:
  import numpy as np
  import torch
  import torch.utils.checkpoint
  import transformers

  from absolute_zero.models import get_config

  c = get_config(FLAGS.model)
  if c.family != "gemma3":
    raise ValueError("the PyTorch reference here builds Gemma 3 only")
  hf_config = transformers.Gemma3TextConfig(
      vocab_size=c.vocab_size,
      hidden_size=c.embed_dim,
      intermediate_size=c.mlp_dim,
      num_hidden_layers=c.num_layers,
      num_attention_heads=c.num_heads,
      num_key_value_heads=c.num_kv_heads,
      head_dim=c.head_dim,
      rms_norm_eps=c.rms_norm_eps,
      sliding_window=c.sliding_window,
      query_pre_attn_scalar=int(c.query_pre_attn_scalar),
      tie_word_embeddings=True,
      rope_parameters={
          "sliding_attention": {"rope_type": "default", "rope_theta": c.rope_base_local},
          "full_attention": {"rope_type": "default", "rope_theta": c.rope_base},
      },
  )
  torch.manual_seed(0)
  model = transformers.Gemma3ForCausalLM(hf_config).to(torch.float32).train()
  tokens, old, adv, p = _batch_arrays(c.vocab_size)
  tokens_t = torch.from_numpy(tokens).long()
  old_t = torch.from_numpy(old)
  adv_t = torch.from_numpy(adv)[:, None]
  mask = torch.zeros(tokens.shape, dtype=torch.float32)
  mask[:, p - 1 : FLAGS.seq_len - 1] = 1.0
  targets = torch.zeros_like(tokens_t)
  targets[:, :-1] = tokens_t[:, 1:]
  weight = model.get_output_embeddings().weight  # [V, D]

  def logprob_rows(h, tgt):  # [C, D], [C] -> [C]
    logits = h @ weight.T
    return torch.log_softmax(logits, dim=-1).gather(-1, tgt[:, None])[:, 0]

  def one_step():
    model.zero_grad(set_to_none=True)
    hidden = model.model(input_ids=tokens_t).last_hidden_state  # [B, T, D]
    flat_h = hidden.reshape(-1, hidden.shape[-1])
    flat_t = targets.reshape(-1)
    if chunked:
      parts = [
          torch.utils.checkpoint.checkpoint(
              logprob_rows,
              flat_h[i : i + FLAGS.chunk_size],
              flat_t[i : i + FLAGS.chunk_size],
              use_reentrant=False,
          )
          for i in range(0, flat_h.shape[0], FLAGS.chunk_size)
      ]
      logp = torch.cat(parts).reshape(tokens.shape)
    else:
      logp = logprob_rows(flat_h, flat_t).reshape(tokens.shape)
    log_ratio = torch.clamp((logp - old_t) * mask, -20.0, 20.0)
    ratio = torch.exp(log_ratio)
    per_token = -torch.minimum(ratio * adv_t, torch.clamp(ratio, 0.8, 1.2) * adv_t)
    loss = (per_token * mask).sum() / mask.sum()
    loss.backward()
    return float(loss)

  times = []
  loss = None
  for _ in range(FLAGS.warmup_steps + FLAGS.timed_steps):
    t0 = time.perf_counter()
    loss = one_step()
    times.append(time.perf_counter() - t0)
  return dict(_step_times(times), loss=loss, torch_threads=torch.get_num_threads())


# ---------------------------------------------------------------------------- driver


def _worker(name: str) -> None:
  try:  # on a shared machine, let the kernel pick this process first if memory runs out
    with open("/proc/self/oom_score_adj", "w") as f:
      f.write("1000")
  except OSError:
    pass
  runners = {
      "jax_chunked": lambda: _run_jax(True),
      "jax_unchunked": lambda: _run_jax(False),
      "torch_chunked": lambda: _run_torch(True),
      "torch_unchunked": lambda: _run_torch(False),
  }
  if name not in runners:
    raise ValueError(f"unknown configuration {name!r}; known: {', '.join(runners)}")
  result = runners[name]()
  result["tokens_per_s"] = FLAGS.batch * FLAGS.seq_len / result["step_s"]
  result["peak_rss_gib"] = _peak_rss_bytes() / GIB
  print("RESULT " + json.dumps(result), flush=True)


def _forwarded_flags() -> list[str]:
  names = [
      "model",
      "embedded_weights",
      "batch",
      "seq_len",
      "prompt_len",
      "chunk_size",
      "head_at_completions",
      "micro_batch_size",
      "remat",
      "fused_head",
      "warmup_steps",
      "timed_steps",
  ]
  return [f"--{n}={getattr(FLAGS, n)}" for n in names]


def main(argv):
  del argv
  if FLAGS.worker:
    _worker(FLAGS.worker)
    return
  if FLAGS.rounds < 1 or FLAGS.timed_steps < 1 or FLAGS.warmup_steps < 0:
    raise app.UsageError("--rounds and --timed_steps must be >= 1, --warmup_steps >= 0")
  from absolute_zero.models import get_config

  config = get_config(FLAGS.model)
  print(
      f"{FLAGS.model}: batch {FLAGS.batch} x {FLAGS.seq_len} tokens, float32, "
      f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; JAX remat "
      f"{FLAGS.remat}, fused head {FLAGS.fused_head}, chunk {FLAGS.chunk_size}",
      flush=True,
  )
  runs: dict[str, list[dict]] = {name: [] for name in FLAGS.configs}
  for round_index in range(FLAGS.rounds):
    for name in FLAGS.configs:
      label = f"{name:16s}" + (f" round {round_index + 1}" if FLAGS.rounds > 1 else "")
      runs[name].append(_run_config(name, config, label))
  results = {name: rs[0] for name, rs in runs.items()}
  base_runs = runs.get("torch_chunked", [])
  for name in ("jax_chunked", "jax_unchunked"):
    pairs = [
        (r, b)
        for r, b in zip(runs.get(name, []), base_runs)
        if "tokens_per_s" in r and "tokens_per_s" in b
    ]
    for i, (r, b) in enumerate(pairs):
      round_note = f" (round {i + 1})" if FLAGS.rounds > 1 else ""
      print(
          f"{name} / torch_chunked{round_note}: {r['tokens_per_s'] / b['tokens_per_s']:.2f}x "
          f"tokens/s, {r['peak_rss_gib'] / b['peak_rss_gib']:.2f}x peak memory"
      )
    if len(pairs) > 1:
      ratios = [r["tokens_per_s"] / b["tokens_per_s"] for r, b in pairs]
      print(
          f"{name} / torch_chunked over {len(pairs)} rounds: median "
          f"{statistics.median(ratios):.2f}x tokens/s (min {min(ratios):.2f}x, max "
          f"{max(ratios):.2f}x); median tokens/s {_median_of(runs[name]):.1f} vs "
          f"{_median_of(base_runs):.1f}"
      )
  if FLAGS.json_out:
    with open(FLAGS.json_out, "w") as f:
      json.dump(
          dict(
              flags={
                  n: getattr(FLAGS, n) for n in ("model", "batch", "seq_len", "remat", "rounds")
              },
              load_average=os.getloadavg(),
              results=results,
              runs=runs,
          ),
          f,
          indent=1,
      )


def _median_of(rs: list[dict]) -> float:
  values = [r["tokens_per_s"] for r in rs if "tokens_per_s" in r]
  return statistics.median(values) if values else float("nan")


def _run_config(name: str, config, label: str) -> dict:
  """One configuration in its own subprocess; its result dict (or skipped / failed)."""
  need, avail = _estimate_bytes(name, config), _mem_available()
  if need > avail and not FLAGS.force:
    result = dict(skipped=f"needs ~{need / GIB:.1f} GiB, {avail / GIB:.1f} GiB available")
    print(f"{label} skipped: {result['skipped']}", flush=True)
    return result
  t0 = time.perf_counter()
  proc = subprocess.run(
      [sys.executable, os.path.abspath(__file__), f"--worker={name}"] + _forwarded_flags(),
      capture_output=True,
      text=True,
      env={**os.environ, "JAX_PLATFORMS": "cpu"},
  )
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  if proc.returncode or not lines:
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    result = dict(failed=f"exit {proc.returncode}: {' | '.join(tail)}")
    print(f"{label} FAILED {result['failed']}", flush=True)
    return result
  r = json.loads(lines[-1][len("RESULT ") :])
  extra = f", compile {r['compile_s']:.0f} s" if "compile_s" in r else ""
  print(
      f"{label} {r['tokens_per_s']:7.1f} tokens/s  step {r['step_s']:6.1f} s "
      f"(first {r['first_step_s']:.1f} s)  peak RSS {r['peak_rss_gib']:5.2f} GiB{extra}  "
      f"(wall {time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.1f})",
      flush=True,
  )
  return r


if __name__ == "__main__":
  app.run(main)
