"""Prompt builders for the six (task type, role) pairs, and writers of the answer format.

Prompts are plain completion-style text, which base models follow best (a chat template
gave 0 valid proposals on SmolLM2, measured when the prompts were written). Instruct models can pass ``wrap``, a
callable that turns the finished prompt into their chat format (``chat_wrap(tokenizer)``).

Every prompt is untrusted text as far as the tokenizer is concerned: programs, inputs,
outputs and messages come from models and buffers, so a prompt str is encoded as plain text
(``Tokenizer.encode`` parses no control tokens in a str). Only a wrap's ``TemplateText``
markers (``<|im_start|>``, ``<start_of_turn>``, ...) are encoded as control tokens.

The answer format (read by ``parsers.py``; ``render_*`` below write it)
-----------------------------------------------------------------------
A completion is free-form reasoning followed by exactly one answer block::

    ...reasoning...
    <answer>
    PAYLOAD
    </answer>

Text after ``</answer>`` is ignored (samplers should stop there). PAYLOAD per pair:

* deduction / abduction proposer: one fenced code block and one fenced input block::

      ```python
      def f(a, b):
          return a + b
      ```
      ```input
      [1, 2], 3
      ```

  The program defines one top-level function ``f`` (imports, classes and nested
  functions allowed); the input is the argument list as Python literals.
* induction proposer: ``num_inputs`` fenced ``input`` blocks, then one ``message`` block::

      ```input
      'abc'
      ```
      ...
      ```message
      The function counts the vowels of a word.
      ```

* deduction solver: the output as a Python literal, bare (``<answer>[3, 4]</answer>``);
  one fenced block around it is also accepted.
* abduction solver: the argument list as Python literals, bare or in one fenced block.
* induction solver: one fenced ``python`` block defining ``f``.

A fence opens with a line starting with three backticks and an info word (``python``,
``input``, ``output``, ``message``) and closes with a line of three backticks (or
backticks ending the last content line). Fences never nest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from absolute_zero.tasks.types import InductionTask, IOPair, Role, TaskType, Triplet

ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"
FENCE = "```"

# Reference list of banned modules/names (spec §2); shown to the proposer so it can
# avoid them. The sandbox enforces the real check.
REFERENCE_BANNED_WORDS: tuple[str, ...] = (
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
)

ChatWrap = Callable[[str], str]


@dataclass(frozen=True)
class PromptConfig:
  """What the prompts say; ``wrap`` (optional) turns a finished prompt into chat form."""

  banned_words: tuple[str, ...] = REFERENCE_BANNED_WORDS
  num_inputs: int = 10  # induction proposer: how many inputs to ask for
  time_limit_s: float = 10.0  # stated to the proposer; the sandbox enforces its own
  # Its control markers count only in a `tokenizers.TemplateText` (see `chat_wrap`); a
  # plain str from `wrap` is encoded as plain text throughout.
  wrap: Optional[ChatWrap] = None
  # End every prompt with an opened answer block (``<answer>`` and a newline), as
  # completion-style templates open the response for a base model: the completion is the
  # payload and ``</answer>``. Small base models rarely open the block themselves (Gemma 3
  # 270M: 2/32 well-formed deduction answers without, 9/32 with). It also skips the
  # reasoning before the answer, so the reference setting for capable models is False.
  open_answer: bool = False
  # With ``open_answer``, solver answers become template fields, as a completion-style
  # template opens each field for a base model: deduction and abduction answers (one
  # literal) end at the first newline, which closes the block; the induction answer gets
  # its ```python block opened too, and ends at the closing fence (or ``</answer>``),
  # after which the template closes the fence and the block. The format rule is
  # unchanged (the literal must parse, the program must define ``f``); what changes is
  # where sampling stops. Gemma 3 270M otherwise ran past its literal into prose or
  # nested tags in 24 of 24 demo answers. Without ``open_answer`` it has no effect.
  single_line_answers: bool = False

  @property
  def _fields(self) -> bool:
    return self.open_answer and self.single_line_answers

  def _code_field(self, task_type: TaskType, role: Role) -> bool:
    return self._fields and role is Role.SOLVE and task_type is TaskType.INDUCTION

  def stop_strings(self, task_type: TaskType, role: Role) -> tuple[str, ...]:
    """Where sampling stops for a (task type, role): the closing tag, and with
    ``single_line_answers`` the end of the solver's field (a newline after a literal,
    the closing fence after a program)."""
    if self._code_field(task_type, role):
      return (ANSWER_CLOSE, FENCE)
    if (
        self._fields
        and role is Role.SOLVE
        and task_type in (TaskType.DEDUCTION, TaskType.ABDUCTION)
    ):
      return (ANSWER_CLOSE, "\n")
    return (ANSWER_CLOSE,)

  def response_prefix(self, task_type: TaskType, role: Role) -> str:
    """Text the prompt ends with that belongs to the response (the parser prepends it)."""
    if not self.open_answer:
      return ""
    return f"{ANSWER_OPEN}\n" + (f"{FENCE}python\n" if self._code_field(task_type, role) else "")

  def response_suffix(self, task_type: TaskType, role: Role) -> str:
    """Text the template adds after a completion that stopped at a stop string."""
    if self._code_field(task_type, role):
      return f"\n{FENCE}\n{ANSWER_CLOSE}"
    return ANSWER_CLOSE


def chat_wrap(tokenizer) -> ChatWrap:
  """A ``PromptConfig.wrap`` that puts the prompt in one user turn of the tokenizer's chat
  template; the result is a ``TemplateText`` whose markers alone are control tokens.
  Raises ValueError (when called) for a tokenizer without a chat format."""

  def wrap(prompt: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}])

  return wrap


# --------------------------------------------------------------------------- writers


def _fenced(info: str, content: str) -> str:
  return f"{FENCE}{info}\n{content}\n{FENCE}"


def _answer(payload: str, reasoning: str = "") -> str:
  head = f"{reasoning.rstrip()}\n" if reasoning.strip() else ""
  return f"{head}{ANSWER_OPEN}\n{payload}\n{ANSWER_CLOSE}"


def render_triplet_proposal(program: str, input_literal: str, reasoning: str = "") -> str:
  """A well-formed deduction/abduction proposer completion."""
  return _answer(
      _fenced("python", program.strip("\n")) + "\n" + _fenced("input", input_literal.strip()),
      reasoning,
  )


def render_induction_proposal(inputs: Sequence[str], message: str, reasoning: str = "") -> str:
  """A well-formed induction proposer completion."""
  blocks = [_fenced("input", i.strip()) for i in inputs] + [_fenced("message", message.strip())]
  return _answer("\n".join(blocks), reasoning)


def render_literal_answer(literal: str, reasoning: str = "") -> str:
  """A well-formed deduction (output) or abduction (input) solver completion."""
  return _answer(literal.strip(), reasoning)


def render_program_answer(program: str, reasoning: str = "") -> str:
  """A well-formed induction solver completion."""
  return _answer(_fenced("python", program.strip("\n")), reasoning)


# --------------------------------------------------------------------------- pieces

_EXAMPLE_PROGRAM = (
    "def f(words, k):\n    kept = [w for w in words if len(w) > k]\n    return sorted(kept)"
)
_EXAMPLE_INPUT = "['tree', 'at', 'house'], 2"
_EXAMPLE_OUTPUT = "['house', 'tree']"

_RESPONSE_CUE = "\n### Response\n"


def _program_rules(config: PromptConfig) -> str:
  banned = ", ".join(config.banned_words)
  return (
      "Rules for the program:\n"
      "- It defines exactly one top-level function named `f` that takes at least one argument and returns a value.\n"
      "  Imports and classes go at the top; helper functions go inside `f`.\n"
      "- It is deterministic: same input, same output, every run.\n"
      "- No randomness, clocks, files, network, printing or global state.\n"
      f"- It finishes within {config.time_limit_s:g} seconds.\n"
      f"- Do not import or use these modules or names: {banned}.\n"
  )


_INPUT_RULES = (
    "Rules for the input:\n"
    "- Write the arguments of `f` as Python literals separated by commas, exactly as they would appear "
    "inside `f(...)`; put quotes around strings.\n"
)


def _show_triplet(index: int, triplet: Triplet) -> str:
  return (
      f"Program {index}:\n"
      f"{_fenced('python', triplet.program.strip())}\n"
      f"{_fenced('input', triplet.input.strip())}\n"
      f"{_fenced('output', triplet.output.strip())}\n"
  )


def _finish(body: str, config: PromptConfig, task_type: TaskType, role: Role) -> str:
  prompt = body.rstrip("\n") + "\n" + _RESPONSE_CUE
  prompt = config.wrap(prompt) if config.wrap is not None else prompt
  return prompt + config.response_prefix(task_type, role)


# --------------------------------------------------------------------------- proposers


def _triplet_proposer_prompt(goal: str, references: Sequence[Triplet], config: PromptConfig) -> str:
  if not references:
    raise ValueError("a deduction/abduction proposer prompt needs at least one reference triplet")
  shown = "\n".join(_show_triplet(i + 1, t) for i, t in enumerate(references))
  example = render_triplet_proposal(_EXAMPLE_PROGRAM, _EXAMPLE_INPUT, reasoning="(your plan)")
  body = (
      "## Task: invent a Python puzzle (a program and one input for it)\n\n"
      f"{goal}\n"
      "Your program must be new: clearly different from the examples below, not a copy or a renaming.\n\n"
      f"{_program_rules(config)}\n"
      f"{_INPUT_RULES}\n"
      "How to answer: first plan the puzzle in a few sentences. Then give the program in a ```python block and "
      "the input in an ```input block, both inside one answer block, like this:\n"
      f"{example}\n\n"
      "Programs written earlier, with an input and the output it produced:\n\n"
      f"{shown}"
  )
  return _finish(body, config, TaskType.DEDUCTION, Role.PROPOSE)


def deduction_proposer_prompt(
    references: Sequence[Triplet], config: PromptConfig = PromptConfig()
) -> str:
  """Ask for a new (program, input) whose output is hard to predict; K references shown."""
  goal = (
      "A solver will be shown your program and your input and must predict the exact output. "
      "Make the puzzle demanding: the output should only follow from careful, step-by-step tracing "
      "(loops, state that changes, data structures, recursion), yet the program must run correctly."
  )
  return _triplet_proposer_prompt(goal, references, config)


def abduction_proposer_prompt(
    references: Sequence[Triplet], config: PromptConfig = PromptConfig()
) -> str:
  """Ask for a new (program, input) whose input is hard to recover from the output."""
  goal = (
      "A solver will be shown your program and the output it returns on your input, and must find an input "
      "that produces that output (any such input counts). Make the puzzle demanding: working backwards "
      "from the output should take real reasoning, yet the program must run correctly."
  )
  return _triplet_proposer_prompt(goal, references, config)


def induction_proposer_prompt(program: str, config: PromptConfig = PromptConfig()) -> str:
  """Ask for ``config.num_inputs`` inputs to one buffer program and a message about it."""
  n = config.num_inputs
  example = render_induction_proposal(
      ["['tree', 'at', 'house'], 2", "[], 5", "['a', 'bb'], 0"],
      "Keep the words longer than k, in alphabetical order.",
      reasoning="(your plan)",
  )
  body = (
      "## Task: choose inputs for a program and describe it\n\n"
      f"Here is a program. It will be called as `f(<your input>)`.\n{_fenced('python', program.strip())}\n\n"
      f"Write {n} different inputs for `f`. The program runs on each; a solver then sees half of the "
      "input/output pairs and your message, and must write a program that reproduces the outputs of the "
      "other half. Choose inputs that together reveal what `f` does (cover ordinary and edge cases, "
      "varied outputs), and write a message that helps without giving the code away.\n\n"
      f"{_INPUT_RULES}"
      "- Every input must be valid for `f`: it must run without an error.\n\n"
      f"How to answer: first think about what `f` does. Then, inside one answer block, give the {n} "
      "inputs, each in its own ```input block, followed by one ```message block. The format, shown for "
      "another function with three inputs:\n"
      f"{example}\n"
  )
  return _finish(body, config, TaskType.INDUCTION, Role.PROPOSE)


# --------------------------------------------------------------------------- solvers


def deduction_solver_prompt(triplet: Triplet, config: PromptConfig = PromptConfig()) -> str:
  """Show (program, input); ask for the output."""
  example = render_literal_answer(_EXAMPLE_OUTPUT, reasoning="(your step-by-step trace)")
  body = (
      "## Task: predict the output of a Python function\n\n"
      f"{_fenced('python', triplet.program.strip())}\n"
      f"The function is called as `f({triplet.input.strip()})`.\n\n"
      "Trace the execution step by step. Then write the returned value as a Python literal "
      "(quotes around strings, a tuple for several values) in an answer block, like this:\n"
      f"{example}\n"
  )
  return _finish(body, config, TaskType.DEDUCTION, Role.SOLVE)


def abduction_solver_prompt(triplet: Triplet, config: PromptConfig = PromptConfig()) -> str:
  """Show (program, output); ask for any input producing it."""
  example = render_literal_answer(_EXAMPLE_INPUT, reasoning="(your reasoning)")
  body = (
      "## Task: find an input for a Python function\n\n"
      f"{_fenced('python', triplet.program.strip())}\n"
      f"Find arguments for `f` so that it returns:\n{_fenced('output', triplet.output.strip())}\n\n"
      "Any input that produces exactly this output is correct. Reason step by step. Then write the "
      "arguments as Python literals separated by commas, as they would appear inside `f(...)`, "
      "in an answer block, like this:\n"
      f"{example}\n"
  )
  return _finish(body, config, TaskType.ABDUCTION, Role.SOLVE)


def _show_pairs(pairs: Sequence[IOPair]) -> str:
  return "\n".join(
      f"Pair {i + 1}:\n{_fenced('input', p.input.strip())}\n{_fenced('output', p.output.strip())}"
      for i, p in enumerate(pairs)
  )


def induction_solver_prompt(task: InductionTask, config: PromptConfig = PromptConfig()) -> str:
  """Show the visible pairs and the message; ask for a program."""
  example = render_program_answer("def f(x):\n    return x", reasoning="(your reasoning)")
  body = (
      "## Task: write the function behind these examples\n\n"
      "A hidden Python function `f` turned each input below into its output. "
      "The person who chose the inputs left this message:\n"
      f"{_fenced('message', task.message.strip())}\n\n"
      f"{_show_pairs(task.shown)}\n\n"
      "Write a function `f` that gives the same output for these inputs and for other inputs of the same "
      "kind; it will be tested on inputs you have not seen.\n\n"
      f"{_program_rules(config)}\n"
      "Reason about the pattern first. Then give the program in a ```python block inside an answer "
      "block, like this:\n"
      f"{example}\n"
  )
  return _finish(body, config, TaskType.INDUCTION, Role.SOLVE)


def build_prompt(
    task_type: TaskType,
    role: Role,
    *,
    references: Sequence[Triplet] = (),
    program: Optional[str] = None,
    task: Optional[Triplet | InductionTask] = None,
    config: PromptConfig = PromptConfig(),
) -> str:
  """One entry point for all six pairs; raises ValueError when the needed argument is missing."""
  if role is Role.PROPOSE:
    if task_type is TaskType.DEDUCTION:
      return deduction_proposer_prompt(references, config)
    if task_type is TaskType.ABDUCTION:
      return abduction_proposer_prompt(references, config)
    if program is None:
      raise ValueError("the induction proposer prompt needs `program` (one buffer program)")
    return induction_proposer_prompt(program, config)
  if task_type is TaskType.INDUCTION:
    if not isinstance(task, InductionTask):
      raise ValueError(
          f"the induction solver prompt needs an InductionTask, got {type(task).__name__}"
      )
    return induction_solver_prompt(task, config)
  if not isinstance(task, Triplet):
    raise ValueError(
        f"the {task_type.value} solver prompt needs a Triplet, got {type(task).__name__}"
    )
  if task_type is TaskType.DEDUCTION:
    return deduction_solver_prompt(task, config)
  return abduction_solver_prompt(task, config)
