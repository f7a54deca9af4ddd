"""A small mutation run: plant single-line bugs in the core modules, run their fast tests.

    python -m experiments.mutation_run --out=mutation.jsonl              # this checkout
    python -m experiments.mutation_run --source=REF --out=before.jsonl   # a git ref's tree
    python -m experiments.mutation_run --planted --out=planted.jsonl     # the PLANTED bugs
    python -m experiments.mutation_run --list                            # the mutants only

For every module in `TARGETS` the run enumerates single-line mutations of the functions
named there (operators below), picks `count` of them with a fixed seed, and for each one
writes the mutated module into a temporary copy of the tree and runs that module's test
files (`pytest -x`, `nice -n 19`, with a timeout). A mutant is killed when a test fails
(or the run times out), survived when every test passes. The unmutated tree is tested
first; a module whose tests fail there is reported and skipped. Test files the tree lacks
are left out, so `--source=main` scores the tests as they were on main. Results go to
`--out` as one JSON line per mutant (module, line, before, after, status, the first
failing test) and a summary by module to stderr.

Operators (each changes one AST node that fits on one line; input-validation branches,
`if ...: raise`, are left alone): comparison flipped (< <=, > >=, == !=, is / is not,
in / not in), arithmetic + - and * / swapped, `and` / `or` swapped, `not` dropped, an
integer constant + 1, True / False swapped, one keyword argument of a call dropped (the
callee's default then applies), two adjacent positional arguments that are plain variables swapped (not of min / max),
a slice bound + 1. Chosen over mutmut (tried: it serves for plain-Python modules, 125 mutants of
rewards.py in 2 minutes, but it forks a JAX process per mutant, which JAX warns can
deadlock, it mutates every string and number including messages, so the core modules
give thousands of mutants, and its per-test stats pass runs the whole selected suite
under tracing first): here the mutants are few, realistic and reproducible.
"""

from __future__ import annotations

import ast
import builtins
import copy
import dataclasses
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Iterator

from absl import flags

from experiments import cli

FLAGS = flags.FLAGS
PROG = "mutation_run"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string(
    "source",
    None,
    "Git ref whose tree is mutated and tested (e.g. main); "
    "default: this checkout's files as they are.",
)
flags.DEFINE_string("out", None, "JSON-lines results file (one line per mutant).")
flags.DEFINE_bool(
    "planted", False, "Run the hand-written PLANTED bugs instead of the " "generated mutants."
)
flags.DEFINE_bool("list", False, "Print the chosen mutants and exit (runs nothing).")
flags.DEFINE_list(
    "modules", [], "Only these TARGETS modules (paths as in the table); " "default: all."
)
flags.DEFINE_integer("seed", 0, "Seed of the mutant choice.")
flags.DEFINE_float("scale", 1.0, "Multiplies every module's mutant count.")
flags.DEFINE_integer(
    "timeout", 900, "Seconds per test run of one mutant (a run past it " "counts as killed)."
)
flags.DEFINE_integer("limit", 0, "Stop after this many mutants (0: all), for a quick try.")
flags.DEFINE_string(
    "rerun",
    None,
    "Results file of an earlier run: rerun only its "
    "survivors (with --add_tests, e.g. to try slower test files on them).",
)
flags.DEFINE_list("add_tests", [], "Test files added to every mutant's own.")


@dataclasses.dataclass(frozen=True)
class Target:
  path: str  # module file, relative to the repository root
  functions: tuple[str, ...]  # functions / methods (qualified 'Class.method') to mutate
  tests: tuple[str, ...]  # its fast test files (missing ones are skipped)
  count: int  # mutants to draw


