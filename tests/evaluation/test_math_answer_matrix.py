"""Generated matrices for math-answer extraction and equivalence (issue 16, class 5).

Every expected value is written by hand (or is integer arithmetic on hand-picked
numbers): Unicode symbols x their position in the answer x where the answer sits in a
completion; boxed forms x text before and after; mixed numbers x signs x spellings x
reference forms, and the products that are not mixed numbers.
"""

import itertools
from fractions import Fraction

import pytest

from absolute_zero.evaluation.math_answers import (
    extract_answer,
    find_boxed,
    normalize_answer,
    normalize_unicode,
)
from absolute_zero.evaluation.math_equivalence import answers_equivalent_batch

# --------------------------------------------------------------------------- unicode symbols

MINUS_SIGNS = {
    "U+2212": "\u2212",
    "U+2012": "\u2012",
    "U+FE63": "\ufe63",
    "U+FF0D": "\uff0d",
    "U+2013": "\u2013",
}
# (answer with {m} for the minus sign, right reference, wrong reference, position)
MINUS_SLOTS = [
    ("{m}3", "-3", "3", "leading"),
    ("{m}12", "-12", "12", "leading"),
    ("{m}0.25", r"-\frac{1}{4}", "0.25", "leading"),
    ("7 {m} 3", "4", "10", "infix"),
    ("x{m}1", "x-1", "x+1", "infix"),
    ("10^{{m}2}", "0.01", "100", "exponent"),
    (r"\frac{{m}1}{2}", "-0.5", "0.5", "numerator"),
    ("(1, {m}2)", "(1,-2)", "(1,2)", "trailing"),
]
# Other symbols: (name, answer, right reference, wrong reference, position).
SYMBOL_SLOTS = [
    ("times", "2\u00d73", "6", "23", "infix"),
    ("times", "3\u00d710^{2}", "300", "310", "infix"),
    ("div", "6\u00f74", r"\frac{3}{2}", r"\frac{2}{3}", "infix"),
    ("middle dot", "2\u00b73", "6", "2.3", "infix"),
    ("dot operator", "x\u22c5y", "xy", "x+y", "infix"),
    ("bullet operator", "4\u22193", "12", "43", "infix"),
    ("sqrt", "\u221a2", r"\sqrt{2}", "2", "leading"),
    ("sqrt", "3\u221a2", r"\sqrt{18}", r"\sqrt{6}", "infix"),
    ("sqrt", "\u221a(8)", r"2\sqrt{2}", "8", "leading"),
    ("sqrt", "\u221a(x+1)", r"\sqrt{x+1}", r"\sqrt{x}+1", "leading"),
    ("sqrt", "1+\u221a3", r"1+\sqrt{3}", r"1+3", "trailing"),
    ("cube root", "\u221b8", "2", "8", "leading"),
    ("fourth root", "\u221c16", "2", "4", "leading"),
    ("pi", "\u03c0", r"\pi", "3.14", "alone"),
    ("pi", "\u03c0/2", r"\frac{\pi}{2}", r"\frac{1}{2}", "leading"),
    ("pi", "2\u03c0", r"2\pi", "2", "trailing"),
    ("pi", "\u03c0r^2", r"\pi r^2", "r^2", "leading"),
    ("infinity", "\u221e", r"\infty", "0", "alone"),
    ("infinity", "(\u2212\u221e, 2)", r"(-\infty,2)", r"(-\infty,2]", "leading"),
    ("infinity", "[3, \u221e)", r"[3,\infty)", r"[3,4)", "trailing"),
    ("le", "x \u2264 3", r"x \leq 3", r"x \geq 3", "infix"),
    ("le (slanted)", "x\u2a7d3", r"x \le 3", r"x \ge 3", "infix"),
    ("ge", "x\u22653", r"x \geq 3", r"x \leq 3", "infix"),
    ("ne", "x \u2260 2", r"x \neq 2", r"x \leq 2", "infix"),
    ("degree", "45\u00b0", "45", "46", "trailing"),
    ("degree", "30 \u00b0", r"30^\circ", "31", "trailing"),
    ("superscript", "x\u00b2", "x^2", "2x", "trailing"),
    ("superscript", "x\u00b2+1", "x^2+1", "x^2-1", "infix"),
    ("superscript", "2\u00b3", "8", "6", "trailing"),
    ("superscript", "10\u207b\u00b3", "0.001", "1000", "trailing"),
    ("superscript", "(x+1)\u00b2", "x^2+2x+1", "x^2+1", "trailing"),
    ("subscript", "a\u2081", "a_1", "a_2", "trailing"),
    ("fullwidth", "\uff11\uff12", "12", "21", "alone"),
    ("fullwidth", "\uff13\uff0e\uff15", "3.5", "35", "alone"),
    ("fullwidth", "\uff0d\uff15", "-5", "5", "leading"),
    ("fullwidth", "\uff12\uff58", "2x", "x", "leading"),
    ("no-break space", "1\u00a0000", "1000", "1", "infix"),
    ("thin space", "1\u2009000\u2009000", "1000000", "1000", "infix"),
    ("narrow no-break space", "12\u202f345", "12345", "12", "infix"),
    ("no-break space", "12\u00a0cm", "12", "13", "infix"),
    ("thin space", "x\u2009+\u20091", "x+1", "x-1", "infix"),
    ("no-break space", "\u00a05", "5", "6", "leading"),
    ("no-break space", "5\u00a0", "5", "6", "trailing"),
    ("zero-width space", "4\u200b2", "42", "4", "infix"),
    ("vulgar", "\u00bd", r"\frac{1}{2}", "2", "alone"),
    ("vulgar", "\u2154", r"\frac{2}{3}", r"\frac{3}{2}", "alone"),
    ("vulgar", "\u215b", "0.125", "8", "alone"),
    ("vulgar mixed", "1\u00bd", "1.5", "0.5", "trailing"),
    ("vulgar mixed", "\u22122\u00be", r"-\frac{11}{4}", r"-\frac{3}{2}", "trailing"),
    ("vulgar mixed", "12\u00bc", r"\frac{49}{4}", "3", "trailing"),
    ("vulgar", "\u00bex", r"\frac{3}{4}x", r"\frac{4}{3}x", "leading"),
    ("fraction slash", "3\u20444", "0.75", r"\frac{4}{3}", "infix"),
]


