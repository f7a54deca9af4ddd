"""Sandbox throughput on the CRUXEval programs, beside a reference-style executor.

Each of the 800 CRUXEval programs runs on its published input and is checked against its
published output, repeated to --num_jobs jobs, in two modes:
  plain       one run per job (execute + deduction check),
  validation  proposal validation (static check + two runs in different interpreters).
The reference executor is built the way the original Absolute Zero code does it: one
persistent worker process (a `pebble` process pool of size 1, the reference default), each
program `exec`'d inside that worker with a per-call timeout, validation = `f` called twice
in the same process. It isolates nothing; it is the speed yardstick.

  python experiments/bench_sandbox.py --num_jobs=2000 --num_workers=2
"""

from __future__ import annotations

import ast
import functools
import json
import os
import pickle
import re
import resource
import signal
import sys
import time
import traceback

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absolute_zero.sandbox import SandboxPool  # noqa: E402
from absolute_zero.tasks.grading import grade_deduction  # noqa: E402
from absolute_zero.tasks.validators import REFERENCE_BANNED, execute, validate_proposals  # noqa: E402
from absolute_zero.evaluation.data import default_data_dir  # noqa: E402

_DEFAULT_DATA = default_data_dir()  # $AZR_DATA_DIR, else the packaged benchmark data

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", _DEFAULT_DATA, "Directory holding cruxeval/cruxeval.jsonl.")
flags.DEFINE_integer("num_jobs", 2000, "Jobs per measurement (the 800 programs repeated).")
flags.DEFINE_integer("num_workers", None, "Sandbox workers (default: CPU cores, at least 2).")
flags.DEFINE_integer("repeats", 1, "Measurements per mode; the best rate is reported.")
flags.DEFINE_bool("reference", True, "Also measure the reference-style executor.")
flags.DEFINE_float("timeout_s", 10.0, "Per-call timeout of the reference executor.")


# ----------------------------------------------------------------------------- reference
# A re-implementation of how the original Absolute Zero code executes programs (its
# `PythonExecutor`, "qwq" executor, trainer defaults: one pebble worker, ast_check on,
# 10 s timeout). What it does per job, and what we therefore do here:
#   * the caller validates/runs one program at a time: `apply(snippet)` is
#     `batch_apply([snippet])`, i.e. a `pool.map` over a single item whose function is a
#     `partial` carrying the runtime object (pickled with every call);
#   * in the worker, the runtime refuses code that calls `input(`, then the body is
#     `exec`'d and the last line `eval`'d, each under a signal-based timeout decorator;
#   * the result must survive `str()` and `pickle.dumps()`; failures become the last line
#     of the traceback; the parent strips and truncates both strings to 400 characters;
#   * plain mode is `run_code` (`repr(f(inputs))`), validation is `check_all` (AST scan
#     for banned imports, then `f` called twice in the same process and compared).

_INPUT_CALL = re.compile(r"(\s|^)?input\(")
_BANNED_FOR_BENCH = REFERENCE_BANNED  # the reference trainer config's banned_words


def _with_timeout(seconds: float, fn):
  """A signal-based per-call timeout, as the `timeout_decorator` package does it."""

  def wrapped(*args):
    def on_alarm(signum, frame):
      raise TimeoutError("Timed Out")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
      return fn(*args)
    finally:
      signal.setitimer(signal.ITIMER_REAL, 0)
      signal.signal(signal.SIGALRM, old)

  return wrapped


class _ReferenceRuntime:
  """The reference's `GenericRuntime`: one globals dict, exec/eval into it."""

  def __init__(self):
    self.global_vars: dict = {}

  def exec_code(self, code: str) -> None:
    if _INPUT_CALL.search(code):
      raise RuntimeError()
    exec(code, self.global_vars)

  def eval_code(self, expr: str):
    return eval(expr, self.global_vars)


def _reference_execute(lines: list[str], runtime: _ReferenceRuntime, timeout_s: float):
  """Inside the reference worker (auto mode, no print on the last line)."""
  try:
    _with_timeout(timeout_s, runtime.exec_code)("\n".join(lines[:-1]))
    result = _with_timeout(timeout_s, runtime.eval_code)(lines[-1])
    report = "Done"
    str(result)
    pickle.dumps(result)
  except BaseException:  # noqa: BLE001 - the reference reports any failure as text
    result = ""
    report = traceback.format_exc().split("\n")[-2]
  return result, report


def _reference_truncate(s: str, max_length: int = 400) -> str:
  half = max_length // 2
  return s[:half] + "..." + s[-half:] if len(s) > max_length else s


def _reference_banned_imports(code: str) -> bool:
  try:
    tree = ast.parse(code)
  except SyntaxError:
    return any(re.search(rf"\b{re.escape(b)}\b", code) for b in _BANNED_FOR_BENCH)
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      if any(b in a.name.split(".") for a in node.names for b in _BANNED_FOR_BENCH):
        return True
    elif isinstance(node, ast.ImportFrom):
      module = node.module.split(".") if node.module else []
      if any(b in module for b in _BANNED_FOR_BENCH):
        return True
      if any(b in a.name.split(".") for a in node.names for b in _BANNED_FOR_BENCH):
        return True
  return False


