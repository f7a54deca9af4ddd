"""Evaluate a model on code and math benchmarks; write a JSON report and print a table.

  python -m experiments.evaluate --benchmarks=cruxeval_o,cruxeval_i,gsm8k --limit=100 \
      --output=eval.json                            # embedded default model, greedy
  python -m experiments.evaluate --model=runs/azr-default   # a self-play run's latest step
  python -m experiments.evaluate --model=path/to/model.gguf --benchmarks=humaneval \
      --n_samples=10 --temperature=0.8              # pass@1/5/10
  python -m experiments.evaluate --check_graders    # references ~100 %, shuffled ~0 %

--model: an embedded model name (gemma3-270m, smollm2-135m), a .gguf file, a Hugging Face
checkpoint directory, or a self-play run: either its run directory (experiments/azr.py
--log_dir, which holds checkpoints/) or the checkpoint directory itself (--checkpoint_dir);
the latest complete step is evaluated. Paths are relative to the working directory, with
`~` expanded; symbolic links are followed but reported as given. The benchmark data ships
with the package (absolute_zero/evaluation/benchmark_data); --data_dir or $AZR_DATA_DIR
override it. Bad input (a missing or unusable model, a bad flag value, an unknown
benchmark, an unwritable --output) is one line on stderr and exit status 2, reported before
the model loads wherever the input allows. The report layout is documented in
absolute_zero/evaluation/report.py.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import flags
from absl import logging as absl_logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absolute_zero import paths  # noqa: E402
from absolute_zero.evaluation import data as data_lib  # noqa: E402
from absolute_zero.evaluation import report as report_lib  # noqa: E402
from experiments import cli  # noqa: E402

PROG = "evaluate"

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "model",
    "gemma3-270m",
    "Embedded model name, .gguf file, Hugging Face checkpoint directory, or a "
    "self-play run (its --log_dir or its checkpoint directory; latest step).",
)
flags.DEFINE_string(
    "tokenizer",
    None,
    "Tokenizer source if not the model's own (.gguf, "
    "tokenizer.json, tokenizer.model, a directory, or an embedded name).",
)
flags.DEFINE_list(
    "benchmarks",
    ["cruxeval_o", "cruxeval_i", "gsm8k"],
    f"Any of: {', '.join(data_lib.BENCHMARKS)}; 'all' for every one.",
)
flags.DEFINE_string(
    "data_dir",
    None,
    "Benchmark data folder (default $AZR_DATA_DIR, else "
    "the data shipped in absolute_zero/evaluation/benchmark_data).",
)
flags.DEFINE_integer("limit", None, "Evaluate the first N items of each benchmark.")
flags.DEFINE_integer("n_samples", 1, "Samples per item (pass@k for k <= n_samples).")
flags.DEFINE_float("temperature", 0.0, "0 = greedy (default); use > 0 with --n_samples > 1.")
flags.DEFINE_float("top_p", 1.0, "Nucleus sampling threshold.")
flags.DEFINE_list("ks", [], "pass@k values to report (default 1, 5, 10, ... up to n_samples).")
flags.DEFINE_integer("batch_size", 16, "Prompts per generate call.")
flags.DEFINE_integer("max_new_tokens", 512, "Generation budget per sample.")
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_enum(
    "math_grader",
    "builtin",
    ["builtin", "math_verify"],
    "Math sets' grader: builtin, or math_verify (HuggingFace's math-verify, "
    "pip install 'absolute-zero[math_verify]') to compare with published scores.",
)
flags.DEFINE_string("output", None, "Write the JSON report to this file.")
flags.DEFINE_bool("keep_completions", False, "Store raw completion texts in the report.")
flags.DEFINE_integer("sandbox_workers", None, "Sandbox workers (default: CPU cores, min 2).")
flags.DEFINE_float("sandbox_timeout_s", 10.0, "Per-program time limit in the sandbox.")
flags.DEFINE_string("param_dtype", None, "Cast parameters (e.g. float32, bfloat16).")
flags.DEFINE_string(
    "mesh",
    "1,1,-1",
    "Device mesh data,fsdp,tensor (as experiments/azr.py); "
    "product = device count, -1 takes the rest.",
)
flags.DEFINE_enum(
    "dtype",
    "float32",
    ["float32", "bfloat16"],
    "Activation dtype " "(bfloat16 on GPU/TPU; float32 on CPU), as experiments/azr.py.",
)
flags.DEFINE_string(
    "compilation_cache",
    None,
    "JAX persistent compilation cache directory "
    "(as experiments/azr.py; default $JAX_COMPILATION_CACHE_DIR, else "
    "~/.cache/absolute_zero/jax; '' (empty): off).",
)
flags.DEFINE_bool(
    "check_graders",
    False,
    "Instead of evaluating a model: grade each benchmark's reference answers "
    "and a shuffled set, and print the figures (full sets unless --limit).",
)


def _benchmarks() -> list[str]:
  from absolute_zero.evaluation.runner import parse_benchmarks

  try:
    return parse_benchmarks(FLAGS.benchmarks)
  except ValueError as e:
    raise cli.InputError(f"--benchmarks: {e}") from None


def _check_numbers() -> tuple[int, ...]:
  """Every numeric flag in range (InputError naming the flag); the parsed --ks."""
  cli.at_least("n_samples", 1, hint="it is the number of samples per item")
  cli.at_least("limit", 1, hint="omit --limit to evaluate every item")
  cli.at_least("batch_size", 1)
  cli.at_least("max_new_tokens", 1)
  cli.at_least("temperature", 0, hint="0 is greedy decoding")
  cli.positive("top_p")
  cli.check(FLAGS.top_p <= 1, f"--top_p={FLAGS.top_p} must be <= 1")
  cli.positive("sandbox_timeout_s")
  cli.at_least("sandbox_workers", 1, hint="omit it for one worker per CPU core")
  if FLAGS.param_dtype is not None:
    cli.one_of("param_dtype", [FLAGS.param_dtype], ("float32", "bfloat16"))
  ks = []
  for k in FLAGS.ks:
    try:
      ks.append(int(k))
    except ValueError:
      raise cli.InputError(f"--ks: {k!r} is not an integer") from None
  bad = [k for k in ks if not 1 <= k <= FLAGS.n_samples]
  cli.check(not bad, f"--ks: pass@k needs 1 <= k <= --n_samples={FLAGS.n_samples}; got {bad}")
  return tuple(ks)


def _local(flag: str, path: str | None) -> str | None:
  cli.check(
      path is None or not paths.is_remote(path),
      f"--{flag}={path}: evaluation reads and writes local files only; copy it to a " "local path",
  )
  return path


def _output_path() -> str | None:
  """--output as an absolute path whose directory exists (created) and is writable."""
  out = _local("output", cli.path_flag("output", kind="file"))
  if out is not None:
    cli.ensure_writable_file(out, "--output", FLAGS.output)
  return out


def _data_dir(benchmarks) -> str:
  """The data folder, with every asked benchmark's file checked before the model loads."""
  data_dir = _local("data_dir", cli.path_flag("data_dir", must_exist=True, kind="dir"))
  from absolute_zero.evaluation.runner import check_benchmark_data

  try:
    return check_benchmark_data(benchmarks, data_dir)
  except (data_lib.DataNotFoundError, ValueError) as e:
    raise cli.InputError(e) from None


