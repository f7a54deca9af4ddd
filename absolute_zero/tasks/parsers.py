"""Turn any model text into a parsed answer or a typed ``ParseFailure``; never raise.

The format is documented in ``prompts.py``. Each ``parse_*`` function returns either a
parsed value or ``ParseFailure(kind, detail)``. ``ParseFailure.broken_format`` tells the
two kinds of failure apart, which the format rule in ``rewards.py`` needs:

* broken format (reward −1): the answer block or a required fenced block is missing,
  unclosed, nested, repeated or empty, or the completion is over the length cap;
* well-formed but invalid (reward −0.5): the blocks are there but the content is unusable:
  a program that does not parse, has no ``f``, defines several top-level functions, or a
  field over its length cap.

Whether a literal evaluates, a program runs, or an answer is right is decided later by the
sandbox; those are "well-formed but wrong" too.

Choices that differ from the reference (LeapLabTHU/Absolute-Zero-Reasoner) on purpose:
several answer blocks or several code/input blocks are a format failure (the reference
silently takes the last or first one); ``reject_multiple_functions`` counts top-level
functions only (the reference's regex also counts nested functions and methods, which
its own prompt invites). As in the reference, a program whose single function has
another name is renamed to ``f`` (``rename_single_function_to_f``) and an induction
proposal with more inputs than asked keeps the last ``num_inputs``.
"""

from __future__ import annotations

import ast
import enum
import io
import re
import textwrap
import tokenize
from dataclasses import dataclass
from typing import Callable, Optional, Union

from absolute_zero.tasks.prompts import ANSWER_CLOSE, ANSWER_OPEN, FENCE
from absolute_zero.tasks.types import Role, TaskType
from absolute_zero.sandbox.literals import parse_untrusted


class FailureKind(enum.Enum):
  """Why a completion could not be used. Values are stable strings for logging."""

  # --- broken format -----------------------------------------------------
  EMPTY_COMPLETION = "empty_completion"
  COMPLETION_TOO_LONG = "completion_too_long"
  MISSING_THINK = "missing_think"
  MISSING_ANSWER_TAG = "missing_answer_tag"
  UNCLOSED_ANSWER_TAG = "unclosed_answer_tag"
  NESTED_ANSWER_TAGS = "nested_answer_tags"
  UNBALANCED_ANSWER_TAGS = "unbalanced_answer_tags"
  MULTIPLE_ANSWER_BLOCKS = "multiple_answer_blocks"
  EMPTY_ANSWER = "empty_answer"
  UNCLOSED_FENCE = "unclosed_fence"
  MISSING_CODE_BLOCK = "missing_code_block"
  MULTIPLE_CODE_BLOCKS = "multiple_code_blocks"
  MISSING_INPUT_BLOCK = "missing_input_block"
  MULTIPLE_INPUT_BLOCKS = "multiple_input_blocks"
  TOO_FEW_INPUTS = "too_few_inputs"
  MISSING_MESSAGE_BLOCK = "missing_message_block"
  MULTIPLE_MESSAGE_BLOCKS = "multiple_message_blocks"
  MULTIPLE_BLOCKS = "multiple_blocks"
  EMPTY_BLOCK = "empty_block"
  PARSER_ERROR = "parser_error"  # a bug guard: the parser itself failed
  # --- well-formed but invalid content -------------------------------------
  FIELD_TOO_LONG = "field_too_long"
  SYNTAX_ERROR = "syntax_error"
  NO_FUNCTION_F = "no_function_f"
  MULTIPLE_FUNCTIONS = "multiple_functions"

  @property
  def broken_format(self) -> bool:
    return self not in _CONTENT_KINDS


_CONTENT_KINDS = frozenset(
    {
        FailureKind.FIELD_TOO_LONG,
        FailureKind.SYNTAX_ERROR,
        FailureKind.NO_FUNCTION_F,
        FailureKind.MULTIPLE_FUNCTIONS,
    }
)


@dataclass(frozen=True)
class ParseFailure:
  kind: FailureKind
  detail: str = ""

  @property
  def broken_format(self) -> bool:
    """True: the format is broken (−1). False: well-formed but invalid content (−0.5)."""
    return self.kind.broken_format


