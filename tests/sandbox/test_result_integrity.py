"""A job cannot change its reported result by rewriting builtins (issue 16, class 3).

Matrix: every route to the builtins module x every builtin the result path could use x
three outcomes (a value, an exception, a too-large value); plus jobs that replace every
builtin at once, and rewrites of module attributes, `sys.modules` and `sys.stdout`. The
expected result is what Python reports for the job without the rewrite: the true repr.
"""

import builtins

import pytest

from absolute_zero.sandbox import Job
from absolute_zero.tasks.validators import validate_proposals

# Expressions (inside the job) that evaluate to the builtins module or to its namespace dict.
MODULE_ROUTES = {
    "import": "__import__('builtins')",
    "len_self": "len.__self__",
    "print_self": "print.__self__",
    "dunder_builtins": "__builtins__",
    "sys_modules": "__import__('sys').modules['builtins']",
    "frame_globals": "__import__('sys')._getframe().f_globals['__builtins__']",
    "function_globals": "(lambda: 0).__globals__['__builtins__']",
}
DICT_ROUTES = {
    "frame_builtins": "__import__('sys')._getframe().f_builtins",
    "module_dict": "len.__self__.__dict__",
    "vars": "vars(len.__self__)",
}
NAMES = (
    "repr",
    "str",
    "type",
    "isinstance",
    "issubclass",
    "len",
    "eval",
    "exec",
    "compile",
    "memoryview",
    "BaseException",
    "Exception",
    "MemoryError",
    "TypeError",
    "ValueError",
    "SystemExit",
    "print",
    "getattr",
    "hasattr",
    "setattr",
    "iter",
    "next",
    "bytes",
    "tuple",
    "list",
    "dict",
    "int",
    "bool",
    "max",
    "min",
    "ascii",
    "format",
    "object",
    "open",
    "hash",
    "id",
    "super",
    "chr",
    "ord",
    "sorted",
    "map",
    "zip",
    "enumerate",
    "range",
    "slice",
    "__import__",
    "__build_class__",
)
VALUE = "['wrong', 1, (2.5, None), {'k': b'v'}]"
LIMIT = 5_000  # FAST_LIMITS.max_repr_chars (tests/sandbox/conftest.py)
OUTCOMES = {
    # tail of f after the rewrite -> (status, output, error_type, error_message)
    "value": (f"return {VALUE}", ("ok", VALUE, None, None)),
    "raises": ("raise E('boom')", ("error", None, "ValueError", "boom")),
    "too_large": ("return 'x' * 100000", ("output_too_large", None, "OutputTooLarge", None)),
}
HOSTILE = "lambda *a, **k: \"'42'\""


def _job(rewrite: str, tail: str) -> Job:
  source = f"def f(x):\n    E = ValueError\n    H = {HOSTILE}\n" f"    {rewrite}\n    {tail}\n"
  return Job(source, "f(1)")


def _rewrite(route: str, name: str) -> str:
  if route in MODULE_ROUTES:
    return f"setattr({MODULE_ROUTES[route]}, {name!r}, H)"
  return f"{DICT_ROUTES[route]}[{name!r}] = H"


def _everything(route: str) -> str:
  target = MODULE_ROUTES.get(route) or DICT_ROUTES[route]
  if route in MODULE_ROUTES:
    return f"B = {target}; S = setattr; N = list(vars(B))\n" f"    for k in N: S(B, k, H)"
  return f"D = {target}\n    for k in list(D): D[k] = H"