def _symbol_rows():
  rows = []
  for (name, m), (slot, right, wrong, position) in itertools.product(
      MINUS_SIGNS.items(), MINUS_SLOTS
  ):
    rows.append((f"minus {name}", slot.replace("{m}", m), right, wrong, position))
  return rows + SYMBOL_SLOTS


SYMBOL_ROWS = _symbol_rows()
# Where the answer sits in a completion. "text" (the last-number fallback) only for
# answers that are one plain number.
CONTEXTS = {
    "box": "So the answer is $\\boxed{{{a}}}$.",
    "box_then_bare_word": "\\boxed{{{a}}}. I put it in \\boxed as asked.",
    "final_inline": "The final answer is ${a}$. I hope it is correct.",
    "final_plain": "The final answer is {a}\nThanks.",
    "text": "So the change is {a} dollars.",
}


def _is_plain_number(answer: str) -> bool:
  ascii_form = normalize_unicode(answer)
  return (
      bool(ascii_form)
      and all(c in "-0123456789." for c in ascii_form)
      and any(c.isdigit() for c in ascii_form)
  )


def _matrix():
  cases = []
  for (name, answer, right, wrong, position), (context, template) in itertools.product(
      SYMBOL_ROWS, CONTEXTS.items()
  ):
    if context == "text" and not _is_plain_number(answer):
      continue
    cases.append((f"{name}/{position}/{context}", template.format(a=answer), right, wrong))
  return cases


SYMBOL_MATRIX = _matrix()


def test_symbol_matrix_size():
  assert len(SYMBOL_ROWS) == 5 * 8 + len(SYMBOL_SLOTS)
  assert len(SYMBOL_MATRIX) > 4 * len(SYMBOL_ROWS)  # every row in the four LaTeX contexts


def test_every_unicode_symbol_in_every_position_and_context():
  pairs, labels = [], []
  for label, completion, right, wrong in SYMBOL_MATRIX:
    predicted = extract_answer(completion)
    pairs += [(predicted, right), (predicted, wrong)]
    labels += [(label, completion, right, True), (label, completion, wrong, False)]
  verdicts = answers_equivalent_batch(pairs)
  failures = [
      (label, completion, ref, expected, extract_answer(completion))
      for (label, completion, ref, expected), got in zip(labels, verdicts)
      if got != expected
  ]
  assert failures == []


@pytest.mark.parametrize("name, char", sorted(MINUS_SIGNS.items()))
def test_a_minus_sign_in_running_text_keeps_its_sign(name, char):
  assert extract_answer(f"the change is {char}12 dollars") == "-12"
  assert answers_equivalent_batch([(f"{char}3", "-3"), (f"{char}3", "3")]) == [True, False]


def test_en_dash_between_digits_is_a_range_not_a_minus():
  assert normalize_unicode("pages 3\u20135") == "pages 3\u20135"
  assert normalize_unicode("x \u2013 1") == "x - 1"


def test_ascii_text_is_untouched():
  text = "The final answer is $\\boxed{\\frac{1}{2}}$. 3 - 1 = 2"
  assert normalize_unicode(text) is text


# --------------------------------------------------------------------------- boxed forms

