"""Answer equivalence on hand-made pairs, and the sanitiser in front of SymPy."""

import pytest

from absolute_zero.evaluation.math_equivalence import (
    answers_equivalent_batch,
    any_reference_matches,
    latex_to_expression,
    numbers_equal,
    numeric_value,
    sympy_equal_batch,
)
from fractions import Fraction

EQUAL = [
    ("1/2", r"\frac12"),
    ("0.5", r"\dfrac{1}{2}"),
    ("-0.75", r"-\frac{3}{4}"),
    ("50%", "0.5"),
    ("1,000", "1000"),
    ("27", "27.0"),
    (r"2\sqrt{5}", r"\sqrt{20}"),
    (r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
    ("(x-1)(x+1)", "x^2-1"),
    ("x^5 - x^4 + x^3 - x^2 + x - 1", "x^5-x^4+x^3-x^2+x-1"),
    (r"75^\circ", "75"),
    ("1+2i", "2i+1"),
    (r"\text{(C)}", "C"),
    ("x = 5", "5"),
    (r"(-\infty, 2) \cup (3, \infty)", r"(-\infty,2)\cup(3,\infty)"),
    ("2, 3", "3, 2"),  # a bare list of answers in any order
    (r"64,\frac{1}{4}", r"\frac{1}{4},64"),
    ("3.21e13", r"3.21\times 10^{13}"),
    (r"\pi/2", r"\frac{\pi}{2}"),
]
DIFFERENT = [
    ("3", "4"),
    ("(2,3)", "(3,2)"),  # a tuple is ordered
    ("[1,2]", "(1,2)"),  # closed vs open interval
    ("x^2+1", "x^2-1"),
    (r"\frac{1}{3}", "0.34"),
    ("2,3", "2,3,4"),
    ("A", "B"),
    ("", "1"),
]


def test_equal_pairs():
  verdicts = answers_equivalent_batch(EQUAL)
  assert [p for p, v in zip(EQUAL, verdicts) if not v] == []


def test_different_pairs():
  verdicts = answers_equivalent_batch(DIFFERENT)
  assert [p for p, v in zip(DIFFERENT, verdicts) if v] == []


def test_none_prediction_is_wrong():
  assert answers_equivalent_batch([(None, "1")]) == [False]


def test_any_reference_matches():
  assert any_reference_matches([("7", ["6", "7"]), ("8", ["6", "7"])]) == [True, False]


def test_numeric_value_exact():
  assert numeric_value(r"\frac{3}{4}") == Fraction(3, 4)
  assert numeric_value("12%") == Fraction(12)
  assert numeric_value("x") is None
  assert numbers_equal("0.12", "12%") is True
  assert numbers_equal("x", "1") is None


@pytest.mark.parametrize(
    "hostile",
    [
        "__import__('os').system('true')",
        "().__class__.__bases__",
        "lambda: 1",
        "open('/etc/passwd')",
        "x.real",
        r"\frac{a}{b}; import os",
        "9" * 500,
    ],
)
def test_sanitiser_rejects_anything_outside_the_grammar(hostile):
  assert latex_to_expression(hostile) is None


def test_sanitiser_output_uses_only_grammar_tokens():
  assert latex_to_expression(r"2\sqrt{x}") == "2 * sqrt ( x )"
  assert latex_to_expression(r"\frac{\pi}{2}") == "( ( pi ) / ( 2 ) )"
  assert latex_to_expression("3xy") == "3 * x * y"


def test_sympy_child_rechecks_the_grammar():
  # Strings that never went through the sanitiser are refused by the child itself.
  assert sympy_equal_batch([("__import__('os')", "1"), ("1 + 1", "2")]) == [False, True]


def test_sympy_child_survives_a_huge_power():
  # 10**10**10 is computed in C (the alarm cannot stop it): the memory cap ends it.
  assert (
      sympy_equal_batch([("10 ** 10 ** 12", "1"), ("2 * x", "x + x")], item_timeout_s=2.0)[1]
      is True
  )