@dataclass(frozen=True)
class ParsedTripletProposal:
  """Deduction/abduction proposer: a program defining ``f`` and one input literal."""

  program: str
  input: str


@dataclass(frozen=True)
class ParsedInductionProposal:
  """Induction proposer: ``num_inputs`` input literals and a message."""

  inputs: tuple[str, ...]
  message: str


@dataclass(frozen=True)
class ParsedLiteral:
  """Deduction solver (an output literal) or abduction solver (an argument list)."""

  text: str


@dataclass(frozen=True)
class ParsedProgram:
  """Induction solver: a program defining ``f``."""

  program: str


Parsed = Union[ParsedTripletProposal, ParsedInductionProposal, ParsedLiteral, ParsedProgram]


@dataclass(frozen=True)
class ParseConfig:
  """Limits and switches; defaults follow the reference where it has one."""

  max_completion_chars: int = 65_536  # ≈ 8k response tokens with margin
  max_program_chars: int = 8_096  # reference content_max_length
  max_literal_chars: int = 8_096
  max_message_chars: int = 4_096
  num_inputs: int = 10  # induction proposer (reference num_inputs)
  require_think: bool = False  # demand `</think>` before the answer (reference format check)
  allow_multiple_answers: bool = False  # True: take the last answer block, as the reference does
  reject_multiple_functions: bool = True  # proposals only (reference reject_multiple_functions)
  rename_single_function_to_f: bool = True  # reference f_replace_location='not_first'


# --------------------------------------------------------------------------- answer block

_ANSWER_TAG = re.compile(re.escape(ANSWER_OPEN) + "|" + re.escape(ANSWER_CLOSE))


def extract_answer(text: str, config: ParseConfig = ParseConfig()) -> Union[str, ParseFailure]:
  """The payload between ``<answer>`` and ``</answer>``, or why there is none."""
  if not isinstance(text, str):
    return ParseFailure(FailureKind.PARSER_ERROR, f"completion is {type(text).__name__}, not str")
  if len(text) > config.max_completion_chars:
    return ParseFailure(
        FailureKind.COMPLETION_TOO_LONG, f"{len(text)} chars > limit {config.max_completion_chars}"
    )
  if not text.strip():
    return ParseFailure(FailureKind.EMPTY_COMPLETION, "completion is empty or whitespace")
  blocks: list[tuple[int, int]] = []  # (payload start, payload end)
  open_at: Optional[int] = None
  for match in _ANSWER_TAG.finditer(text):
    if match.group() == ANSWER_OPEN:
      if open_at is not None:
        return ParseFailure(
            FailureKind.NESTED_ANSWER_TAGS,
            f"{ANSWER_OPEN} inside an open answer at {match.start()}",
        )
      open_at = match.end()
    else:
      if open_at is None:
        if not blocks:
          kind = (
              FailureKind.MISSING_ANSWER_TAG
              if ANSWER_OPEN not in text
              else FailureKind.UNBALANCED_ANSWER_TAGS
          )
          return ParseFailure(kind, f"{ANSWER_CLOSE} at {match.start()} without an opening tag")
        return ParseFailure(
            FailureKind.UNBALANCED_ANSWER_TAGS, f"stray {ANSWER_CLOSE} at {match.start()}"
        )
      blocks.append((open_at, match.start()))
      open_at = None
  if open_at is not None:
    return ParseFailure(
        FailureKind.UNCLOSED_ANSWER_TAG,
        f"{ANSWER_OPEN} at {open_at - len(ANSWER_OPEN)} never closed",
    )
  if not blocks:
    return ParseFailure(FailureKind.MISSING_ANSWER_TAG, f"no {ANSWER_OPEN}...{ANSWER_CLOSE} block")
  if len(blocks) > 1 and not config.allow_multiple_answers:
    return ParseFailure(
        FailureKind.MULTIPLE_ANSWER_BLOCKS, f"{len(blocks)} answer blocks; give exactly one"
    )
  start, end = blocks[-1]
  if config.require_think:
    think_end = text.rfind("</think>", 0, start)
    if think_end < 0:
      return ParseFailure(FailureKind.MISSING_THINK, "no </think> before the answer")
  payload = text[start:end]
  if not payload.strip():
    return ParseFailure(FailureKind.EMPTY_ANSWER, "answer block is empty")
  return payload


