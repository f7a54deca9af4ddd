"""Benchmark: our JAX sampler beside transformers' `generate`, plus a decode-step breakdown.

Same model (default: the embedded Gemma 3 270M GGUF, float32), same token-id prompts, same
lengths, every row generating exactly `--new_tokens` tokens (no EOS stop). Each backend runs
in its own subprocess so peak memory (ru_maxrss) and thread pools are its own.

Printed per backend and mode (greedy, sampling at T=1.0): prefill seconds (until the first
token's logits exist: `last_stats` for JAX, a timestamping logits processor for
transformers), decode tokens/s (rows x new_tokens / (generate time - prefill time)),
end-to-end tokens/s, peak RSS; then the ratios JAX / transformers. `--breakdown` times the
parts of one decode step in the JAX process — full step (from the while_loop), trunk with
cache, matmul-only trunk ceiling, LM head matmul, attention alone, and each sampler regime —
all at the same batch and cache size.

  python3 experiments/bench_sampler.py --batch 32 --prompt_len 320 --new_tokens 256
  python3 experiments/bench_sampler.py --batch 8 --prompt_len 64 --new_tokens 32  # quick

The machine may be shared: report the load average printed with the figures.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "gemma3-270m", "embedded model name (or GGUF path)")
flags.DEFINE_integer("batch", 32, "prompts per generate call")
flags.DEFINE_integer("prompt_len", 320, "tokens per prompt")
flags.DEFINE_integer("new_tokens", 256, "tokens generated per row")
flags.DEFINE_list("backends", ["jax", "transformers"], "jax and/or transformers")
flags.DEFINE_list("modes", ["greedy", "sample"], "greedy and/or sample (T=1.0)")
flags.DEFINE_bool("breakdown", True, "time the parts of one decode step (JAX)")
flags.DEFINE_integer("threads", 0, "torch intra-op threads (0: torch's default)")
flags.DEFINE_bool("random_weights", False, "use random weights of the preset (no GGUF load)")
flags.DEFINE_string("json_out", "", "write all results here as JSON")
flags.DEFINE_string("child", "", "internal: run one backend and print JSON")


def make_prompts(vocab_size: int, batch: int, length: int, tokenizer=None) -> list[list[int]]:
  """Deterministic prompts of exactly `length` ids: stdlib source text when a tokenizer is
  given (realistic ids), else a fixed pseudo-random sequence."""
  import numpy as np

  if tokenizer is not None:
    import inspect
    import collections, json as json_mod, argparse, textwrap, typing, dataclasses  # noqa

    sources = [
        inspect.getsource(m)
        for m in (collections, json_mod, argparse, textwrap, typing, dataclasses)
    ]
    ids = tokenizer.encode("\n".join(sources))
    bos = [tokenizer.bos_id] if tokenizer.add_bos_default else []
    stride = max(1, (len(ids) - length) // max(batch, 1))
    return [bos + ids[i * stride : i * stride + length - len(bos)] for i in range(batch)]
  rng = np.random.default_rng(0)
  return rng.integers(3, vocab_size, (batch, length)).tolist()


def _peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _high_water_mib() -> float:
  """This process's peak resident memory so far (VmHWM; ru_maxrss where /proc is absent)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024.0
  except OSError:
    pass
  return _peak_rss_mib()


def _load_jax(model: str, random_weights: bool):
  from absolute_zero.policy_loading import load_model
  from absolute_zero.tokenizers import load_tokenizer

  config, params = load_model(model, random_init=random_weights)
  tokenizer = None if random_weights else load_tokenizer(model)
  return config, params, tokenizer


def _time_fn(fn, *args, repeats: int = 5) -> float:
  """Median seconds of fn(*args) after one warm-up (compilation)."""
  import jax
  import numpy as np

  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def sampling_costs(logits, repeats: int = 5, keys: int = 20) -> dict[str, float]:
  """Milliseconds of one `sample_tokens` call per regime on these logits [b, V].

  Each figure is the median over `repeats` interleaved rounds of the mean over `keys`
  random keys (a top-p call's cost depends on how many of its draws need a membership
  pass, which depends on the key); `*_spread` gives the min and max round.
  """
  import jax
  import numpy as np

  from absolute_zero.sampling.token_sampling import SamplingKnobs, sample_tokens

  sample = jax.jit(sample_tokens)
  regimes = {
      "greedy": SamplingKnobs.make(0.0),
      "t1": SamplingKnobs.make(1.0),
      "top_p_0.95": SamplingKnobs.make(1.0, 0.95),
      "top_k_50": SamplingKnobs.make(1.0, 1.0, 50),
  }
  key_list = [jax.random.key(i) for i in range(keys)]
  for knobs in regimes.values():
    jax.block_until_ready(sample(logits, knobs, key_list[0]))
  rounds = {name: [] for name in regimes}
  for _ in range(repeats):
    for name, knobs in regimes.items():
      start = time.perf_counter()
      for key in key_list:
        jax.block_until_ready(sample(logits, knobs, key))
      rounds[name].append(1000 * (time.perf_counter() - start) / keys)
  out = {}
  for name, ms in rounds.items():
    out[f"sample_{name}_ms"] = float(np.median(ms))
    out[f"sample_{name}_spread"] = (float(min(ms)), float(max(ms)))
  ratios = np.array(rounds["top_p_0.95"]) / np.array(rounds["t1"])  # same round
  out["top_p_over_t1"] = float(np.median(ratios))
  out["top_p_over_t1_spread"] = (float(ratios.min()), float(ratios.max()))
  return out


