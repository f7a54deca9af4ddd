"""Evaluate a model on code and math benchmarks; write a JSON report and print a table.

  python experiments/evaluate.py --benchmarks=cruxeval_o,cruxeval_i,gsm8k --limit=100 \
      --output=/tmp/eval.json                       # embedded default model, greedy
  python experiments/evaluate.py --model=path/to/model.gguf --benchmarks=humaneval \
      --n_samples=10 --temperature=0.8              # pass@1/5/10
  python experiments/evaluate.py --check_graders    # references ~100 %, shuffled ~0 %

--model: an embedded model name (gemma3-270m, smollm2-135m), a .gguf file, a self-play
run's checkpoint directory (experiments/azr.py --checkpoint_dir), or a Hugging
Face checkpoint directory. The report layout is documented in
absolute_zero/evaluation/report.py.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absolute_zero.evaluation import data as data_lib  # noqa: E402
from absolute_zero.evaluation import report as report_lib  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "gemma3-270m",
                    "Embedded model name, .gguf file, Hugging Face checkpoint directory, or a "
                    "self-play run's checkpoint directory (latest step).")
flags.DEFINE_string("tokenizer", None, "Tokenizer source if not the model's own.")
flags.DEFINE_list("benchmarks", ["cruxeval_o", "cruxeval_i", "gsm8k"],
                  f"Any of: {', '.join(data_lib.BENCHMARKS)}; 'all' for every one.")
flags.DEFINE_string("data_dir", None, "Benchmark data folder (default $AZR_DATA_DIR, else "
                    "<repo>/../shared/data).")
flags.DEFINE_integer("limit", None, "Evaluate the first N items of each benchmark.")
flags.DEFINE_integer("n_samples", 1, "Samples per item (pass@k for k <= n_samples).")
flags.DEFINE_float("temperature", 0.0, "0 = greedy (default); use > 0 with --n_samples > 1.")
flags.DEFINE_float("top_p", 1.0, "Nucleus sampling threshold.")
flags.DEFINE_list("ks", [], "pass@k values to report (default 1, 5, 10, ... up to n_samples).")
flags.DEFINE_integer("batch_size", 16, "Prompts per generate call.")
flags.DEFINE_integer("max_new_tokens", 512, "Generation budget per sample.")
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_enum("math_grader", "builtin", ["builtin", "math_verify"],
                  "Math sets' grader: builtin, or math_verify (HuggingFace's math-verify, "
                  "pip install 'absolute-zero[math_verify]') to compare with published scores.")
flags.DEFINE_string("output", None, "Write the JSON report here.")
flags.DEFINE_bool("keep_completions", False, "Store raw completion texts in the report.")
flags.DEFINE_integer("sandbox_workers", None, "Sandbox workers (default: CPU cores, min 2).")
flags.DEFINE_float("sandbox_timeout_s", 10.0, "Per-program time limit in the sandbox.")
flags.DEFINE_string("param_dtype", None, "Cast parameters (e.g. float32, bfloat16).")
flags.DEFINE_bool("check_graders", False,
                  "Instead of evaluating a model: grade each benchmark's reference answers "
                  "and a shuffled set, and print the figures (full sets unless --limit).")


def _benchmarks() -> list[str]:
    names = [b.strip() for b in FLAGS.benchmarks if b.strip()]
    if names == ["all"]:
        return list(data_lib.BENCHMARKS)
    unknown = [b for b in names if b not in data_lib.BENCHMARKS]
    if unknown:
        raise app.UsageError(f"unknown benchmarks {unknown}; choose from {', '.join(data_lib.BENCHMARKS)}")
    return names


def _pool(benchmarks):
    from absolute_zero.evaluation.benchmarks import needs_sandbox
    from absolute_zero.sandbox import SandboxLimits, SandboxPool

    if not any(needs_sandbox(b) for b in benchmarks):
        return None
    return SandboxPool(FLAGS.sandbox_workers,
                       SandboxLimits(timeout_s=FLAGS.sandbox_timeout_s, cpu_s=FLAGS.sandbox_timeout_s))


def _check_graders(benchmarks, data_dir) -> None:
    from absolute_zero.evaluation.grader_checks import check_grader

    pool = _pool(benchmarks)
    results = {}
    try:
        print(f"{'benchmark':<14} {'n':>5} {'reference %':>12} {'shuffled %':>11} {'seconds':>8}")
        for name in benchmarks:
            start = time.perf_counter()
            items = data_lib.load_benchmark(name, data_dir, FLAGS.limit)
            result = check_grader(name, pool, items)
            result["seconds"] = time.perf_counter() - start
            results[name] = result
            print(f"{name:<14} {result['n']:>5} {100 * result['reference']:>12.2f} "
                  f"{100 * result['shuffled']:>11.2f} {result['seconds']:>8.1f}", flush=True)
            if result["reference_failures"]:
                print(f"  reference graded wrong: {', '.join(result['reference_failures'][:20])}")
    finally:
        if pool is not None:
            pool.close()
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(results, f, indent=1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    benchmarks = _benchmarks()
    data_dir = FLAGS.data_dir or data_lib.default_data_dir()
    if FLAGS.check_graders:
        _check_graders(benchmarks, data_dir)
        return

    from absolute_zero.evaluation.runner import EvalConfig, run_evaluation
    from absolute_zero.models.loading import load_policy, resolve_model_source
    from absolute_zero.sampler import Sampler

    config = EvalConfig(n_samples=FLAGS.n_samples, temperature=FLAGS.temperature,
                        top_p=FLAGS.top_p, batch_size=FLAGS.batch_size,
                        max_new_tokens=FLAGS.max_new_tokens, seed=FLAGS.seed,
                        ks=tuple(int(k) for k in FLAGS.ks), math_grader=FLAGS.math_grader)
    if config.n_samples > 1 and config.temperature == 0:
        print("warning: --n_samples > 1 with greedy decoding gives identical samples; "
              "set --temperature > 0 for pass@k", file=sys.stderr)
    start = time.perf_counter()
    kind, _ = resolve_model_source(FLAGS.model)
    model_config, params, tokenizer = load_policy(FLAGS.model, FLAGS.tokenizer,
                                                  param_dtype=FLAGS.param_dtype)
    sampler = Sampler(model_config, params, tokenizer)
    load_s = time.perf_counter() - start
    print(f"loaded {FLAGS.model} ({kind}) in {load_s:.1f} s", flush=True)

    pool = _pool(benchmarks)
    try:
        report = run_evaluation(sampler, pool, benchmarks, data_dir, FLAGS.limit, config,
                                model={"source": FLAGS.model, "kind": kind,
                                       "tokenizer": FLAGS.tokenizer or FLAGS.model},
                                keep_completions=FLAGS.keep_completions,
                                log=lambda line: print(line, flush=True))
    finally:
        if pool is not None:
            pool.close()
    report["timing"]["load_s"] = load_s
    print(report_lib.format_table(report))
    if FLAGS.output:
        report_lib.write_report(report, FLAGS.output)
        print(f"report written to {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