_SELFPLAY_TESTS = (
    "tests/selfplay/test_open_answer.py",
    "tests/selfplay/test_loop_wiring.py",
    "tests/selfplay/test_diversity_step.py",
    "tests/tasks/test_seed_data.py",
)
TARGETS: tuple[Target, ...] = (
    Target(
        "absolute_zero/loss.py",
        (
            "group_reward_stats",
            "task_relative_advantages",
            "clipped_surrogate_loss",
            "kl_per_token",
        ),
        ("tests/test_loss.py",),
        8,
    ),
    Target(
        "absolute_zero/batching.py",
        ("build_train_batch", "completion_indices"),
        ("tests/test_batching.py",),
        6,
    ),
    Target(
        "absolute_zero/tasks/rewards.py",
        (
            "solver_reward",
            "induction_score",
            "solve_rate",
            "learnability_reward",
            "apply_format_rule",
            "final_solver_reward",
            "intrinsic_bonus",
            "final_proposer_reward",
        ),
        (
            "tests/tasks/test_rewards.py",
            "tests/tasks/test_grader_negatives.py",
            "tests/selfplay/test_diversity_step.py",
        ),
        8,
    ),
    Target(
        "absolute_zero/tasks/parsers.py",
        (
            "extract_answer",
            "scan_fences",
            "parse_program",
            "parse_triplet_proposal",
            "parse_induction_proposal",
            "_parse_literal_answer",
            "parse_induction_answer",
        ),
        ("tests/tasks/test_parsers.py",),
        6,
    ),
    Target(
        "absolute_zero/tasks/grading.py",
        (
            "grade_deduction",
            "grade_abduction",
            "grade_induction",
            "grade_deduction_answers",
            "grade_abduction_answers",
            "grade_induction_answers",
            "grade_answers",
            "solve_rates",
            "_failed",
            "_graded",
        ),
        (
            "tests/sandbox/test_azr.py",
            "tests/tasks/test_validators_sandbox.py",
            "tests/tasks/test_grader_negatives.py",
            "tests/evaluation/test_grader_negatives.py",
        ),
        10,
    ),
    Target(
        "absolute_zero/tasks/validators.py",
        ("_judge_two_runs",),
        ("tests/sandbox/test_azr.py", "tests/tasks/test_validators_sandbox.py"),
        1,
    ),
    Target(
        "absolute_zero/tasks/buffers.py",
        (
            "TaskBuffer.add",
            "TaskBuffer.count_since",
            "TaskBuffer.sample_references",
            "TaskBuffer.sample_solver_tasks",
            "TaskBuffers.sample_induction_programs",
        ),
        ("tests/tasks/test_buffers.py", "tests/selfplay/test_loop_wiring.py"),
        6,
    ),
    Target(
        "absolute_zero/selfplay/run.py",
        (
            "group_id",
            "SelfPlayRun.rows_per_step",
            "SelfPlayRun.rows_per_role",
            "SelfPlayRun._randomness",
            "SelfPlayRun.run_step",
            "SelfPlayRun._update",
            "SelfPlayRun.restore",
            "_group_metrics",
        ),
        _SELFPLAY_TESTS,
        10,
    ),
    Target(
        "absolute_zero/selfplay/phases.py",
        ("_generate", "_response_text", "_rollout", "propose", "solve", "score_proposals"),
        _SELFPLAY_TESTS,
        10,
    ),
    Target("absolute_zero/sampler.py", ("Sampler.generate",), ("tests/test_sampler.py",), 5),
)


@dataclasses.dataclass(frozen=True)
class Planted:
  """A hand-written bug: `old` (one exact line fragment, unique in the file) -> `new`."""

  name: str
  path: str
  old: str
  new: str
  tests: tuple[str, ...]