# --------------------------------------------------------------------------- fences


@dataclass(frozen=True)
class Block:
  """One fenced block: its info word (lower-case, '' if none) and its content."""

  info: str
  content: str


_FENCE_OPEN = re.compile(r"^[ \t]*" + FENCE + r"[ \t]*([A-Za-z][A-Za-z0-9_.+-]*)?[ \t]*(.*)$")
_FENCE_WITH_INFO = re.compile(r"^[ \t]*" + FENCE + r"[ \t]*[A-Za-z]")


def scan_fences(payload: str) -> Union[list[Block], ParseFailure]:
  """All fenced blocks of ``payload`` in order; an unclosed fence is a failure."""
  lines = payload.split("\n")
  blocks: list[Block] = []
  i = 0
  while i < len(lines):
    match = _FENCE_OPEN.match(lines[i])
    if match is None:
      i += 1
      continue
    info = (match.group(1) or "").lower()
    rest = match.group(2) or ""
    if rest.rstrip().endswith(FENCE):  # one-line form: ```input 'x'```
      blocks.append(Block(info, rest.rstrip()[: -len(FENCE)].strip()))
      i += 1
      continue
    body = [rest] if rest.strip() else []
    j, closed = i + 1, False
    while j < len(lines):
      line = lines[j]
      if line.strip() == FENCE:
        closed = True
        break
      if _FENCE_WITH_INFO.match(line):
        return ParseFailure(
            FailureKind.UNCLOSED_FENCE,
            f"```{info} block opened on line {i + 1} is not closed before line {j + 1}",
        )
      if line.rstrip().endswith(FENCE):  # closing backticks glued to the last line
        body.append(line.rstrip()[: -len(FENCE)])
        closed = True
        break
      body.append(line)
      j += 1
    if not closed:
      return ParseFailure(
          FailureKind.UNCLOSED_FENCE, f"```{info} block opened on line {i + 1} is never closed"
      )
    blocks.append(Block(info, textwrap.dedent("\n".join(body)).strip("\n").rstrip()))
    i = j + 1
  return blocks


_CODE_INFOS = frozenset({"python", "py", "python3", ""})


def _blocks_of(blocks: list[Block], infos: frozenset[str]) -> list[Block]:
  return [b for b in blocks if b.info in infos]


# --------------------------------------------------------------------------- programs


def _rename_function(program: str, old: str, new: str) -> Optional[str]:
  """Rename every name token ``old`` (not attribute access) to ``new``; None if unsafe."""
  try:
    tokens = list(tokenize.generate_tokens(io.StringIO(program).readline))
  except (tokenize.TokenError, SyntaxError, ValueError):
    return None
  if any(t.type == tokenize.NAME and t.string == new for t in tokens):
    return None  # `new` already means something in this program
  spots = []
  prev = None
  for tok in tokens:
    if (
        tok.type == tokenize.NAME
        and tok.string == old
        and not (prev is not None and prev.string == ".")
    ):
      spots.append(tok.start)
    if tok.type not in (
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.COMMENT,
        tokenize.INDENT,
        tokenize.DEDENT,
    ):
      prev = tok
  lines = program.splitlines(keepends=True)
  for row, col in sorted(spots, reverse=True):
    line = lines[row - 1]
    lines[row - 1] = line[:col] + new + line[col + len(old) :]
  return "".join(lines)


def parse_program(
    program: str, config: ParseConfig, *, reject_multiple_functions: bool
) -> Union[str, ParseFailure]:
  """The form of a model's program (size, syntax, one top-level function ``f``): returns it
  (maybe with its function renamed to f) or the ParseFailure that decides the format
  reward. Whether the program is a valid proposal (banned names, runs twice the same) is
  decided by ``validators.check_program`` and ``validators.validate_proposals``."""
  if not program.strip():
    return ParseFailure(FailureKind.EMPTY_BLOCK, "code block is empty")
  if len(program) > config.max_program_chars:
    return ParseFailure(
        FailureKind.FIELD_TOO_LONG, f"program has {len(program)} chars > {config.max_program_chars}"
    )
  try:
    tree = parse_untrusted(program)
  except SyntaxError as err:
    return ParseFailure(FailureKind.SYNTAX_ERROR, f"line {err.lineno}: {err.msg}")
  except (ValueError, RecursionError, MemoryError, OverflowError) as err:
    return ParseFailure(FailureKind.SYNTAX_ERROR, f"{type(err).__name__}: {err}")
  functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
  if not functions:
    return ParseFailure(FailureKind.NO_FUNCTION_F, "no top-level function definition")
  if reject_multiple_functions and len(functions) > 1:
    names = ", ".join(fn.name for fn in functions)
    return ParseFailure(
        FailureKind.MULTIPLE_FUNCTIONS,
        f"{len(functions)} top-level functions ({names}); define only f",
    )
  if any(fn.name == "f" for fn in functions):
    return program
  if config.rename_single_function_to_f and len(functions) == 1:
    renamed = _rename_function(program, functions[0].name, "f")
    if renamed is not None:
      return renamed
  return ParseFailure(
      FailureKind.NO_FUNCTION_F, f"no top-level function named f (found {functions[0].name})"
  )