def model_logits(config, params, prompts) -> "jax.Array":
  """The model's next-token logits [b, V] after each prompt (its last position)."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from absolute_zero.models.transformer import compute_logits, forward

  tokens = jnp.asarray(np.asarray(prompts, np.int32))  # [b, t]
  positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)

  @jax.jit
  def last_logits(params, tokens, positions):
    hidden = forward(params, tokens, positions, None, config, causal_slots=True)
    return compute_logits(params, hidden[:, -1], config).astype(jnp.float32)

  return last_logits(jax.device_put(params), tokens, positions)


def step_breakdown(config, params, batch: int, slots: int) -> dict[str, float]:
  """Milliseconds of each part of one decode step at this batch and cache size."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from absolute_zero.models.transformer import (
      _decode_attention_merged,
      compute_logits,
      decode_step,
      init_cache,
      ring_cache,
      ring_slots,
      split_cache,
      split_layer_params,
  )

  params = jax.device_put(params)
  # Each layer's weights as separate arrays, split once outside the timed programs (the
  # decode loop splits them once per call, before the loop): a scan over the stacked
  # weights would copy every layer's slice at every call.
  split_params = jax.block_until_ready(split_layer_params(params, config))
  layer_weights = split_params["layers"]
  d, vocab = config.embed_dim, config.vocab_size
  rng = np.random.default_rng(0)
  hidden = jnp.asarray(rng.standard_normal((batch, d)).astype(np.float32))
  cache = init_cache(config, batch, slots)
  cache = cache._replace(
      k=jnp.asarray(rng.standard_normal(cache.k.shape).astype(np.float32)),
      v=jnp.asarray(rng.standard_normal(cache.v.shape).astype(np.float32)),
      valid=jnp.ones(cache.valid.shape, bool),
      positions=jnp.broadcast_to(jnp.arange(slots), cache.positions.shape),
  )
  cache = split_cache(cache)  # per layer, as the single-device decode loop holds it
  sizes = ring_slots(config, slots)  # local layers: a ring of their window's last slots
  cut = lambda xs: tuple(
      ring_cache(x, slots - 1, n) if n < slots else x for x, n in zip(xs, sizes, strict=True)
  )
  cache = cache._replace(k=cut(cache.k), v=cut(cache.v))
  tokens = jnp.zeros((batch, 1), jnp.int32)
  positions = jnp.full((batch, 1), slots - 1, jnp.int32)

  def trunk(params, cache):  # the decode loop's own step function
    return decode_step(params, tokens, positions, cache, slots - 1, config)

  trunk = jax.jit(trunk, donate_argnums=(1,))  # in place, as in the decode loop

  def trunk_seconds(repeats: int = 5) -> float:
    nonlocal cache
    _, cache = trunk(split_params, cache)
    jax.block_until_ready(cache)
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      h, cache = trunk(split_params, cache)
      jax.block_until_ready(h)
      times.append(time.perf_counter() - start)
    return float(np.median(times))

  def one_layer_matmuls(x, w):
    a = w["attn"]
    q = jnp.einsum("bd,dnh->bnh", x, a["q_proj"])
    k = jnp.einsum("bd,dnh->bnh", x, a["k_proj"])
    v = jnp.einsum("bd,dnh->bnh", x, a["v_proj"])
    x = x + jnp.einsum("bnh,nhd->bd", q, a["o_proj"]) + 0 * (k.sum() + v.sum())
    m = w["mlp"]
    g = jnp.einsum("bd,df->bf", x, m["gate_proj"]) * jnp.einsum("bd,df->bf", x, m["up_proj"])
    return x + jnp.einsum("bf,fd->bd", g, m["down_proj"])

  @jax.jit
  def matmul_trunk(layer_weights, x):  # unrolled over the per-layer weights
    for w in layer_weights:
      x = one_layer_matmuls(x, w)
    return x

  @jax.jit
  def lm_head(params, h):
    return compute_logits(params, h, config)

  @jax.jit
  def attention_only(q, ks, vs):  # q [L, b * kv, g, hd]; ks/vs per layer [b * kv, S_l, hd]
    # The model's own per-layer decode attention (same einsum layout), layer by layer.
    return [
        _decode_attention_merged(
            q[i], k, v, jnp.ones(k.shape[:2], bool), config.query_scale, jnp.float32
        )
        for i, (k, v) in enumerate(zip(ks, vs))
    ]

  groups = config.num_heads // config.num_kv_heads
  q = jnp.asarray(
      rng.standard_normal(
          (config.num_layers, batch * config.num_kv_heads, groups, config.head_dim)
      ).astype(np.float32)
  )
  logits = lm_head(params, hidden)
  out = {
      "trunk_with_cache_ms": trunk_seconds(),
      "trunk_matmul_ceiling_ms": _time_fn(matmul_trunk, layer_weights, hidden),
      "lm_head_ms": _time_fn(lm_head, params, hidden),
      "attention_ms": _time_fn(attention_only, q, cache.k, cache.v),
      "categorical_reference_ms": _time_fn(
          jax.jit(jax.random.categorical), jax.random.key(0), logits
      ),
  }
  return {k: v * 1000 for k, v in out.items()} | {
      f"{k} (random hidden)": v for k, v in sampling_costs(logits).items()
  }