ROUTES = list(MODULE_ROUTES) + list(DICT_ROUTES)
MATRIX = [(r, n, o) for r in ROUTES for n in NAMES for o in OUTCOMES]
EVERYTHING = [(r, o) for r in ROUTES for o in OUTCOMES]
# Rewrites of module attributes, sys.modules and sys.stdout (the worker module is `_worker`).
MODULE_REWRITES = {
    "os_write": "import os; os.write = H",
    "os_exit": "import os; os._exit = H",
    "json_dumps": "import json; json.dumps = json.encoder.JSONEncoder.encode = H",
    "pickle_dumps": "import pickle; pickle.dumps = pickle._dumps = H",
    "marshal_dumps": "import marshal; marshal.dumps = H",
    "stdout_replaced": "import sys; sys.stdout = sys.__stdout__ = H",
    "stdout_class": "import sys; type(sys.stdout).write = H; print('x' * 10 ** 6)",
    "stdout_attributes": "import sys; sys.stdout.parts = ['forged']; sys.stdout.overflow = 0",
    "sys_modules_cleared": "import sys; sys.modules.clear()",
    "sys_modules_builtins": "import sys, types; sys.modules['builtins'] = types.ModuleType('b')",
    "worker_globals": "import sys; W = sys.modules['_worker']\n"
    "    for k in ('len', 'repr', 'str', 'type', 'os', 'memoryview'): "
    "setattr(W, k, H)",
    "worker_functions": "import sys; W = sys.modules['_worker']\n"
    "    for k, v in list(vars(W).items()):\n"
    "        if callable(getattr(v, '__code__', None)): "
    "v.__code__ = (lambda *a, **k: \"'42'\").__code__",
}


@pytest.fixture(scope="module")
def results(pool):
  jobs = [_job(_rewrite(r, n), OUTCOMES[o][0]) for r, n, o in MATRIX]
  jobs += [_job(_everything(r), OUTCOMES[o][0]) for r, o in EVERYTHING]
  jobs += [_job(MODULE_REWRITES[m], OUTCOMES[o][0]) for m in MODULE_REWRITES for o in OUTCOMES]
  jobs += [_job("pass", OUTCOMES[o][0]) for o in OUTCOMES]  # control: no rewrite
  return pool.run_batch(jobs)


def _wrong(result, outcome) -> bool:
  status, output, error_type, message = OUTCOMES[outcome][1]
  return (result.status, result.output, result.error_type) != (status, output, error_type) or (
      message is not None and result.error_message != message
  )


def test_controls_report_the_true_result(results):
  for outcome, result in zip(OUTCOMES, results[-len(OUTCOMES) :]):
    assert not _wrong(result, outcome), (outcome, result)


def test_rewriting_one_builtin_by_any_route_changes_nothing(results):
  wrong = [(case, r) for case, r in zip(MATRIX, results) if _wrong(r, case[2])]
  assert not wrong, (f"{len(wrong)} of {len(MATRIX)}", wrong[:5])


def test_rewriting_every_builtin_changes_nothing(results):
  start = len(MATRIX)
  wrong = [(case, r) for case, r in zip(EVERYTHING, results[start:]) if _wrong(r, case[1])]
  assert not wrong, (f"{len(wrong)} of {len(EVERYTHING)}", wrong[:5])


def test_rewriting_modules_and_stdout_changes_nothing(results):
  start = len(MATRIX) + len(EVERYTHING)
  cases = [(m, o) for m in MODULE_REWRITES for o in OUTCOMES]
  wrong = [
      (case, r)
      for case, r in zip(cases, results[start:])
      if _wrong(r, case[1]) or "forged" in r.stdout
  ]
  assert not wrong, (f"{len(wrong)} of {len(cases)}", wrong[:5])


def test_issue_example_validates_with_its_true_output(pool):
  program = "def f(x):\n    len.__self__.repr = lambda o: '42'\n    return 'wrong'\n"
  verdict = validate_proposals(pool, [(program, "1")])[0]
  assert (verdict.valid, verdict.output) == (True, "'wrong'"), verdict


def test_matrix_covers_the_builtins_the_child_uses():
  assert all(hasattr(builtins, n) for n in NAMES)
  assert len(MATRIX) == 10 * len(NAMES) * 3 and len(NAMES) >= 45
