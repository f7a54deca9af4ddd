"""Parsers: malformed completions give typed failures (never exceptions); well-formed
ones round-trip through the writers in prompts.py."""

from __future__ import annotations

import numpy as np
import pytest

from absolute_zero.tasks import parsers as P
from absolute_zero.tasks.parsers import FailureKind as K
from absolute_zero.tasks.parsers import ParseConfig, ParseFailure
from absolute_zero.tasks.prompts import (
    render_induction_proposal,
    render_literal_answer,
    render_program_answer,
    render_triplet_proposal,
)
from absolute_zero.tasks.types import Role, TaskType

CFG3 = ParseConfig(num_inputs=3)
PROGRAM = "def f(a, b):\n    total = 0\n    for x in a:\n        total += x * b\n    return total"

# One well-formed completion per (task, role) pair, with the value the parser must return.
WELL_FORMED = {
    (TaskType.DEDUCTION, Role.PROPOSE): (
        render_triplet_proposal(PROGRAM, "[1, 2], 3", reasoning="I multiply and sum."),
        P.ParsedTripletProposal(PROGRAM, "[1, 2], 3"),
    ),
    (TaskType.ABDUCTION, Role.PROPOSE): (
        render_triplet_proposal(PROGRAM, "[], 0", reasoning="Plan."),
        P.ParsedTripletProposal(PROGRAM, "[], 0"),
    ),
    (TaskType.INDUCTION, Role.PROPOSE): (
        render_induction_proposal(
            ["[1], 2", "[3, 4], 1", "[], 9"], "Weighted sum.", reasoning="Cover empty."
        ),
        P.ParsedInductionProposal(("[1], 2", "[3, 4], 1", "[], 9"), "Weighted sum."),
    ),
    (TaskType.DEDUCTION, Role.SOLVE): (
        render_literal_answer("9", reasoning="1*3+2*3"),
        P.ParsedLiteral("9"),
    ),
    (TaskType.ABDUCTION, Role.SOLVE): (
        render_literal_answer("[3], 3", reasoning="3*3"),
        P.ParsedLiteral("[3], 3"),
    ),
    (TaskType.INDUCTION, Role.SOLVE): (
        render_program_answer(PROGRAM, reasoning="sum"),
        P.ParsedProgram(PROGRAM),
    ),
}
PAIRS = list(WELL_FORMED)


def parse(pair, text, config=CFG3):
  return P.parse_response(pair[0], pair[1], text, config)


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0].value}-{p[1].value}")
def test_well_formed_parses(pair):
  text, expected = WELL_FORMED[pair]
  assert parse(pair, text) == expected


# --------------------------------------------------------------------------- hand-written

F = "```"
GOOD_CODE = f"{F}python\ndef f(x):\n    return x\n{F}"
GOOD_INPUT = f"{F}input\n'a'\n{F}"