BOX_FORMS = [
    "\\boxed{{{a}}}",
    "\\boxed {{{a}}}",
    "$\\boxed{{{a}}}$",
    "\\fbox{{{a}}}",
    "\\[\\boxed{{{a}}}\\]",
    "$$\\boxed{{{a}}}$$",
]
BOX_ANSWERS = ["12", r"\frac{3}{4}", "-7", r"\frac{\sqrt{3}}{2}", r"\{1, 2\}", "x^{2}+1"]
LEADING_TEXT = [
    "",
    "Using \\boxed as told: ",
    "A first guess \\boxed{0} was wrong; ",
    "Write \\boxed{} around it. ",
]
TRAILING_TEXT = [
    "",
    ".",
    ". I put it in \\boxed as asked.",
    " (that is what \\boxed means)",
    "\n\nNote: \\boxed is a command.",
    " and an empty \\boxed{}.",
    " Remember: \\boxed",
    " \\boxed{unclosed",
    " \\boxed a",
    " \\boxed 99",
    " The number 99 is not the answer.",
]


@pytest.mark.parametrize("form", BOX_FORMS)
def test_a_braced_box_wins_over_bare_forms_and_trailing_text(form):
  cases = list(itertools.product(LEADING_TEXT, BOX_ANSWERS, TRAILING_TEXT))
  assert len(cases) == 4 * 6 * 11
  wrong = [
      (lead, answer, trail, extract_answer(lead + form.format(a=answer) + trail))
      for lead, answer, trail in cases
      if extract_answer(lead + form.format(a=answer) + trail) != answer
  ]
  assert wrong == []


# (completion, extracted): the bare form counts only for answer-like text.
BARE_CASES = [
    ("answer $\\boxed 5$", "5"),
    ("\\boxed 5", "5"),
    ("so \\boxed -3.", "-3"),
    ("so \\boxed 2.5, done", "2.5"),
    ("\\boxed 3/4", "3/4"),
    ("\\boxed5", "5"),
    ("The choice is \\boxed C.", "C"),
    ("$\\boxed x$", "x"),
    ("\\boxed \\pi", "\\pi"),
    ("an empty \\boxed{} then \\boxed 7", "7"),
    ("\\boxed 4 then \\boxed as asked", "4"),
]
NOT_ANSWERS = [
    "\\boxed as asked",
    "\\boxed the answer",
    "\\boxed is how",
    "\\boxed a cat",
    "\\boxed I think",
    "\\boxed",
    "\\boxed\n",
    "\\boxedx y",
    "\\boxed $",
    "\\boxed{}",
]


@pytest.mark.parametrize("text, expected", BARE_CASES)
def test_bare_box_with_an_answer(text, expected):
  assert find_boxed(text) == expected
  assert extract_answer(text) == expected


@pytest.mark.parametrize("text", NOT_ANSWERS)
@pytest.mark.parametrize(
    "tail, expected",
    [("", None), (" The final answer is 9.", "9"), ("\n#### 9", "9"), (" so 9", "9")],
)
def test_bare_box_with_a_word_is_not_an_answer(text, tail, expected):
  assert find_boxed(text) is None
  assert extract_answer(text + tail) == expected


def test_the_listed_inputs():
  assert extract_answer(r"The answer is \boxed{12}. I put it in \boxed as asked.") == "12"
  assert answers_equivalent_batch(
      [
          (r"1\frac{4}{5}", r"\frac{9}{5}"),
          (r"1\frac{4}{5}", r"\frac{4}{5}"),
          ("\u22123", "-3"),
          (extract_answer("the change is \u221212 dollars"), "-12"),
          (extract_answer("the change is \u221212 dollars"), "12"),
      ]
  ) == [True, False, True, True, False]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The final answer is $\\$18.90$.", "\\$18.90"),
        ("The final answer is $$\\frac{1}{2}$$.", "\\frac{1}{2}"),
        ("The final answer is \\(x+1\\). I hope", "x+1"),
        ("The final answer is \\[\\sqrt{2}\\]", "\\sqrt{2}"),
    ],
)
def test_final_answer_in_math_delimiters(text, expected):
  assert extract_answer(text) == expected


# --------------------------------------------------------------------------- mixed numbers

MIXED = [(1, 4, 5), (2, 1, 2), (3, 2, 3), (12, 1, 4), (1, 1, 3), (10, 7, 8), (4, 3, 10)]
SIGNS = {"": 1, "-": -1, "\u2212": -1}
WRITTEN = [
    "{w}\\frac{{{n}}}{{{d}}}",
    "{w} \\frac{{{n}}}{{{d}}}",
    "{w}\\dfrac{{{n}}}{{{d}}}",
    "{w}\\tfrac{{{n}}}{{{d}}}",
    "{w}\\,\\frac{{{n}}}{{{d}}}",
    "{w}\\frac{n}{d}",
]
VULGAR = {
    (1, 2): "\u00bd",
    (1, 3): "\u2153",
    (2, 3): "\u2154",
    (1, 4): "\u00bc",
    (7, 8): "\u215e",
    (4, 5): "\u2158",
    (3, 10): None,
}