def _model_source() -> tuple[str, str]:
  """(kind, source) of --model, every problem found before loading (InputError)."""
  from absolute_zero.checkpointing import CheckpointError
  from absolute_zero.embedded_models import EMBEDDED_MODELS
  from absolute_zero.policy_loading import ModelSourceError, resolve_model_source
  from absolute_zero.models.presets import PRESETS

  value = FLAGS.model
  if value not in EMBEDDED_MODELS and value not in PRESETS:
    _local("model", cli.resolve(value, "--model"))  # refuses gs:// and empty values
  try:  # resolves the path as cli.resolve does: ~, relative to the working directory
    kind, where = resolve_model_source(value)
  except (FileNotFoundError, ModelSourceError, CheckpointError) as e:
    raise cli.InputError(f"--model={value}: {e}") from None
  cli.check(
      kind != "preset",
      f"--model={value} is a preset without weights; give an "
      "embedded model, a .gguf file, a checkpoint directory or a run directory",
  )
  if kind == "run":
    _check_run_checkpoint(value, where)
  return kind, where


def _check_run_checkpoint(value: str, directory: str) -> None:
  """The run's latest step has a readable saved config and tokenizer source."""
  from absolute_zero.checkpointing import CheckpointError
  from absolute_zero.policy_loading import load_run_checkpoint

  try:
    with cli.quiet_logs():
      _, _, tokenizer_source = load_run_checkpoint(directory, params_too=False)
  except (FileNotFoundError, ValueError, CheckpointError) as e:
    raise cli.InputError(f"--model={value}: {e}") from None
  if FLAGS.tokenizer is None:
    from absolute_zero.embedded_models import EMBEDDED_MODELS

    cli.check(
        bool(tokenizer_source),
        f"--model={value}: the checkpoint does not record "
        "its model source (for the tokenizer); pass --tokenizer",
    )
    cli.check(
        tokenizer_source in EMBEDDED_MODELS or os.path.exists(tokenizer_source),
        f"--model={value}: the run's tokenizer source {tokenizer_source} (its "
        "--model) no longer exists; pass --tokenizer",
    )