class ReferenceExecutor:
  """One persistent pebble worker, one synchronous round trip per job; no isolation."""

  def __init__(self, timeout_s: float = 10.0):
    from pebble import ProcessPool

    self.timeout_s = timeout_s
    self.runtime = _ReferenceRuntime()
    self.pool = ProcessPool(max_workers=1)

  def apply(self, snippet: str) -> tuple[str, str]:
    from concurrent.futures import TimeoutError as FutureTimeout

    lines = [snippet.strip().split("\n")]
    run = functools.partial(_reference_execute, runtime=self.runtime, timeout_s=self.timeout_s)
    results = []
    try:
      it = self.pool.map(run, lines, timeout=self.timeout_s).result()
      while True:
        try:
          results.append(next(it))
        except StopIteration:
          break
        except FutureTimeout:
          results.append(("", "Timeout Error"))
        except Exception as exc:  # noqa: BLE001
          results.append(("", f"Error: {exc}"))
    except Exception as exc:  # noqa: BLE001
      results.append(("", f"Critical Error: {exc}"))
    res, report = results[0]
    return _reference_truncate(str(res).strip()), _reference_truncate(str(report).strip())

  def _checked_apply(self, snippet: str) -> tuple[str, str]:
    """The reference's `ast_check`: a snippet that does not parse is an error, unrun."""
    try:
      ast.parse(snippet)
    except SyntaxError:
      return "", "error"
    return self.apply(snippet)

  def run(self, items) -> list[tuple[str, str]]:
    return [self._checked_apply(f"{code}\nrepr(f({inp}))") for code, inp in items]

  def validate(self, items) -> list[tuple[str, str]]:
    out = []
    for code, inp in items:
      if _reference_banned_imports(code):
        out.append(("", "banned"))
        continue
      out.append(
          self._checked_apply(
              f"{code}\nreturns = f({inp})\nif returns != f({inp}):\n"
              f"    raise Exception('Non-deterministic code')\nrepr(returns)"
          )
      )
    return out

  def close(self):
    self.pool.close()
    self.pool.join()


# ----------------------------------------------------------------------------- measuring


def _load(data_dir: str, n: int):
  path = os.path.join(data_dir, "cruxeval", "cruxeval.jsonl")
  with open(path) as f:
    items = [json.loads(line) for line in f]
  return [items[i % len(items)] for i in range(n)]


def _cpu_seconds() -> float:
  """CPU time of this process and of all its reaped descendants (workers, jobs)."""
  own = resource.getrusage(resource.RUSAGE_SELF)
  kids = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _rate(fn, n: int, repeats: int) -> tuple[float, object]:
  """Best jobs/s over `repeats` passes (each pass's rate is printed)."""
  rates, out = [], None
  for _ in range(repeats):
    start = time.perf_counter()
    out = fn()
    rates.append(n / (time.perf_counter() - start))
  if repeats > 1:
    print("  passes: " + ", ".join(f"{r:.0f}" for r in rates) + " jobs/s")
  return max(rates), out


def main(argv):
  del argv
  items = _load(FLAGS.data_dir, FLAGS.num_jobs)
  pairs = [(it["code"], it["input"]) for it in items]
  n = len(pairs)
  print(
      f"{n} jobs from CRUXEval, {os.cpu_count()} CPUs, load average "
      f"{os.getloadavg()[0]:.1f} at start (the machine may be shared)"
  )
  rates, cpu_ms = {}, {}

  def sandbox(mode):
    cpu0 = _cpu_seconds()
    with SandboxPool(FLAGS.num_workers) as pool:
      execute(pool, pairs[:50])  # warm-up
      if mode == "plain":
        rate, results = _rate(lambda: execute(pool, pairs), n, FLAGS.repeats)
        good = sum(
            r.status == "ok" and grade_deduction(it["output"], r.output)
            for it, r in zip(items, results)
        )
      else:
        rate, verdicts = _rate(
            lambda: validate_proposals(pool, pairs, allow_expressions=True), n, FLAGS.repeats
        )
        good = sum(v.valid for v in verdicts)
      workers, namespaced = pool.num_workers, pool.namespaced
    # closing reaps the workers, so their (and their jobs') CPU time is now counted
    cpu_ms[mode] = (_cpu_seconds() - cpu0) * 1e3 / (n * FLAGS.repeats + 50)
    rates[mode] = rate
    print(
        f"sandbox {mode:11s} {rate:8.1f} jobs/s  {cpu_ms[mode]:5.2f} CPU ms/job  "
        f"{'correct' if mode == 'plain' else 'valid'} {good}/{n}  "
        f"({workers} workers, namespaced={namespaced})"
    )

  sandbox("plain")
  sandbox("validation")
  if FLAGS.reference:
    for mode in ("plain", "validation"):
      cpu0 = _cpu_seconds()
      ref = ReferenceExecutor(FLAGS.timeout_s)
      try:
        run = ref.run if mode == "plain" else ref.validate
        run(pairs[:50])
        rate, results = _rate(lambda: run(pairs), n, FLAGS.repeats)
        if mode == "plain":
          good = sum(
              status == "Done" and grade_deduction(it["output"], out)
              for it, (out, status) in zip(items, results)
          )
        else:
          good = sum(status == "Done" for _, status in results)
      finally:
        ref.close()
      key = "ref_" + mode
      cpu_ms[key] = (_cpu_seconds() - cpu0) * 1e3 / (n * FLAGS.repeats + 50)
      rates[key] = rate
      print(
          f"reference {mode:9s} {rate:8.1f} jobs/s  {cpu_ms[key]:5.2f} CPU ms/job  "
          f"{'correct' if mode == 'plain' else 'valid'} {good}/{n}"
      )
    for mode in ("plain", "validation"):
      print(
          f"ratio {mode:10s} (sandbox / reference): rate "
          f"{rates[mode] / rates['ref_' + mode]:.2f}, CPU per job "
          f"{cpu_ms[mode] / cpu_ms['ref_' + mode]:.2f}x"
      )
  cores = len(os.sched_getaffinity(0))
  for mode in ("plain", "validation"):
    print(
        f"CPU-bound sandbox {mode} rate on {cores} idle cores: "
        f"{cores * 1e3 / cpu_ms[mode]:.0f} jobs/s (total CPU per job / cores)"
    )
  print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
  app.run(main)