HAND_WRITTEN = [
    # (pair key, completion, expected kind)
    ("dp", "", K.EMPTY_COMPLETION),
    ("dp", "   \n\t  ", K.EMPTY_COMPLETION),
    ("dp", "I think the answer is f(x) = x.", K.MISSING_ANSWER_TAG),
    ("dp", f"{GOOD_CODE}\n{GOOD_INPUT}", K.MISSING_ANSWER_TAG),
    ("dp", f"<answer>\n{GOOD_CODE}\n{GOOD_INPUT}", K.UNCLOSED_ANSWER_TAG),
    ("dp", f"{GOOD_CODE}\n{GOOD_INPUT}\n</answer>", K.MISSING_ANSWER_TAG),
    ("dp", f"</answer><answer>\n{GOOD_CODE}\n{GOOD_INPUT}</answer>", K.UNBALANCED_ANSWER_TAGS),
    ("dp", f"<answer><answer>\n{GOOD_CODE}\n{GOOD_INPUT}</answer></answer>", K.NESTED_ANSWER_TAGS),
    (
        "dp",
        f"<answer>{GOOD_CODE}\n{GOOD_INPUT}</answer>\n<answer>{GOOD_CODE}\n{GOOD_INPUT}</answer>",
        K.MULTIPLE_ANSWER_BLOCKS,
    ),
    ("dp", f"<answer>{GOOD_CODE}\n{GOOD_INPUT}</answer></answer>", K.UNBALANCED_ANSWER_TAGS),
    ("dp", "<answer></answer>", K.EMPTY_ANSWER),
    ("dp", "<answer>  \n \n</answer>", K.EMPTY_ANSWER),
    ("dp", f"<answer>\n{GOOD_INPUT}\n</answer>", K.MISSING_CODE_BLOCK),
    ("dp", f"<answer>\n{GOOD_CODE}\n</answer>", K.MISSING_INPUT_BLOCK),
    ("dp", f"<answer>\n{GOOD_CODE}\n{GOOD_CODE}\n{GOOD_INPUT}\n</answer>", K.MULTIPLE_CODE_BLOCKS),
    (
        "dp",
        f"<answer>\n{GOOD_CODE}\n{GOOD_INPUT}\n{GOOD_INPUT}\n</answer>",
        K.MULTIPLE_INPUT_BLOCKS,
    ),
    (
        "dp",
        f"<answer>\n{F}python\ndef f(x):\n    return x\n{GOOD_INPUT}\n</answer>",
        K.UNCLOSED_FENCE,
    ),
    ("dp", f"<answer>\n{GOOD_CODE}\n{F}input\n'a'\n</answer>", K.UNCLOSED_FENCE),
    ("dp", f"<answer>\n{F}python\n{F}\n{GOOD_INPUT}\n</answer>", K.EMPTY_BLOCK),
    ("dp", f"<answer>\n{GOOD_CODE}\n{F}input\n   \n{F}\n</answer>", K.EMPTY_BLOCK),
    (
        "dp",
        f"<answer>\n{F}python\ndef f(x):\n    return x\ndef g(y):\n    return y\n{F}\n{GOOD_INPUT}\n</answer>",
        K.MULTIPLE_FUNCTIONS,
    ),
    (
        "dp",
        f"<answer>\n{F}python\ndef f(x):\n    return x\ndef f(y):\n    return y\n{F}\n{GOOD_INPUT}\n</answer>",
        K.MULTIPLE_FUNCTIONS,
    ),
    ("dp", f"<answer>\n{F}python\nx = 1\nprint(x)\n{F}\n{GOOD_INPUT}\n</answer>", K.NO_FUNCTION_F),
    (
        "dp",
        f"<answer>\n{F}python\nclass f:\n    def g(self):\n        return 1\n{F}\n{GOOD_INPUT}\n</answer>",
        K.NO_FUNCTION_F,
    ),
    (
        "dp",
        f"<answer>\n{F}python\ndef f(x)\n    return x\n{F}\n{GOOD_INPUT}\n</answer>",
        K.SYNTAX_ERROR,
    ),
    (
        "dp",
        f"<answer>\n{F}python\ndef f(x):\nreturn x\n{F}\n{GOOD_INPUT}\n</answer>",
        K.SYNTAX_ERROR,
    ),
    (
        "dp",
        f"<answer>\n{F}python\ndef f(x):\n    return ((((x\n{F}\n{GOOD_INPUT}\n</answer>",
        K.SYNTAX_ERROR,
    ),
    (
        "dp",
        f"<answer>\n{F}python\ndef f(x):\n    return x\x00\n{F}\n{GOOD_INPUT}\n</answer>",
        K.SYNTAX_ERROR,
    ),
    (
        "dp",
        f"<answer>\n{F}python\ndef f(x):\n    return '\ud800'\n{F}\n{GOOD_INPUT}\n</answer>",
        K.SYNTAX_ERROR,
    ),
    (
        "dp",
        f"<answer>\n{F}python\ndef f(x):\n    return {'(' * 3000}x{')' * 3000}\n{F}\n{GOOD_INPUT}\n</answer>",
        K.SYNTAX_ERROR,
    ),
    # renaming refused: the name f is already taken inside the program
    (
        "dp",
        f"<answer>\n{F}python\ndef g(f):\n    return f\n{F}\n{GOOD_INPUT}\n</answer>",
        K.NO_FUNCTION_F,
    ),
    (
        "ip",
        f"<answer>\n{GOOD_INPUT}\n{GOOD_INPUT}\n{F}message\nhi\n{F}\n</answer>",
        K.TOO_FEW_INPUTS,
    ),
    ("ip", f"<answer>\n{F}message\nhi\n{F}\n</answer>", K.MISSING_INPUT_BLOCK),
    (
        "ip",
        f"<answer>\n{GOOD_INPUT}\n{GOOD_INPUT}\n{GOOD_INPUT}\n</answer>",
        K.MISSING_MESSAGE_BLOCK,
    ),
    (
        "ip",
        f"<answer>\n{GOOD_INPUT}\n{GOOD_INPUT}\n{GOOD_INPUT}\n{F}message\nhi\n{F}\n{F}message\nho\n{F}\n</answer>",
        K.MULTIPLE_MESSAGE_BLOCKS,
    ),
    (
        "ip",
        f"<answer>\n{GOOD_INPUT}\n{GOOD_INPUT}\n{GOOD_INPUT}\n{F}message\n\n{F}\n</answer>",
        K.EMPTY_BLOCK,
    ),
    (
        "ip",
        f"<answer>\n{GOOD_INPUT}\n{GOOD_INPUT}\n{F}input\n\n{F}\n{F}message\nhi\n{F}\n</answer>",
        K.EMPTY_BLOCK,
    ),
    (
        "ip",
        f"<answer>\n{GOOD_INPUT}\n{GOOD_INPUT}\n{GOOD_INPUT}\n{F}message\nhi\n</answer>",
        K.UNCLOSED_FENCE,
    ),
    ("ds", "The output is 3.", K.MISSING_ANSWER_TAG),
    ("ds", "<answer>3", K.UNCLOSED_ANSWER_TAG),
    ("ds", "<answer>\n</answer>", K.EMPTY_ANSWER),
    ("ds", f"<answer>{F}output\n3\n{F}\n{F}output\n4\n{F}</answer>", K.MULTIPLE_BLOCKS),
    ("ds", f"<answer>{F}output\n3\n</answer>", K.UNCLOSED_FENCE),
    ("ds", f"<answer>{F}output\n\n{F}</answer>", K.EMPTY_BLOCK),
    ("ds", "<answer>3</answer> and also <answer>4</answer>", K.MULTIPLE_ANSWER_BLOCKS),
    ("as", "<ANSWER>'a'</ANSWER>", K.MISSING_ANSWER_TAG),
    ("as", "<answer >'a'</answer>", K.MISSING_ANSWER_TAG),
    ("as", "<answer>'a'</answer", K.UNCLOSED_ANSWER_TAG),
    ("is", "<answer>def f(x): return x</answer>", K.MISSING_CODE_BLOCK),
    ("is", f"<answer>{GOOD_CODE}\n{GOOD_CODE}</answer>", K.MULTIPLE_CODE_BLOCKS),
    ("is", f"<answer>{F}python\ndef f(x):\n    return x\n</answer>", K.UNCLOSED_FENCE),
    ("is", f"<answer>{F}python\nlambda x: x\n{F}</answer>", K.NO_FUNCTION_F),
    ("is", f"<answer>{F}python\ndef f(x):\n  return [\n{F}</answer>", K.SYNTAX_ERROR),
]
KEYS = {
    "dp": (TaskType.DEDUCTION, Role.PROPOSE),
    "ip": (TaskType.INDUCTION, Role.PROPOSE),
    "ds": (TaskType.DEDUCTION, Role.SOLVE),
    "as": (TaskType.ABDUCTION, Role.SOLVE),
    "is": (TaskType.INDUCTION, Role.SOLVE),
}