def _pool(benchmarks):
  from absolute_zero.evaluation.benchmarks import needs_sandbox
  from absolute_zero.sandbox import SandboxLimits, SandboxPool

  if not any(needs_sandbox(b) for b in benchmarks):
    return None
  return SandboxPool(
      FLAGS.sandbox_workers,
      SandboxLimits(timeout_s=FLAGS.sandbox_timeout_s, cpu_s=FLAGS.sandbox_timeout_s),
  )


def _check_graders(benchmarks, data_dir, output) -> None:
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
      print(
          f"{name:<14} {result['n']:>5} {100 * result['reference']:>12.2f} "
          f"{100 * result['shuffled']:>11.2f} {result['seconds']:>8.1f}",
          flush=True,
      )
      if result["reference_failures"]:
        print(f"  reference graded wrong: {', '.join(result['reference_failures'][:20])}")
  finally:
    if pool is not None:
      pool.close()
  if output:
    with open(output, "w") as f:
      json.dump(results, f, indent=1)


def _load(source: str, tokenizer_source: str | None):
  """(model config, params, tokenizer); a checkpoint whose files turn out unreadable, or a
  tokenizer that does not fit, is bad input (InputError)."""
  from absolute_zero.checkpointing import CheckpointError
  from absolute_zero.policy_loading import load_policy

  try:
    with cli.quiet_logs():
      return load_policy(source, tokenizer_source, param_dtype=FLAGS.param_dtype, dtype=FLAGS.dtype)
  except (FileNotFoundError, ValueError, CheckpointError) as e:  # import errors are ValueErrors
    raise cli.InputError(f"--model={FLAGS.model}: {e}") from None


def main(argv):
  del argv  # cli.run refuses positional arguments
  if not FLAGS["verbosity"].present:  # Orbax logs every restore at INFO
    absl_logging.set_verbosity(absl_logging.WARNING)
  benchmarks = _benchmarks()
  ks = _check_numbers()
  output = _output_path()
  data_dir = _data_dir(benchmarks)
  if FLAGS.check_graders:
    _check_graders(benchmarks, data_dir, output)
    return

  cli.use_compilation_cache(FLAGS.compilation_cache)
  from absolute_zero.evaluation.runner import EvalConfig, run_evaluation
  from absolute_zero.embedded_models import EMBEDDED_MODELS
  from absolute_zero.sampler import Sampler

  try:
    config = EvalConfig(
        n_samples=FLAGS.n_samples,
        temperature=FLAGS.temperature,
        top_p=FLAGS.top_p,
        batch_size=FLAGS.batch_size,
        max_new_tokens=FLAGS.max_new_tokens,
        seed=FLAGS.seed,
        ks=ks,
        math_grader=FLAGS.math_grader,
    )
  except ValueError as e:
    raise cli.InputError(e) from None
  if FLAGS.math_grader == "math_verify":
    import importlib.util

    cli.check(
        importlib.util.find_spec("math_verify") is not None,
        "--math_grader=math_verify needs the math-verify package: pip install -e "
        '".[math_verify]"',
    )
  tokenizer_source = None
  if FLAGS.tokenizer is not None:
    tokenizer_source = (
        FLAGS.tokenizer
        if FLAGS.tokenizer in EMBEDDED_MODELS
        else _local("tokenizer", cli.path_flag("tokenizer", must_exist=True))
    )
  kind, source = _model_source()
  mesh = _mesh()
  if config.n_samples > 1 and config.temperature == 0:
    print(
        "warning: --n_samples > 1 with greedy decoding gives identical samples; "
        "set --temperature > 0 for pass@k",
        file=sys.stderr,
    )
  start = time.perf_counter()
  model_config, params, tokenizer = _load(source, tokenizer_source)
  sampler = Sampler(model_config, params, tokenizer, mesh=mesh)
  load_s = time.perf_counter() - start
  print(f"loaded {source} ({kind}) in {load_s:.1f} s", flush=True)

  pool = _pool(benchmarks)
  try:
    report = run_evaluation(
        sampler,
        pool,
        benchmarks,
        data_dir,
        FLAGS.limit,
        config,
        model={"source": source, "kind": kind, "tokenizer": tokenizer_source or source},
        keep_completions=FLAGS.keep_completions,
        log=lambda line: print(line, flush=True),
    )
  finally:
    if pool is not None:
      pool.close()
  report["timing"]["load_s"] = load_s
  print(report_lib.format_table(report))
  if output:
    report_lib.write_report(report, output)
    print(f"report written to {output}")


def _mesh():
  """The --mesh over this host's devices (InputError if it does not fit them)."""
  from absolute_zero import sharding

  try:
    return sharding.make_mesh(FLAGS.mesh)
  except ValueError as e:
    raise cli.InputError(f"--mesh={FLAGS.mesh}: {e}") from None


if __name__ == "__main__":
  cli.run(main, PROG)
