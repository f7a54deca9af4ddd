"""Absolute Zero operations: static check, execution, validation, the three graders."""

import pytest

from absolute_zero.tasks.grading import grade_abduction, grade_deduction, grade_induction
from absolute_zero.tasks.validators import (
    BANNED_MODULES,
    BANNED_NAMES,
    check_input_expression,
    check_program,
    execute,
    validate_proposals,
)


def test_reference_banned_list():
  assert set(BANNED_MODULES) | set(BANNED_NAMES) == {
      "logging",
      "random",
      "multiprocessing",
      "pebble",
      "subprocess",
      "threading",
      "datetime",
      "time",
      "hashlib",
      "hmac",
      "bcrypt",
      "os.sys",
      "os.path",
      "sys.exit",
      "os.environ",
      "calendar",
  }


@pytest.mark.parametrize(
    "source,banned",
    [
        ("import random\ndef f(x):\n    return x\n", "random"),
        ("from random import choice\ndef f(x):\n    return x\n", "random"),
        ("import os.path\ndef f(x):\n    return x\n", "os.path"),
        ("from os import path\ndef f(x):\n    return x\n", "os.path"),
        ("from os.path import join\ndef f(x):\n    return x\n", "os.path"),
        ("import os\ndef f(x):\n    return os.path.join(x, x)\n", "os.path"),
        ("import os as o\ndef f(x):\n    return o.environ\n", "os.environ"),
        ("import sys\ndef f(x):\n    sys.exit(1)\n", "sys.exit"),
        ("from sys import exit as leave\ndef f(x):\n    leave()\n", "sys.exit"),
        ("import datetime.date\ndef f(x):\n    return x\n", "datetime"),
        ("import time as t\ndef f(x):\n    return x\n", "time"),
    ],
)
def test_banned_modules_and_names_on_full_dotted_names(source, banned):
  assert check_program(source) == f"banned: {banned}"


@pytest.mark.parametrize(
    "source",
    [
        "import os\ndef f(x):\n    return os.sep + x\n",
        "import collections\nfrom itertools import permutations\ndef f(x):\n    return x\n",
        "import timeit_like_name_is_fine\ndef f(x):\n    return x\n",
        "def f(x):\n    def helper(y):\n        return y\n    return helper(x)\n",
        "class Node:\n    pass\ndef f(x):\n    return x\n",
        "def f(x):\n    path = 'os.path'\n    return path\n",
    ],
)
def test_allowed_programs(source):
  assert check_program(source) is None


@pytest.mark.parametrize(
    "source,reason",
    [
        ("def g(x):\n    return x\n", "no top-level function f"),
        ("def f(x):\n    return x\ndef g(x):\n    return x\n", "more than one top-level function"),
        ("def f(x):\n    return x\n" + "# pad\n" * 2000, "program longer than 8096 characters"),
        ("def f(x:\n    return x\n", "syntax error"),
        ("import random\ndef f(x:\n", "banned: random"),  # text fallback when it does not parse
    ],
)
def test_structure_checks(source, reason):
  assert check_program(source).startswith(reason)


def test_execute_runs_f_on_inputs(pool):
  prog = "def f(a, b):\n    return sorted(a) + [b]\n"
  results = execute(
      pool,
      [(prog, "[3, 1], 'x'"), (prog, "[2], b=5"), (prog, "[1]"), (prog, "[1], __import__('os')")],
  )
  assert [r.output for r in results[:2]] == ["[1, 3, 'x']", "[2, 5]"]
  assert (results[2].status, results[2].error_type) == ("error", "TypeError")
  assert (results[3].status, results[3].error_type) == ("error", "InputError")


def test_validate_proposals(pool):
  good = "def f(s):\n    return s[::-1]\n"
  verdicts = validate_proposals(
      pool,
      [
          (good, "'abc'"),
          ("import random\ndef f(s):\n    return s\n", "'a'"),
          ("def f(s):\n    return s[5]\n", "'abc'"),
          ("def f(s):\n    while True:\n        pass\n", "'a'"),
          ("def f(s):\n    return s * 10000\n", "'abc'"),
          (good, "len('abc')"),
      ],
  )
  assert verdicts[0].valid and verdicts[0].output == "'cba'" and verdicts[0].reason == ""
  assert [v.status for v in verdicts[1:]] == [
      "banned",
      "error",
      "timeout",
      "output_too_large",
      "error",
  ]
  assert not any(v.valid for v in verdicts[1:])
  assert validate_proposals(pool, [(good, "len('abc') and 'x'")], allow_expressions=True)[0].valid


def test_grade_deduction_is_value_equality():
  assert grade_deduction("[1, 2]", "[1,2]")
  assert grade_deduction("{'a': 1, 'b': 2}", "{'b': 2, 'a': 1}")
  assert not grade_deduction("[1, 2]", "[2, 1]")
  assert not grade_deduction("'1'", "1")
  assert not grade_deduction("[1]", "__import__('os').system('true') or [1]")


def test_grade_abduction_accepts_any_input_with_the_output(pool):
  prog = "def f(x):\n    return x % 3\n"
  got = grade_abduction(
      pool,
      [
          (prog, "4", "1"),
          (prog, "7", "1"),
          (prog, "5", "1"),
          (prog, "'a'", "1"),
          (prog, "1 + 3", "1"),
      ],
  )
  assert got == [True, True, False, False, False]
  assert grade_abduction(pool, [(prog, "1 + 3", "1")], allow_expressions=True) == [True]


def test_grade_induction(pool):
  pairs = [("2", "4"), ("'ab'", "'abab'"), ("[1]", "[1, 1]")]
  got = grade_induction(
      pool,
      [
          ("def f(x):\n    return x * 2\n", pairs),
          ("def f(x):\n    return x + x\n", pairs),
          ("def f(x):\n    return x * 2 if x != 2 else 5\n", pairs),
          ("def f(x:\n", pairs),
          ("def f(x):\n    return x * 2\n", []),
      ],
  )
  assert got == [True, True, False, False, False]


def test_input_expression_check():
  assert check_input_expression("lambda x: x + 1, [1, 2]") is None
  assert check_input_expression("(f := 1)").startswith("banned")
  assert check_input_expression("__import__('os')").startswith("banned")
  assert check_input_expression("type('X', (), {})()").startswith("banned")
  assert check_input_expression("().__class__.__base__").startswith("banned")
