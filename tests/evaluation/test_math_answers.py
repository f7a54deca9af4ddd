"""Final-answer extraction and normalisation on hand-written solutions."""

import pytest

from absolute_zero.evaluation.math_answers import (
    extract_answer,
    find_boxed,
    gsm8k_reference,
    last_number,
    normalize_answer,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so the area is $\boxed{12}$.", "12"),
        (r"first \boxed{1} then \boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt{3}}{2}"),
        (r"\boxed{\left\{ 1, 2 \right\}}", r"\left\{ 1, 2 \right\}"),
        (r"answer $\boxed 5$", "5"),
        (r"\fbox{x^{2}}", "x^{2}"),
        (r"\boxed{7} and a broken \boxed{8", "7"),  # the unclosed last box is skipped
    ],
)
def test_find_boxed_nested_braces(text, expected):
  assert find_boxed(text) == expected


def test_find_boxed_none():
  assert find_boxed("no box here") is None
  assert find_boxed(r"\boxed{unclosed") is None


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"Thus... \boxed{42}. The final answer is 41.", "42"),  # a box wins over text
        ("So the final answer is $\\frac{1}{2}$. I hope it is correct.", r"\frac{1}{2}"),
        ("The final answer is: 18 dollars\nmore text", "18 dollars"),
        ("She pays 3 * 4 = 12.\n#### 12", "12"),
        ("We get 1,234 apples and then 5,678.", "5,678"),
        ("It costs -3.5 or 7/8", "7/8"),
        ("nothing numeric", None),
        ("", None),
    ],
)
def test_extract_answer_order(text, expected):
  assert extract_answer(text) == expected


def test_last_number_ignores_words_with_digits():
  assert last_number("x2 is 5 and y3") == "5"


def test_gsm8k_reference():
  assert gsm8k_reference("3 + 4 = <<3+4=7>>7\n#### 7") == "7"
  with pytest.raises(ValueError):
    gsm8k_reference("no marker")


@pytest.mark.parametrize(
    "raw, expected",
    [
        (r"$\dfrac{3}{4}$", r"\frac{3}{4}"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
        (r"75^\circ", "75"),
        (r"10\%", "10%"),
        ("1,000,000", "1000000"),
        ("(1,234)", "(1,234)"),  # a tuple keeps its comma
        (r"12 \text{ cm}^2", "12"),
        (r"\text{(C)}", "C"),
        ("x = 5", "5"),
        ("27.0", "27"),
        ("4080 angstrom", "4080"),
        (r"\sqrt{2}\,", r"\sqrt{2}"),
        (None, ""),
    ],
)
def test_normalize_answer(raw, expected):
  assert normalize_answer(raw) == expected