@pytest.mark.parametrize(
    "key,text,kind", HAND_WRITTEN, ids=[f"{i}-{c[2].value}" for i, c in enumerate(HAND_WRITTEN)]
)
def test_hand_written_malformed(key, text, kind):
  result = parse(KEYS[key], text)
  assert isinstance(result, ParseFailure), result
  assert result.kind is kind, result
  assert result.detail  # every failure says why


# --------------------------------------------------------------------------- systematic


def truncation_cases():
  """Every prefix of a well-formed completion that cuts the answer block short."""
  cases = []
  for pair, (text, _) in WELL_FORMED.items():
    open_end = text.index("<answer>") + len("<answer>")
    close_end = text.index("</answer>") + len("</answer>")
    for cut in range(0, close_end, 3):
      prefix = text[:cut]
      if not prefix.strip():
        kind = K.EMPTY_COMPLETION
      elif cut < open_end:
        kind = K.MISSING_ANSWER_TAG
      else:
        kind = K.UNCLOSED_ANSWER_TAG
      cases.append((pair, prefix, kind))
  return cases


TRUNCATIONS = truncation_cases()


def test_truncation_corpus_is_large():
  assert len(TRUNCATIONS) + len(HAND_WRITTEN) >= 200


@pytest.mark.parametrize("case", range(len(TRUNCATIONS)))
def test_truncated_completions(case):
  pair, text, kind = TRUNCATIONS[case]
  result = parse(pair, text)
  assert isinstance(result, ParseFailure) and result.kind is kind, (text, result)
  assert result.broken_format


