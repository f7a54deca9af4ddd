"""The objects of Absolute Zero: task types, roles, triplets and induction tasks.

A triplet ``(program, input, output)`` holds Python source defining ``f``, the argument
list as Python literals (``"[1, 2], 'ab'"`` means ``f([1, 2], 'ab')``) and ``repr`` of
the result as computed by the sandbox. Everything here is an immutable plain value that
serialises to JSON-able dicts, so buffers and checkpoints can store it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class TaskType(enum.Enum):
  """The three task types; ``reference_name`` is the reference implementation's name."""

  DEDUCTION = "deduction"  # solver sees (p, i), answers o
  ABDUCTION = "abduction"  # solver sees (p, o), answers an input i'
  INDUCTION = "induction"  # solver sees half the (i, o) pairs + message, answers p'

  @property
  def reference_name(self) -> str:
    return _REFERENCE_NAMES[self]

  @classmethod
  def from_name(cls, name: str) -> "TaskType":
    """Accepts ours ('deduction') or the reference's ('code_o')."""
    for member in cls:
      if name in (member.value, member.reference_name):
        return member
    raise ValueError(
        f"unknown task type {name!r}; expected one of "
        f"{[m.value for m in cls] + [m.reference_name for m in cls]}"
    )


_REFERENCE_NAMES = {
    TaskType.DEDUCTION: "code_o",
    TaskType.ABDUCTION: "code_i",
    TaskType.INDUCTION: "code_f",
}


class Role(enum.Enum):
  """The policy plays both roles for every task type: six (task, role) groups."""

  PROPOSE = "propose"
  SOLVE = "solve"


@dataclass(frozen=True)
class Triplet:
  """One ``(p, i, o)`` triplet; ``output`` is ``repr(f(*input))`` from the sandbox."""

  program: str
  input: str
  output: str

  def to_dict(self) -> dict[str, str]:
    return {"program": self.program, "input": self.input, "output": self.output}

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> "Triplet":
    return cls(program=str(data["program"]), input=str(data["input"]), output=str(data["output"]))


@dataclass(frozen=True)
class IOPair:
  """One input literal and the ``repr`` of its output, as the sandbox computed it."""

  input: str
  output: str

  def to_dict(self) -> dict[str, str]:
    return {"input": self.input, "output": self.output}

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> "IOPair":
    return cls(input=str(data["input"]), output=str(data["output"]))


@dataclass(frozen=True)
class InductionTask:
  """An induction task: the solver sees ``shown`` and ``message`` and must write a
  program that reproduces every pair in ``held_out``. ``program`` is the hidden
  buffer program the pairs came from (never shown to the solver)."""

  program: str
  shown: tuple[IOPair, ...]
  held_out: tuple[IOPair, ...]
  message: str

  def __post_init__(self) -> None:
    # Accept lists for convenience but store tuples so the object stays hashable.
    object.__setattr__(self, "shown", tuple(self.shown))
    object.__setattr__(self, "held_out", tuple(self.held_out))

  @property
  def inputs(self) -> tuple[str, ...]:
    """All inputs in proposal order: shown first, then held out."""
    return tuple(p.input for p in self.shown + self.held_out)

  def to_dict(self) -> dict[str, Any]:
    return {
        "program": self.program,
        "shown": [p.to_dict() for p in self.shown],
        "held_out": [p.to_dict() for p in self.held_out],
        "message": self.message,
    }

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> "InductionTask":
    return cls(
        program=str(data["program"]),
        shown=tuple(IOPair.from_dict(p) for p in data["shown"]),
        held_out=tuple(IOPair.from_dict(p) for p in data["held_out"]),
        message=str(data["message"]),
    )


# The run starts from this single triplet (spec §3); no human-written task enters.
ZERO_TRIPLET = Triplet(
    program="def f(x):\n    return x",
    input="'Hello World'",
    output="'Hello World'",
)