PLANTED: tuple[Planted, ...] = (
    Planted(
        "one group id for every rollout",
        "absolute_zero/selfplay/run.py",
        "groups = np.asarray([group_id(r.task_type, r.role) for r in rollouts], np.int32)",
        "groups = np.zeros(len(rollouts), np.int32)",
        _SELFPLAY_TESTS,
    ),
    Planted(
        "group_id ignores the role",
        "absolute_zero/selfplay/run.py",
        "return GROUPS.index((task_type, role))",
        "return GROUPS.index((task_type, Role.PROPOSE))",
        _SELFPLAY_TESTS,
    ),
    Planted(
        "proposer priced with another task's samples",
        "absolute_zero/selfplay/phases.py",
        "estimates[k * n:(k + 1) * n]",
        "estimates[k:k + n]",
        _SELFPLAY_TESTS,
    ),
    Planted(
        "abduction: f raising counts as returning None",
        "absolute_zero/tasks/grading.py",
        'r.status == "ok" and r.output is not None and literals_equal(expected, r.output)',
        "literals_equal(expected, str(r.output))",
        (
            "tests/sandbox/test_azr.py",
            "tests/tasks/test_validators_sandbox.py",
            "tests/tasks/test_grader_negatives.py",
            "tests/evaluation/test_grader_negatives.py",
        ),
    ),
)


# ------------------------------------------------------------------ mutants


@dataclasses.dataclass(frozen=True)
class Mutant:
  path: str
  function: str
  line: int  # 1-based
  operator: str
  before: str  # the whole source line
  after: str
  tests: tuple[str, ...]

  @property
  def key(self) -> str:
    return f"{self.path}:{self.line}:{self.operator}:{self.after.strip()}"


_CMP_FLIP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_BIN_FLIP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}


def _variants(node: ast.AST) -> Iterator[tuple[str, ast.AST]]:
  """(operator name, mutated copy) for every mutation of this one node."""
  if isinstance(node, ast.Compare):
    for i, op in enumerate(node.ops):
      if type(op) in _CMP_FLIP:
        new = copy.deepcopy(node)
        new.ops[i] = _CMP_FLIP[type(op)]()
        yield "compare", new
  elif isinstance(node, ast.BinOp) and type(node.op) in _BIN_FLIP:
    new = copy.deepcopy(node)
    new.op = _BIN_FLIP[type(node.op)]()
    yield "arithmetic", new
  elif isinstance(node, ast.BoolOp):
    new = copy.deepcopy(node)
    new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    yield "boolean", new
  elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
    yield "drop-not", copy.deepcopy(node.operand)
  elif isinstance(node, ast.Constant) and type(node.value) is bool:
    yield "bool-constant", ast.Constant(not node.value)
  elif isinstance(node, ast.Constant) and type(node.value) is int:
    yield "int-constant", ast.Constant(node.value + 1)
  elif isinstance(node, ast.Call):
    for i in range(len(node.keywords)):
      if node.keywords[i].arg is not None:
        new = copy.deepcopy(node)
        del new.keywords[i]
        yield "drop-keyword", new
    commutative = isinstance(node.func, ast.Name) and node.func.id in ("min", "max")
    for i in range(len(node.args) - 1):
      a, b = node.args[i], node.args[i + 1]
      # Two plain variables (likely the same kind of value, as in f(task_type, role));
      # swapping a type, a constant or an expression mostly just crashes.
      if (
          not commutative
          and all(
              isinstance(x, ast.Name)
              and x.id.islower()
              and x.id != "self"
              and not hasattr(builtins, x.id)
              for x in (a, b)
          )
          and a.id != b.id
      ):
        new = copy.deepcopy(node)
        new.args[i], new.args[i + 1] = new.args[i + 1], new.args[i]
        yield "swap-args", new
  elif isinstance(node, ast.Slice):
    for bound in ("lower", "upper"):
      value = getattr(node, bound)
      if value is not None:
        new = copy.deepcopy(node)
        setattr(new, bound, ast.BinOp(copy.deepcopy(value), ast.Add(), ast.Constant(1)))
        yield f"slice-{bound}", new


def _functions(tree: ast.Module, names: tuple[str, ...]) -> Iterator[tuple[str, ast.AST]]:
  for node in tree.body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
      yield node.name, node
    elif isinstance(node, ast.ClassDef):
      for item in node.body:
        qualified = f"{node.name}.{item.name}" if hasattr(item, "name") else ""
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and qualified in names:
          yield qualified, item