def prefill_ceiling(config, params, tokens: int) -> dict[str, float]:
  """Seconds of the trunk's matmuls alone over `tokens` rows (the prefill's floor), and
  the FLOP rate they reach: prefill is compute-bound, so no prefill can beat this."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  layers = jax.device_put(params["layers"])
  x = jnp.asarray(
      np.random.default_rng(0).standard_normal((tokens, config.embed_dim)).astype(np.float32)
  )

  def one(x, w):
    a, m = w["attn"], w["mlp"]
    q = jnp.einsum("bd,dnh->bnh", x, a["q_proj"])
    k = jnp.einsum("bd,dnh->bnh", x, a["k_proj"])
    v = jnp.einsum("bd,dnh->bnh", x, a["v_proj"])
    x = x + jnp.einsum("bnh,nhd->bd", q, a["o_proj"]) + 0 * (k.sum() + v.sum())
    g = jnp.einsum("bd,df->bf", x, m["gate_proj"]) * jnp.einsum("bd,df->bf", x, m["up_proj"])
    return x + jnp.einsum("bf,fd->bd", g, m["down_proj"]), None

  trunk = jax.jit(lambda ls, x: jax.lax.scan(one, x, ls)[0])
  seconds = _time_fn(trunk, layers, x, repeats=2)
  flops = (
      2
      * tokens
      * sum(
          int(np.prod(a.shape))
          for a in jax.tree.leaves(
              {
                  "attn": {k: layers["attn"][k] for k in ("q_proj", "k_proj", "v_proj", "o_proj")},
                  "mlp": layers["mlp"],
              }
          )
      )
  )
  return {
      "prefill_matmul_ceiling_s": seconds,
      "trunk_gflops_per_s": flops / seconds / 1e9,
      "prefill_trunk_tflop": flops / 1e12,
  }


def run_jax(args: dict) -> dict:
  import jax
  from absolute_zero.sampler import Sampler, SamplerConfig

  t0 = time.perf_counter()
  config, params, tokenizer = _load_jax(args["model"], args["random_weights"])
  load_s = time.perf_counter() - t0
  # Peak RSS after each phase: the figure to compare with transformers is the one before
  # the breakdown, which allocates its own random cache and timing programs.
  rss = {"after_load": _high_water_mib()}
  prompts = make_prompts(config.vocab_size, args["batch"], args["prompt_len"], tokenizer)
  new = args["new_tokens"]
  sampler = Sampler(
      config, params, tokenizer, sampler_config=SamplerConfig(new_token_buckets=(new,))
  )
  result = {
      "backend": "jax",
      "load_s": load_s,
      "devices": str(jax.devices()[0]),
      "prompt_tokens": sum(len(p) for p in prompts),
  }
  kw = dict(eos_token_ids=(), seed=0)
  # Compile (prefill, start, decode) with a 1-token call in the same buckets.
  t0 = time.perf_counter()
  sampler.generate(prompts, max_new_tokens=1, temperature=0.0, **kw)
  result["compile_and_first_call_s"] = time.perf_counter() - t0
  rss["after_compile"] = _high_water_mib()
  for mode in args["modes"]:
    temperature = 0.0 if mode == "greedy" else 1.0
    t0 = time.perf_counter()
    out = sampler.generate(prompts, max_new_tokens=new, temperature=temperature, **kw)
    total = time.perf_counter() - t0
    assert all(len(c.token_ids) == new for c in out)
    stats = sampler.last_stats
    result[mode] = dict(
        prefill_s=stats["prefill_seconds"],
        total_s=total,
        decode_tokens_per_s=len(prompts) * new / stats["decode_seconds"],
        end_to_end_tokens_per_s=len(prompts) * new / total,
        step_ms=1000 * stats["decode_seconds"] / stats["decode_steps"],
        sample_text=out[0].text[:80],
    )
    rss[f"after_{mode}"] = _high_water_mib()
  result["peak_rss_sampler_mib"] = _high_water_mib()
  if args["breakdown"]:
    slots = sampler.last_stats["prompt_bucket"] + sampler.last_stats["new_token_bucket"]
    result["breakdown"] = step_breakdown(config, params, len(prompts), slots)
    # Random hidden states give nearly flat logits (the worst case for top-p's membership
    # passes); the model's own next-token logits after the prompts are what decode sees.
    result["breakdown"] |= {
        f"{k} (model logits)": v
        for k, v in sampling_costs(model_logits(config, params, prompts)).items()
    }
    result["prefill_ceiling"] = prefill_ceiling(
        config, params, len(prompts) * stats["prompt_bucket"]
    )
  result["peak_rss_mib"] = _peak_rss_mib()
  rss["after_breakdown"] = _high_water_mib()
  result["peak_rss_by_phase_mib"] = rss
  return result


def run_transformers(args: dict) -> dict:
  import torch
  from transformers import AutoModelForCausalLM

  from absolute_zero.embedded_models import embedded_gguf_path
  from absolute_zero.tokenizers import load_tokenizer

  if args["threads"]:
    torch.set_num_threads(args["threads"])
  t0 = time.perf_counter()
  path = embedded_gguf_path(args["model"])
  model = AutoModelForCausalLM.from_pretrained(
      str(path.parent), gguf_file=path.name, dtype=torch.float32
  ).eval()
  tokenizer = load_tokenizer(args["model"])
  load_s = time.perf_counter() - t0
  prompts = make_prompts(model.config.vocab_size, args["batch"], args["prompt_len"], tokenizer)
  ids = torch.tensor(prompts)
  new = args["new_tokens"]
  result = {"backend": "transformers", "load_s": load_s, "threads": torch.get_num_threads()}

  class StepClock:
    """A logits processor that only records when each decode step's logits arrive."""

    def __init__(self):
      self.times = []

    def __call__(self, input_ids, scores):
      self.times.append(time.perf_counter())
      return scores

  def generate(batch_ids, max_new, do_sample, clock=None):
    torch.manual_seed(0)
    with torch.no_grad():
      return model.generate(
          input_ids=batch_ids,
          attention_mask=torch.ones_like(batch_ids),
          max_new_tokens=max_new,
          min_new_tokens=max_new,
          do_sample=do_sample,
          temperature=1.0 if do_sample else None,
          top_k=0 if do_sample else None,
          top_p=1.0 if do_sample else None,
          use_cache=True,
          pad_token_id=0,
          logits_processor=[clock] if clock else None,
      )

  generate(ids[:1, :16], 2, False)  # warm-up
  for mode in args["modes"]:
    clock = StepClock()
    t0 = time.perf_counter()
    out = generate(ids, new, mode == "sample", clock)
    total = time.perf_counter() - t0
    assert out.shape[1] == ids.shape[1] + new and len(clock.times) == new
    # Prefill ends when the first logits arrive; each later arrival is one decode step.
    prefill_s = clock.times[0] - t0
    decode_s = total - prefill_s
    result[mode] = dict(
        prefill_s=prefill_s,
        total_s=total,
        decode_tokens_per_s=len(prompts) * new / decode_s,
        end_to_end_tokens_per_s=len(prompts) * new / total,
        step_ms=1000 * decode_s / new,
    )
  result["peak_rss_mib"] = _peak_rss_mib()
  return result