def _spell(v: Fraction) -> list[str]:
  """Reference spellings of v, written from its numerator and denominator."""
  sign = "-" if v < 0 else ""
  a, b = abs(v.numerator), v.denominator
  out = [f"{sign}\\frac{{{a}}}{{{b}}}", f"{sign}{a}/{b}", f"\\frac{{{sign}{a}}}{{{b}}}"]
  if 10**6 % b == 0:  # terminating decimal
    out.append(f"{sign}{a // b}.{str((a % b) * (10**6 // b)).rjust(6, '0').rstrip('0')}")
  return out


def _mixed_matrix():
  right, wrong = [], []
  for (w, n, d), (sign, s), form in itertools.product(MIXED, SIGNS.items(), WRITTEN):
    if form == WRITTEN[-1] and (n > 9 or d > 9):  # \frac nd: one digit each
      continue
    written = sign + form.format(w=w, n=n, d=d)
    value = s * (w + Fraction(n, d))  # the mixed number's value, by hand arithmetic
    right += [(written, ref) for ref in _spell(value)]
    product = s * w * Fraction(n, d)  # what the old reading gave
    fraction_alone = s * Fraction(n, d)
    wrong += [
        (written, ref) for v in (product, fraction_alone) if v != value for ref in _spell(v)[:1]
    ]
  for (w, n, d), (sign, s) in itertools.product(MIXED, SIGNS.items()):
    if VULGAR.get((n, d)):
      written = f"{sign}{w}{VULGAR[(n, d)]}"
      right += [(written, ref) for ref in _spell(s * (w + Fraction(n, d)))]
      wrong.append((written, _spell(s * w * Fraction(n, d))[0]))
  return right, wrong


def test_mixed_numbers_are_sums():
  right, wrong = _mixed_matrix()
  assert len(right) > 300 and len(wrong) > 100
  verdicts = answers_equivalent_batch(right + wrong)
  assert [p for p, v in zip(right, verdicts[: len(right)]) if not v] == []
  assert [p for p, v in zip(wrong, verdicts[len(right) :]) if v] == []


@pytest.mark.parametrize(
    "answer, product, mixed_sum",
    [
        (r"2\cdot\frac12", "1", r"\frac{5}{2}"),
        (r"2 \cdot \frac{1}{2}", "1", r"\frac{5}{2}"),
        (r"2\times\frac{1}{2}", "1", r"\frac{5}{2}"),
        (r"x\frac{1}{2}", r"\frac{x}{2}", r"x+\frac{1}{2}"),
        (r"2x\frac{1}{2}", "x", r"2x+\frac{1}{2}"),
        (r"10^2\frac12", "50", r"10^{2}+\frac12"),
        (r"\sqrt{2}\frac{1}{2}", r"\frac{\sqrt{2}}{2}", r"\sqrt{2}+\frac{1}{2}"),
        (r"1\frac{5}{4}", r"\frac{5}{4}", r"\frac{9}{4}"),  # improper: not a mixed number
        (r"(2)\frac{1}{2}", "1", r"\frac{5}{2}"),
    ],
)
def test_products_that_are_not_mixed_numbers(answer, product, mixed_sum):
  assert answers_equivalent_batch([(answer, product), (answer, mixed_sum)]) == [True, False]


def test_mixed_numbers_inside_expressions():
  assert normalize_answer(r"3 - 1\frac{1}{2}") == r"3-\frac{3}{2}"
  assert normalize_answer(r"(1\frac{1}{2}, -2\frac{1}{3})") == r"(\frac{3}{2},-\frac{7}{3})"
  assert answers_equivalent_batch([(r"3 - 1\frac{1}{2}", "1.5")]) == [True]


# --------------------------------------------------------------------------- exact numbers


@pytest.mark.parametrize("n", [999, 1000, 70000, 123456, 10**7, 2**40])
def test_exact_numbers_compare_exactly(n):
  pairs = [
      (str(n + 1), str(n)),
      (str(n - 1), str(n)),
      (f"{n:,}", str(n)),
      (f"{n}.0", str(n)),
      (f"\\frac{{{2 * n}}}{{2}}", str(n)),
      (f"\\frac{{{2 * n + 1}}}{{2}}", str(n)),
  ]
  assert answers_equivalent_batch(pairs) == [False, False, True, True, True, False]


def test_decimals_keep_a_relative_tolerance():
  assert answers_equivalent_batch(
      [("3.14159", "3.1416"), ("0.333", r"\frac13"), ("4.5e33", "4.50001e33")]
  ) == [True, False, True]