def mutation_cases():
  """Structural mutations of each well-formed completion, with the expected kind."""
  cases = []
  for pair, (text, _) in WELL_FORMED.items():
    cases += [
        (pair, text.replace("<answer>", ""), K.MISSING_ANSWER_TAG),
        (pair, text.replace("</answer>", ""), K.UNCLOSED_ANSWER_TAG),
        (pair, text.replace("<answer>", "<answer><answer>"), K.NESTED_ANSWER_TAGS),
        (pair, text + "\n" + text, K.MULTIPLE_ANSWER_BLOCKS),
        (pair, text.replace("</answer>", "</answer></answer>"), K.UNBALANCED_ANSWER_TAGS),
        (pair, "x" * 70_000 + text, K.COMPLETION_TOO_LONG),
        (pair, text + "\n" + "🙂" * 70_000, K.COMPLETION_TOO_LONG),
        (
            pair,
            text.replace("<answer>", "<answer>\n```python\nstill open\n", 1)
            if pair[1] is Role.PROPOSE or pair[0] is TaskType.INDUCTION
            else text.replace("<answer>", "<answer>\n```output\nstill open\n", 1),
            K.UNCLOSED_FENCE,
        ),
    ]
  return cases


MUTATIONS = mutation_cases()


@pytest.mark.parametrize("case", range(len(MUTATIONS)))
def test_mutated_completions(case):
  pair, text, kind = MUTATIONS[case]
  result = parse(pair, text)
  assert isinstance(result, ParseFailure) and result.kind is kind, result


def test_trailing_text_after_answer_is_ignored():
  for pair, (text, expected) in WELL_FORMED.items():
    assert parse(pair, text + "\nUser: and now something else entirely ```") == expected


def test_multiple_answers_allowed_takes_last():
  cfg = ParseConfig(allow_multiple_answers=True)
  assert P.parse_deduction_answer(
      "<answer>1</answer> no wait <answer>2</answer>", cfg
  ) == P.ParsedLiteral("2")


def test_require_think():
  cfg = ParseConfig(require_think=True)
  assert P.parse_deduction_answer("<answer>1</answer>", cfg).kind is K.MISSING_THINK
  assert P.parse_deduction_answer("reason</think> <answer>1</answer>", cfg) == P.ParsedLiteral("1")
  assert P.parse_deduction_answer("<answer>1</answer></think>", cfg).kind is K.MISSING_THINK


# --------------------------------------------------------------------------- limits