def _child_args() -> dict:
  return dict(
      model=FLAGS.model,
      batch=FLAGS.batch,
      prompt_len=FLAGS.prompt_len,
      new_tokens=FLAGS.new_tokens,
      modes=FLAGS.modes,
      breakdown=FLAGS.breakdown,
      threads=FLAGS.threads,
      random_weights=FLAGS.random_weights,
  )


def _run_child(backend: str) -> dict:
  cmd = [sys.executable, os.path.abspath(__file__), f"--child={backend}"] + [
      a for a in sys.argv[1:] if not a.startswith("--child")
  ]
  proc = subprocess.run(cmd, capture_output=True, text=True)
  if proc.returncode:
    sys.stderr.write(proc.stderr[-4000:])
    raise RuntimeError(f"{backend} benchmark failed (exit {proc.returncode})")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _report(results: dict) -> None:
  print(
      f"model {FLAGS.model}, float32, batch {FLAGS.batch}, prompt {FLAGS.prompt_len} "
      f"tokens, {FLAGS.new_tokens} new tokens; load average {os.getloadavg()}"
  )
  for name, r in results.items():
    print(f"\n[{name}] load {r['load_s']:.1f}s, peak RSS {r['peak_rss_mib']:.0f} MiB")
    for mode in FLAGS.modes:
      m = r[mode]
      print(
          f"  {mode:7s} prefill {m['prefill_s']:7.2f}s  decode {m['decode_tokens_per_s']:7.1f}"
          f" tok/s  ({m['step_ms']:.1f} ms/step)  end-to-end "
          f"{m['end_to_end_tokens_per_s']:7.1f} tok/s"
      )
  if "jax" in results and "transformers" in results:
    j, t = results["jax"], results["transformers"]
    print("\nratios JAX / transformers:")
    for mode in FLAGS.modes:
      print(
          f"  {mode:7s} decode {j[mode]['decode_tokens_per_s'] / t[mode]['decode_tokens_per_s']:.2f}x"
          f"  end-to-end {j[mode]['end_to_end_tokens_per_s'] / t[mode]['end_to_end_tokens_per_s']:.2f}x"
          f"  prefill {t[mode]['prefill_s'] / j[mode]['prefill_s']:.2f}x faster"
      )
    print(f"  peak RSS {j['peak_rss_mib'] / t['peak_rss_mib']:.2f}x (whole process)")
    print(
        f"  peak RSS of the sampler runs (before the breakdown) "
        f"{j['peak_rss_sampler_mib'] / t['peak_rss_mib']:.2f}x"
    )
  if "jax" in results:
    phases = results["jax"]["peak_rss_by_phase_mib"]
    print("\nJAX peak RSS by phase (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in phases.items()))
  if "jax" in results and "breakdown" in results["jax"]:
    b = results["jax"]["breakdown"]
    step = results["jax"][FLAGS.modes[0]]["step_ms"]
    ceiling = b["trunk_matmul_ceiling_ms"] + b["lm_head_ms"]
    print(
        f"\nJAX decode step breakdown (ms; matmul-only ceiling = trunk matmuls + LM head "
        f"= {ceiling:.1f} ms, i.e. {1000 * FLAGS.batch / ceiling:.0f} tok/s):"
    )
    for k, v in b.items():
      if isinstance(v, (tuple, list)):
        print(f"  {k:44s} {v[0]:8.2f} .. {v[1]:.2f}")
      elif k.startswith("top_p_over_t1"):
        print(f"  {k:44s} {v:8.2f}x")
      else:
        print(f"  {k:44s} {v:8.1f}")
    for mode in FLAGS.modes:
      s = results["jax"][mode]["step_ms"]
      print(f"  full step ({mode}) {s:8.1f} ms = {s / ceiling:.2f}x the ceiling")
  if "jax" in results and "prefill_ceiling" in results["jax"]:
    c = results["jax"]["prefill_ceiling"]
    print(
        f"\nprefill floor: the trunk's matmuls alone over all prompt tokens "
        f"({c['prefill_trunk_tflop']:.2f} TFLOP) take {c['prefill_matmul_ceiling_s']:.2f} s "
        f"= {c['trunk_gflops_per_s']:.0f} GFLOP/s"
    )
    for name, r in results.items():
      for mode in FLAGS.modes:
        print(
            f"  {name:12s} {mode:7s} prefill = {r[mode]['prefill_s'] / c['prefill_matmul_ceiling_s']:.2f}x the floor"
        )


def main(argv):
  del argv
  if FLAGS.child:
    run = {"jax": run_jax, "transformers": run_transformers}[FLAGS.child]
    print(json.dumps(run(_child_args())))
    return
  results = {}
  for backend in FLAGS.backends:
    results[backend] = _run_child(backend)
  _report(results)
  if FLAGS.json_out:
    with open(FLAGS.json_out, "w") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  app.run(main)