def _validation_lines(function: ast.AST) -> set[int]:
  """Lines of `if <check>: raise ...` branches (input validation, not the computation)."""
  lines = set()
  for node in ast.walk(function):
    if isinstance(node, ast.If) and node.body and all(isinstance(s, ast.Raise) for s in node.body):
      lines.update(range(node.lineno, node.end_lineno + 1))
    if isinstance(node, ast.Raise):
      lines.update(range(node.lineno, node.end_lineno + 1))
  return lines


def _skipped_nodes(function: ast.AST) -> set[int]:
  """ids of nodes not to mutate: docstrings, f-string parts, annotations, defaults."""
  skip = set()
  for node in ast.walk(function):
    if isinstance(node, ast.JoinedStr):
      skip.update(id(n) for n in ast.walk(node))
    if isinstance(node, ast.arguments):
      skip.update(id(n) for n in ast.walk(node))
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns:
      skip.update(id(n) for n in ast.walk(node.returns))
    if isinstance(node, ast.AnnAssign):
      skip.update(id(n) for n in ast.walk(node.annotation))
  return skip


def _splice(line: str, start: int, end: int, text: str) -> str:
  """Replaces UTF-8 byte columns [start, end) of `line` (AST offsets are in bytes)."""
  raw = line.encode("utf-8")
  return (raw[:start] + text.encode("utf-8") + raw[end:]).decode("utf-8")


def _unparse(node: ast.AST) -> str:
  text = ast.unparse(node)
  if isinstance(node, (ast.Compare, ast.BinOp, ast.BoolOp, ast.UnaryOp)):
    return f"({text})"
  if isinstance(node, ast.Slice):
    return text
  return text


def enumerate_mutants(root: str, target: Target) -> list[Mutant]:
  """Every single-line mutant of `target`'s functions in the tree at `root`."""
  with open(os.path.join(root, target.path), encoding="utf-8") as f:
    source = f.read()
  lines = source.splitlines(keepends=True)
  tree = ast.parse(source)
  original = ast.dump(tree)
  out = []
  for name, function in _functions(tree, target.functions):
    skip = _validation_lines(function)
    skipped_nodes = _skipped_nodes(function)
    body = (
        function.body[1:]
        if (
            function.body
            and isinstance(function.body[0], ast.Expr)
            and isinstance(function.body[0].value, ast.Constant)
        )
        else function.body
    )
    for stmt in body:
      for node in ast.walk(stmt):
        if id(node) in skipped_nodes or not hasattr(node, "lineno"):
          continue
        if node.lineno != node.end_lineno or node.lineno in skip:
          continue
        for operator, new in _variants(node):
          line = lines[node.lineno - 1]
          after = _splice(line, node.col_offset, node.end_col_offset, _unparse(new))
          mutated = "".join(lines[: node.lineno - 1] + [after] + lines[node.lineno :])
          try:
            if ast.dump(ast.parse(mutated)) == original:
              continue
          except SyntaxError:
            continue
          out.append(
              Mutant(
                  target.path,
                  name,
                  node.lineno,
                  operator,
                  line.rstrip("\n"),
                  after.rstrip("\n"),
                  target.tests,
              )
          )
  unique = {m.key: m for m in out}
  return list(unique.values())


def choose(mutants: list[Mutant], count: int, seed: int) -> list[Mutant]:
  """`count` mutants spread over lines: a seeded shuffle, at most one per line first."""
  rng = random.Random(seed)
  pool = sorted(mutants, key=lambda m: m.key)
  rng.shuffle(pool)
  chosen, lines = [], set()
  for m in pool:
    if len(chosen) < count and m.line not in lines:
      chosen.append(m)
      lines.add(m.line)
  for m in pool:
    if len(chosen) < count and m not in chosen:
      chosen.append(m)
  return sorted(chosen, key=lambda m: (m.path, m.line))