def test_gigantic_fields_are_capped():
  big_program = "def f(x):\n" + "    x += 1\n" * 1000 + "    return x"
  result = P.parse_triplet_proposal(render_triplet_proposal(big_program, "1"))
  assert result.kind is K.FIELD_TOO_LONG and not result.broken_format
  result = P.parse_deduction_answer(render_literal_answer("1" * 9000))
  assert result.kind is K.FIELD_TOO_LONG
  msg = render_induction_proposal(["1", "2", "3"], "m" * 5000)
  assert P.parse_induction_proposal(msg, CFG3).kind is K.FIELD_TOO_LONG
  # a whole completion just under the cap with a huge reasoning part still parses
  ok = "r" * 60_000 + render_literal_answer("7")
  assert P.parse_deduction_answer(ok) == P.ParsedLiteral("7")


def test_program_length_cap_is_inclusive():
  """max_program_chars is the longest program accepted, not the first one refused."""
  program = "def f(x):\n    return x"
  exact = ParseConfig(max_program_chars=len(program))
  result = P.parse_triplet_proposal(render_triplet_proposal(program, "1"), exact)
  assert result == P.ParsedTripletProposal(program, "1"), result
  shorter = ParseConfig(max_program_chars=len(program) - 1)
  result = P.parse_triplet_proposal(render_triplet_proposal(program, "1"), shorter)
  assert result.kind is K.FIELD_TOO_LONG


def test_format_vs_content_classification():
  content = {K.FIELD_TOO_LONG, K.SYNTAX_ERROR, K.NO_FUNCTION_F, K.MULTIPLE_FUNCTIONS}
  for kind in K:
    assert kind.broken_format == (kind not in content)


# --------------------------------------------------------------------------- leniency that is part of the format


def test_function_renamed_to_f_with_recursion_and_attributes():
  program = "def walk(n, obj):\n    # walk down\n    if n == 0:\n        return obj.walk\n    return walk(n - 1, obj)"
  result = P.parse_triplet_proposal(render_triplet_proposal(program, "2, None"))
  assert (
      result.program
      == "def f(n, obj):\n    # walk down\n    if n == 0:\n        return obj.walk\n    return f(n - 1, obj)"
  )


def test_nested_functions_classes_and_imports_are_one_function():
  program = (
      "import math\nfrom collections import deque\n\nclass Box:\n    def __init__(self, v):\n        self.v = v\n"
      "    def get(self):\n        return self.v\n\ndef f(x):\n    def helper(y):\n        return y + 1\n"
      "    return helper(Box(x).get())"
  )
  assert P.parse_triplet_proposal(render_triplet_proposal(program, "1")).program == program


def test_induction_solver_allows_helpers_and_proposer_keeps_last_inputs():
  prog = "def g(x):\n    return x\n\ndef f(x):\n    return g(x)"
  assert P.parse_induction_answer(render_program_answer(prog)) == P.ParsedProgram(prog)
  text = render_induction_proposal(["1", "2", "3", "4"], "m")
  assert P.parse_induction_proposal(text, CFG3).inputs == ("2", "3", "4")


def test_fence_variants():
  # info word case and spacing, glued closing fence, one-line fences, indented fences
  text = "<answer>\n``` Python\ndef f(x):\n    return x```\n```input 'a, b'```\n</answer>"
  assert P.parse_triplet_proposal(text) == P.ParsedTripletProposal(
      "def f(x):\n    return x", "'a, b'"
  )
  text = (
      "<answer>\n  ```python\n  def f(x):\n      return x\n  ```\n  ```input\n  3\n  ```\n</answer>"
  )
  assert P.parse_triplet_proposal(text) == P.ParsedTripletProposal("def f(x):\n    return x", "3")
  # a bare (info-less) fence counts as code; unknown blocks (```output) are ignored
  text = (
      "<answer>\n```\ndef f(x):\n    return x\n```\n```input\n3\n```\n```output\n3\n```\n</answer>"
  )
  assert P.parse_triplet_proposal(text) == P.ParsedTripletProposal("def f(x):\n    return x", "3")
  assert P.parse_deduction_answer(
      "<answer>The output is\n```output\n[1, 2]\n```\n</answer>"
  ) == P.ParsedLiteral("[1, 2]")


