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

import json
import os
import resource
import signal
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absolute_zero.sandbox import SandboxPool, execute, grade_deduction, validate_proposals  # noqa: E402

_DEFAULT_DATA = os.environ.get(
    "AZR_DATA_DIR",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data"))

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", _DEFAULT_DATA, "Directory holding cruxeval/cruxeval.jsonl.")
flags.DEFINE_integer("num_jobs", 2000, "Jobs per measurement (the 800 programs repeated).")
flags.DEFINE_integer("num_workers", None, "Sandbox workers (default: CPU cores, at least 2).")
flags.DEFINE_integer("repeats", 1, "Measurements per mode; the best rate is reported.")
flags.DEFINE_bool("reference", True, "Also measure the reference-style executor.")
flags.DEFINE_float("timeout_s", 10.0, "Per-call timeout of the reference executor.")


# ----------------------------------------------------------------------------- reference

def _reference_run(snippet: str, timeout_s: float):
    """Inside the reference worker: exec the program, eval its last line, with an alarm."""
    def on_alarm(signum, frame):
        raise TimeoutError("timeout")
    lines = snippet.split("\n")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        namespace: dict = {}
        exec("\n".join(lines[:-1]), namespace)
        result = eval(lines[-1], namespace)
        str(result)
        return result, "Done"
    except BaseException as exc:  # noqa: BLE001 - the reference reports any failure as text
        return "", f"{type(exc).__name__}: {exc}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class ReferenceExecutor:
    """One persistent pebble worker, a per-call timeout; no isolation."""

    def __init__(self, timeout_s: float = 10.0):
        from pebble import ProcessPool
        self.timeout_s = timeout_s
        self.pool = ProcessPool(max_workers=1)

    def apply(self, snippets: list[str]) -> list[tuple[str, str]]:
        from concurrent.futures import TimeoutError as FutureTimeout
        future = self.pool.map(_reference_run, snippets, [self.timeout_s] * len(snippets),
                               timeout=self.timeout_s)
        out, it = [], future.result()
        while True:
            try:
                out.append(next(it))
            except StopIteration:
                return out
            except FutureTimeout:
                out.append(("", "Timeout Error"))
            except Exception as exc:  # noqa: BLE001
                out.append(("", f"Error: {exc}"))

    def run(self, items) -> list[tuple[str, str]]:
        return self.apply([f"{code}\nrepr(f({inp}))" for code, inp in items])

    def validate(self, items) -> list[tuple[str, str]]:
        return self.apply([f"{code}\nreturns = f({inp})\nif returns != f({inp}):\n"
                           f"    raise Exception('Non-deterministic code')\nrepr(returns)"
                           for code, inp in items])

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
    best, out = 0.0, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = max(best, n / (time.perf_counter() - start))
    return best, out


def main(argv):
    del argv
    items = _load(FLAGS.data_dir, FLAGS.num_jobs)
    pairs = [(it["code"], it["input"]) for it in items]
    n = len(pairs)
    print(f"{n} jobs from CRUXEval, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at start (the machine may be shared)")
    rates, cpu_ms = {}, {}

    def sandbox(mode):
        cpu0 = _cpu_seconds()
        with SandboxPool(FLAGS.num_workers) as pool:
            execute(pool, pairs[:50])  # warm-up
            if mode == "plain":
                rate, results = _rate(lambda: execute(pool, pairs), n, FLAGS.repeats)
                good = sum(r.status == "ok" and grade_deduction(it["output"], r.output)
                           for it, r in zip(items, results))
            else:
                rate, verdicts = _rate(
                    lambda: validate_proposals(pool, pairs, allow_expressions=True), n, FLAGS.repeats)
                good = sum(v.valid for v in verdicts)
            workers, namespaced = pool.num_workers, pool.namespaced
        # closing reaps the workers, so their (and their jobs') CPU time is now counted
        cpu_ms[mode] = (_cpu_seconds() - cpu0) * 1e3 / (n * FLAGS.repeats + 50)
        rates[mode] = rate
        print(f"sandbox {mode:11s} {rate:8.1f} jobs/s  {cpu_ms[mode]:5.2f} CPU ms/job  "
              f"{'correct' if mode == 'plain' else 'valid'} {good}/{n}  "
              f"({workers} workers, namespaced={namespaced})")

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
                    good = sum(status == "Done" and grade_deduction(it["output"], out)
                               for it, (out, status) in zip(items, results))
                else:
                    good = sum(status == "Done" for _, status in results)
            finally:
                ref.close()
            key = "ref_" + mode
            cpu_ms[key] = (_cpu_seconds() - cpu0) * 1e3 / (n * FLAGS.repeats + 50)
            rates[key] = rate
            print(f"reference {mode:9s} {rate:8.1f} jobs/s  {cpu_ms[key]:5.2f} CPU ms/job  "
                  f"{'correct' if mode == 'plain' else 'valid'} {good}/{n}")
        for mode in ("plain", "validation"):
            print(f"ratio {mode:10s} (sandbox / reference): rate "
                  f"{rates[mode] / rates['ref_' + mode]:.2f}, CPU per job "
                  f"{cpu_ms[mode] / cpu_ms['ref_' + mode]:.2f}x")
    cores = len(os.sched_getaffinity(0))
    for mode in ("plain", "validation"):
        print(f"CPU-bound sandbox {mode} rate on {cores} idle cores: "
              f"{cores * 1e3 / cpu_ms[mode]:.0f} jobs/s (total CPU per job / cores)")
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    app.run(main)