def _literal_field(text: str, what: str, config: ParseConfig) -> Union[str, ParseFailure]:
  text = text.strip()
  if not text:
    return ParseFailure(FailureKind.EMPTY_BLOCK, f"{what} is empty")
  if len(text) > config.max_literal_chars:
    return ParseFailure(
        FailureKind.FIELD_TOO_LONG, f"{what} has {len(text)} chars > {config.max_literal_chars}"
    )
  return text


# --------------------------------------------------------------------------- parsers


def _never_raise(
    parse: Callable[..., Union[Parsed, ParseFailure]],
) -> Callable[..., Union[Parsed, ParseFailure]]:
  """Last-resort guard: an unexpected exception becomes a PARSER_ERROR failure."""

  def guarded(text: str, *args, **kwargs):
    try:
      return parse(text, *args, **kwargs)
    except Exception as err:  # noqa: BLE001 - model text must never crash the loop
      return ParseFailure(FailureKind.PARSER_ERROR, f"{type(err).__name__}: {err}"[:500])

  guarded.__name__ = parse.__name__
  guarded.__doc__ = parse.__doc__
  guarded.__wrapped__ = parse
  return guarded


def _payload_blocks(text: str, config: ParseConfig) -> Union[list[Block], ParseFailure]:
  payload = extract_answer(text, config)
  if isinstance(payload, ParseFailure):
    return payload
  return scan_fences(payload)


@_never_raise
def parse_triplet_proposal(
    text: str, config: ParseConfig = ParseConfig()
) -> Union[ParsedTripletProposal, ParseFailure]:
  """Deduction/abduction proposer: one ```python block and one ```input block."""
  blocks = _payload_blocks(text, config)
  if isinstance(blocks, ParseFailure):
    return blocks
  code = _blocks_of(blocks, _CODE_INFOS)
  inputs = _blocks_of(blocks, frozenset({"input"}))
  if not code:
    return ParseFailure(FailureKind.MISSING_CODE_BLOCK, "no ```python block in the answer")
  if len(code) > 1:
    return ParseFailure(
        FailureKind.MULTIPLE_CODE_BLOCKS, f"{len(code)} code blocks; give exactly one"
    )
  if not inputs:
    return ParseFailure(FailureKind.MISSING_INPUT_BLOCK, "no ```input block in the answer")
  if len(inputs) > 1:
    return ParseFailure(
        FailureKind.MULTIPLE_INPUT_BLOCKS, f"{len(inputs)} input blocks; give exactly one"
    )
  program = parse_program(
      code[0].content, config, reject_multiple_functions=config.reject_multiple_functions
  )
  if isinstance(program, ParseFailure):
    return program
  literal = _literal_field(inputs[0].content, "input", config)
  if isinstance(literal, ParseFailure):
    return literal
  return ParsedTripletProposal(program=program, input=literal)