def test_unicode_round_trips():
  prog = "def f(s):\n    return s + 'ß→λ😀'"
  result = P.parse_triplet_proposal(
      render_triplet_proposal(prog, "'日本語'", reasoning="Ünïcödé plan ✓")
  )
  assert result == P.ParsedTripletProposal(prog, "'日本語'")
  assert P.parse_deduction_answer(render_literal_answer("'😀\\n'")) == P.ParsedLiteral("'😀\\n'")


# --------------------------------------------------------------------------- fuzz: never raise

PIECES = [
    "<answer>",
    "</answer>",
    "<think>",
    "</think>",
    "```",
    "```python",
    "```input",
    "```message",
    "```output",
    "\n",
    "\n",
    " ",
    "def f(x):",
    "def g(y):",
    "    return x",
    "return",
    "'",
    '"',
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "\\",
    "\x00",
    "\ud800",
    "é",
    "😀",
    "\t",
    "lambda",
    "import os",
    "class A:",
    ":",
    ",",
    "1",
    "'abc'",
    "#",
    "\r\n",
    "\x0c",
    "<answer",
    "answer>",
    "``",
    "````",
]


@pytest.mark.parametrize("seed", range(8))
def test_fuzz_never_raises(seed):
  rng = np.random.default_rng(seed)
  for _ in range(150):
    n = int(rng.integers(0, 40))
    text = "".join(PIECES[int(i)] for i in rng.integers(0, len(PIECES), size=n))
    for pair in PAIRS:
      result = parse(pair, text)
      assert isinstance(
          result,
          (
              ParseFailure,
              P.ParsedTripletProposal,
              P.ParsedInductionProposal,
              P.ParsedLiteral,
              P.ParsedProgram,
          ),
      )
      if isinstance(result, ParseFailure):
        assert result.kind is not K.PARSER_ERROR, (text, result)


def test_non_string_input_is_a_failure_not_an_exception():
  for bad in (None, 3, b"<answer>1</answer>"):
    result = P.parse_deduction_answer(bad)
    assert isinstance(result, ParseFailure) and result.kind is K.PARSER_ERROR


def test_parsed_values_round_trip_random():
  """render -> parse is the identity on randomly assembled values."""
  rng = np.random.default_rng(0)
  bodies = [
      "return x",
      "return x[::-1]",
      "y = 0\n    for c in x:\n        y += 1\n    return y",
      "return {'k': x}",
  ]
  literals = [
      "1",
      "'a'",
      "[1, 2]",
      "(1, 'b')",
      "{'a': [1, {2, 3}]}",
      "-3.5",
      "'x', 2, [None]",
      "True, 'é'",
  ]
  for _ in range(50):
    program = "def f(x):\n    " + bodies[int(rng.integers(len(bodies)))]
    lit = literals[int(rng.integers(len(literals)))]
    assert P.parse_triplet_proposal(
        render_triplet_proposal(program, lit)
    ) == P.ParsedTripletProposal(program, lit)
    assert P.parse_abduction_answer(render_literal_answer(lit)) == P.ParsedLiteral(lit)
    assert P.parse_induction_answer(render_program_answer(program)) == P.ParsedProgram(program)
    ins = [literals[int(i)] for i in rng.integers(len(literals), size=3)]
    assert P.parse_induction_proposal(
        render_induction_proposal(ins, "msg"), CFG3
    ) == P.ParsedInductionProposal(tuple(ins), "msg")


def test_empty_abduction_answer_is_the_empty_argument_list():
  # `f()` takes no arguments: the only correct input is the empty list (CRUXEval
  # sample_135). Deduction has no such answer, so there it stays a format failure.
  assert P.parse_abduction_answer("<answer></answer>") == P.ParsedLiteral("")
  assert P.parse_abduction_answer("<answer> \n</answer>") == P.ParsedLiteral("")
  assert P.parse_deduction_answer("<answer></answer>").kind is K.EMPTY_ANSWER
  assert P.parse_abduction_answer("no tags").kind is K.MISSING_ANSWER_TAG
