"""Literal parsing and value comparison run no code and compare values, not text."""

import math

import pytest

from absolute_zero.sandbox.literals import (
    LiteralError,
    canonical_call,
    literals_equal,
    parse_arguments,
    parse_literal,
    to_source,
)


@pytest.mark.parametrize(
    "text,value",
    [
        ("[1, 2, (3, 'a')]", [1, 2, (3, "a")]),
        ("{'b': 2, 'a': {1, 2}}", {"a": {1, 2}, "b": 2}),
        ("set()", set()),
        ("frozenset({1, 2})", frozenset({1, 2})),
        ("-3.5", -3.5),
        ("1+2j", 1 + 2j),
        ("b'xy'", b"xy"),
        ("(None, True, False)", (None, True, False)),
    ],
)
def test_parse_literal_values(text, value):
  assert parse_literal(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('echo hi')",
        "f(1)",
        "x",
        "[1, 2][0]",
        "lambda: 1",
        "(x := 3)",
        "'a' * 10**9",
        "{**{}}",
        "[1, 2, ...]",
        "{[1]: 2}",
    ],
)
def test_parse_literal_rejects_code(text):
  with pytest.raises(LiteralError):
    parse_literal(text)


def test_parse_literal_rejects_huge_and_deep_inputs():
  with pytest.raises(LiteralError):
    parse_literal("[" + "1, " * 200_000 + "]")
  with pytest.raises(LiteralError):
    parse_literal("[" * 5000 + "]" * 5000)
  with pytest.raises(LiteralError):
    parse_literal("9" * 10_000)  # past Python's int-from-str digit limit


def test_parse_arguments_positional_and_keyword():
  assert parse_arguments("[1, 2], 'ab'") == (([1, 2], "ab"), {})
  assert parse_arguments("(1, ), (1, ), (1, 2)") == (((1,), (1,), (1, 2)), {})
  assert parse_arguments("'x', n=3") == (("x",), {"n": 3})
  assert parse_arguments("") == ((), {})
  for bad in ("1) + (2", "*[1]", "**{'a': 1}", "1); import os; (2"):
    with pytest.raises(LiteralError):
      parse_arguments(bad)


def test_canonical_call_rebuilds_only_literals():
  assert canonical_call("f", "[1, 2],  'ab'") == "f([1, 2], 'ab')"
  assert canonical_call("f", "(1,), n={1}") == "f((1,), n={1})"
  src = canonical_call("f", "[inf, -inf], set(), frozenset()")
  assert src == "f([1e999, -1e999], set(), frozenset(set()))"


@pytest.mark.parametrize(
    "value",
    [
        [1, (2,), {"a": {3}}],
        (),
        (1,),
        set(),
        frozenset({1}),
        math.inf,
        -math.inf,
        1 + 2j,
        b"\x00",
        "quote ' \" \n",
        {(): None},
    ],
)
def test_to_source_round_trips(value):
  assert eval(to_source(value)) == value  # our own plain value, evaluated in the test


def test_literals_equal_is_value_equality():
  assert literals_equal("[1, 2]", "[1,2]")
  assert literals_equal("{1, 2, 3}", "{3, 2, 1}")
  assert literals_equal("{'a': 1, 'b': 2}", "{'b': 2, 'a': 1}")
  assert literals_equal("1", "1.0")  # Python equality, as in the reference
  assert literals_equal("'abc'", '"abc"')
  assert not literals_equal("[1, 2]", "(1, 2)")
  assert not literals_equal("'1'", "1")
  assert not literals_equal("[1, 2]", "__import__('os')")


def test_literals_equal_falls_back_to_text_for_non_literals():
  assert literals_equal("<object>", " <object> ")
  assert not literals_equal("<object>", "<other>")
  assert not literals_equal("nan", "nan")  # nan is a value and nan != nan


# ------------------------------------------------------- CPython's spurious AST SystemError


def _flaky_parse(monkeypatch, failures):
  """ast.parse that first raises CPython 3.11's spurious SystemError `failures` times."""
  from absolute_zero.sandbox import literals

  real, calls = literals._ast_parse, []

  def parse(*args, **kwargs):
    calls.append(args[0])
    if len(calls) <= failures:
      raise SystemError("AST constructor recursion depth mismatch (before=141, after=189)")
    return real(*args, **kwargs)

  monkeypatch.setattr(literals, "_ast_parse", parse)
  return calls


def test_parse_untrusted_retries_the_spurious_system_error_once(monkeypatch):
  from absolute_zero.sandbox.literals import parse_untrusted

  calls = _flaky_parse(monkeypatch, 1)
  assert parse_untrusted("[1, 2]", "eval").body.elts[1].value == 2
  assert len(calls) == 2
  _flaky_parse(monkeypatch, 2)
  with pytest.raises(RecursionError, match="recursion depth mismatch"):
    parse_untrusted("x = 1")


def test_other_system_errors_are_not_hidden(monkeypatch):
  from absolute_zero.sandbox import literals

  def parse(*args, **kwargs):
    raise SystemError("something else")

  monkeypatch.setattr(literals, "_ast_parse", parse)
  with pytest.raises(SystemError, match="something else"):
    literals.parse_untrusted("x = 1")


def test_every_parse_of_model_text_goes_through_it(monkeypatch):
  """The wiring: a program, a literal, an input expression, a grader's syntax check and a
  diversity parse each survive one spurious SystemError in `parse_untrusted`, while a
  direct `ast.parse` call (a site that bypassed it) would meet that error every time."""
  import ast

  from absolute_zero.sandbox import literals
  from absolute_zero.tasks import diversity, grading, parsers, validators

  real = ast.parse

  def spurious(*args, **kwargs):
    raise SystemError("AST constructor recursion depth mismatch (before=141, after=189)")

  def call(fn):
    calls = []

    def flaky(*args, **kwargs):
      calls.append(args[0])
      return spurious() if len(calls) == 1 else real(*args, **kwargs)

    with monkeypatch.context() as m:  # restored before pytest parses anything itself
      m.setattr(ast, "parse", spurious)
      m.setattr(literals, "_ast_parse", flaky)
      try:
        out = fn()
      except SystemError as exc:
        out = exc
    return out, len(calls)

  program = "def f(x):\n    return x"
  got, n = call(
      lambda: parsers.parse_program(program, parsers.ParseConfig(), reject_multiple_functions=True)
  )
  assert got == program and n == 2, got
  assert call(lambda: parse_literal("[1, 2]")) == ([1, 2], 2)
  assert call(lambda: validators.check_input_expression("1, 2")) == (None, 2)
  assert call(lambda: grading._parses(program)) == (True, 2)
  got, n = call(lambda: diversity._parse(program))
  assert isinstance(got, ast.Module) and n == 2