@_never_raise
def parse_induction_proposal(
    text: str, config: ParseConfig = ParseConfig()
) -> Union[ParsedInductionProposal, ParseFailure]:
  """Induction proposer: ``config.num_inputs`` ```input blocks and one ```message block."""
  blocks = _payload_blocks(text, config)
  if isinstance(blocks, ParseFailure):
    return blocks
  inputs = _blocks_of(blocks, frozenset({"input"}))
  messages = _blocks_of(blocks, frozenset({"message"}))
  if not inputs:
    return ParseFailure(FailureKind.MISSING_INPUT_BLOCK, "no ```input block in the answer")
  if len(inputs) < config.num_inputs:
    return ParseFailure(
        FailureKind.TOO_FEW_INPUTS, f"{len(inputs)} input blocks < {config.num_inputs} asked"
    )
  if not messages:
    return ParseFailure(FailureKind.MISSING_MESSAGE_BLOCK, "no ```message block in the answer")
  if len(messages) > 1:
    return ParseFailure(
        FailureKind.MULTIPLE_MESSAGE_BLOCKS, f"{len(messages)} message blocks; give exactly one"
    )
  literals = []
  for block in inputs[-config.num_inputs :]:
    literal = _literal_field(block.content, "input", config)
    if isinstance(literal, ParseFailure):
      return literal
    literals.append(literal)
  message = messages[0].content.strip()
  if not message:
    return ParseFailure(FailureKind.EMPTY_BLOCK, "message is empty")
  if len(message) > config.max_message_chars:
    return ParseFailure(
        FailureKind.FIELD_TOO_LONG, f"message has {len(message)} chars > {config.max_message_chars}"
    )
  return ParsedInductionProposal(inputs=tuple(literals), message=message)


def _parse_literal_answer(
    text: str, what: str, config: ParseConfig
) -> Union[ParsedLiteral, ParseFailure]:
  payload = extract_answer(text, config)
  if isinstance(payload, ParseFailure):
    return payload
  blocks = scan_fences(payload)
  if isinstance(blocks, ParseFailure):
    return blocks
  if len(blocks) > 1:
    return ParseFailure(
        FailureKind.MULTIPLE_BLOCKS, f"{len(blocks)} fenced blocks in the answer; give one {what}"
    )
  body = blocks[0].content if blocks else payload
  literal = _literal_field(body, what, config)
  if isinstance(literal, ParseFailure):
    return literal
  return ParsedLiteral(literal)


@_never_raise
def parse_deduction_answer(
    text: str, config: ParseConfig = ParseConfig()
) -> Union[ParsedLiteral, ParseFailure]:
  """Deduction solver: the predicted output literal."""
  return _parse_literal_answer(text, "output", config)


@_never_raise
def parse_abduction_answer(
    text: str, config: ParseConfig = ParseConfig()
) -> Union[ParsedLiteral, ParseFailure]:
  """Abduction solver: the proposed argument list.

  An empty answer block is the empty argument list (the one correct answer for a function
  without parameters, e.g. CRUXEval sample_135), not a format failure.
  """
  payload = extract_answer(text, config)
  if isinstance(payload, ParseFailure) and payload.kind is FailureKind.EMPTY_ANSWER:
    return ParsedLiteral("")
  return _parse_literal_answer(text, "input", config)


@_never_raise
def parse_induction_answer(
    text: str, config: ParseConfig = ParseConfig()
) -> Union[ParsedProgram, ParseFailure]:
  """Induction solver: one ```python block defining f (helper functions allowed)."""
  blocks = _payload_blocks(text, config)
  if isinstance(blocks, ParseFailure):
    return blocks
  code = _blocks_of(blocks, _CODE_INFOS)
  if not code:
    return ParseFailure(FailureKind.MISSING_CODE_BLOCK, "no ```python block in the answer")
  if len(code) > 1:
    return ParseFailure(
        FailureKind.MULTIPLE_CODE_BLOCKS, f"{len(code)} code blocks; give exactly one"
    )
  program = parse_program(code[0].content, config, reject_multiple_functions=False)
  if isinstance(program, ParseFailure):
    return program
  return ParsedProgram(program)


def parse_response(
    task_type: TaskType, role: Role, text: str, config: ParseConfig = ParseConfig()
) -> Union[Parsed, ParseFailure]:
  """Dispatch on the (task type, role) pair."""
  if role is Role.PROPOSE:
    if task_type is TaskType.INDUCTION:
      return parse_induction_proposal(text, config)
    return parse_triplet_proposal(text, config)
  if task_type is TaskType.DEDUCTION:
    return parse_deduction_answer(text, config)
  if task_type is TaskType.ABDUCTION:
    return parse_abduction_answer(text, config)
  return parse_induction_answer(text, config)