def planted_mutants(root: str) -> list[Mutant]:
  out = []
  for p in PLANTED:
    with open(os.path.join(root, p.path), encoding="utf-8") as f:
      lines = f.read().splitlines()
    hits = [i for i, line in enumerate(lines) if p.old in line]
    if len(hits) != 1:
      raise cli.InputError(
          f"planted bug {p.name!r}: {len(hits)} lines of {p.path} hold "
          f"{p.old!r} (need exactly 1)"
      )
    i = hits[0]
    out.append(
        Mutant(p.path, p.name, i + 1, "planted", lines[i], lines[i].replace(p.old, p.new), p.tests)
    )
  return out


# ------------------------------------------------------------------ running


def _copy_tree(dest: str) -> None:
  """The tree to mutate: a git ref's files, or this checkout's tracked + untracked files."""
  if FLAGS.source:
    archive = subprocess.run(
        ["git", "-C", REPO, "archive", FLAGS.source], capture_output=True, check=False
    )
    if archive.returncode:
      raise cli.InputError(f"--source={FLAGS.source}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", dest], input=archive.stdout, check=True)
    return
  files = subprocess.run(
      ["git", "-C", REPO, "ls-files", "-co", "--exclude-standard"],
      capture_output=True,
      text=True,
      check=True,
  ).stdout.splitlines()
  for rel in files:
    src = os.path.join(REPO, rel)
    if os.path.isfile(src):
      os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
      shutil.copy2(src, os.path.join(dest, rel))


def _describe_source() -> str:
  """The commit the mutated tree comes from (and whether local changes were copied)."""
  ref = FLAGS.source or "HEAD"
  commit = subprocess.run(
      ["git", "-C", REPO, "rev-parse", "--short", ref], capture_output=True, text=True, check=False
  ).stdout.strip()
  if FLAGS.source:
    return f"{FLAGS.source} = {commit}"
  dirty = subprocess.run(
      ["git", "-C", REPO, "status", "--porcelain"], capture_output=True, text=True, check=False
  ).stdout.strip()
  return f"checkout at {commit}" + (" with local changes" if dirty else "")


def _pytest(root: str, tests: list[str], timeout: int) -> tuple[str, str, float]:
  """(status, first failing test or '', seconds): status 'passed', 'failed', 'timeout'."""
  env = dict(os.environ, PYTHONPATH=root, PYTHONDONTWRITEBYTECODE="1")
  cmd = [
      "nice",
      "-n",
      "19",
      sys.executable,
      "-m",
      "pytest",
      "-x",
      "-q",
      "-p",
      "no:cacheprovider",
      "-m",
      "not slow",
      *tests,
  ]
  start = time.perf_counter()
  try:
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    return "timeout", "", time.perf_counter() - start
  seconds = time.perf_counter() - start
  failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, re.M)
  if proc.returncode == 0:
    return "passed", "", seconds
  return "failed", failed[0] if failed else f"exit {proc.returncode}", seconds


def run_mutants(root: str, mutants: list[Mutant], out) -> list[dict]:
  results, baseline = [], {}
  for k, m in enumerate(mutants):
    tests = [t for t in m.tests if os.path.exists(os.path.join(root, t))]
    if not tests:
      record = dict(dataclasses.asdict(m), status="no tests", test="", seconds=0.0)
    else:
      key = tuple(tests)
      if key not in baseline:  # the unmutated tree must pass these tests
        baseline[key] = _pytest(root, tests, FLAGS.timeout)
        print(
            f"[clean] {' '.join(tests)}: {baseline[key][0]} ({baseline[key][2]:.0f}s)",
            file=sys.stderr,
            flush=True,
        )
      if baseline[key][0] != "passed":
        record = dict(
            dataclasses.asdict(m), status="clean run fails", test=baseline[key][1], seconds=0.0
        )
      else:
        path = os.path.join(root, m.path)
        with open(path, encoding="utf-8") as f:
          original = f.read()
        lines = original.splitlines(keepends=True)
        if lines[m.line - 1].rstrip("\n") != m.before:  # e.g. --rerun on another tree
          record = dict(dataclasses.asdict(m), status="stale (line differs)", test="", seconds=0.0)
        else:
          ending = "\n" if lines[m.line - 1].endswith("\n") else ""
          lines[m.line - 1] = m.after + ending
          try:
            with open(path, "w", encoding="utf-8") as f:
              f.write("".join(lines))
            status, test, seconds = _pytest(root, tests, FLAGS.timeout)
          finally:
            with open(path, "w", encoding="utf-8") as f:
              f.write(original)
          status = {"passed": "survived", "failed": "killed", "timeout": "killed (timeout)"}[status]
          record = dict(dataclasses.asdict(m), status=status, test=test, seconds=seconds)
    record["tests"] = tests
    record["tree"] = _describe_source()
    results.append(record)
    out.write(json.dumps(record) + "\n")
    out.flush()
    print(
        f"[{k + 1}/{len(mutants)}] {record['status']:>16} {m.path}:{m.line} "
        f"{m.operator}: {m.after.strip()}  {record['test']}",
        file=sys.stderr,
        flush=True,
    )
  return results


def summary(results: list[dict]) -> str:
  rows = {}
  for r in results:
    row = rows.setdefault(r["path"], [0, 0, 0])
    if r["status"].startswith("killed"):
      row[0] += 1
    elif r["status"] == "survived":
      row[1] += 1
    else:
      row[2] += 1
  lines = [f"{'module':40} killed survived skipped"]
  for path, (k, s, x) in rows.items():
    lines.append(f"{path:40} {k:6} {s:8} {x:7}")
  k, s = sum(r[0] for r in rows.values()), sum(r[1] for r in rows.values())
  lines.append(f"{'total':40} {k:6} {s:8}   score {k}/{k + s} = {k / max(k + s, 1):.0%}")
  return "\n".join(lines)


def main(argv):
  del argv
  cli.at_least("timeout", 1)
  cli.at_least("limit", 0)
  cli.check(FLAGS.scale > 0, f"--scale={FLAGS.scale} must be > 0")
  known = {t.path for t in TARGETS}
  unknown = [m for m in FLAGS.modules if m not in known]
  cli.check(not unknown, f"--modules: unknown {unknown}; choose from {sorted(known)}")
  cli.check(FLAGS.list or bool(FLAGS.out), "--out is required (the results file)")
  with tempfile.TemporaryDirectory(prefix="mutation_run_") as root:
    _copy_tree(root)
    print(f"tree: {_describe_source()}", file=sys.stderr, flush=True)
    if FLAGS.rerun:
      path = cli.resolve(FLAGS.rerun, "--rerun", must_exist=True, kind="file")
      with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
      fields = {f.name for f in dataclasses.fields(Mutant)} - {"tests"}
      tests = {t.path: t.tests for t in TARGETS}  # today's test lists, not the run's
      mutants = [
          Mutant(
              **{k: v for k, v in r.items() if k in fields},
              tests=tests.get(r["path"], tuple(r["tests"])),
          )
          for r in records
          if r["status"] == "survived"
      ]
    elif FLAGS.planted:
      mutants = planted_mutants(root)
    else:
      mutants = []
      for target in TARGETS:
        if FLAGS.modules and target.path not in FLAGS.modules:
          continue
        count = max(1, round(target.count * FLAGS.scale))
        mutants += choose(enumerate_mutants(root, target), count, FLAGS.seed)
    if FLAGS.add_tests:
      mutants = [
          dataclasses.replace(m, tests=tuple(dict.fromkeys(m.tests + tuple(FLAGS.add_tests))))
          for m in mutants
      ]
    if FLAGS.limit:
      mutants = mutants[: FLAGS.limit]
    if FLAGS.list:
      for m in mutants:
        print(
            f"{m.path}:{m.line} [{m.function}] {m.operator}\n  - {m.before.strip()}\n"
            f"  + {m.after.strip()}"
        )
      return
    out_path = cli.resolve(FLAGS.out, "--out")
    cli.ensure_writable_file(out_path, "--out")
    with open(out_path, "w", encoding="utf-8") as out:
      results = run_mutants(root, mutants, out)
  print(summary(results), file=sys.stderr)


if __name__ == "__main__":
  cli.run(main, PROG)
