"""Task buffers: one per task type, growing for the whole run (spec §2, §6).

* Entries are ``Triplet`` (deduction, abduction) or ``InductionTask`` (induction), each
  stored with the self-play step that added it.
* Dedup key: for a triplet ``(program, input)`` (the output follows from them); for an
  induction task ``(program, inputs in order)`` (a new message alone is not a new task).
  Programs are compared after stripping trailing whitespace of each line and blank lines
  at both ends. The reference dedups only its seed set (whole entries); deduping the whole
  buffer keeps repeated proposals from crowding the references and solver batches.
* Randomness only comes from a ``numpy.random.Generator`` passed in; no global RNG.
* ``state_dict()`` is JSON-able (lists, dicts, strings, ints) for checkpoints.
"""

from __future__ import annotations

from typing import Any, Generic, Sequence, TypeVar, Union

import numpy as np

from absolute_zero.tasks.types import ZERO_TRIPLET, InductionTask, TaskType, Triplet

Entry = Union[Triplet, InductionTask]
E = TypeVar("E", Triplet, InductionTask)


def normalize_program(program: str) -> str:
  """Program text as compared for dedup: no trailing spaces, no blank edge lines."""
  lines = [line.rstrip() for line in program.replace("\r\n", "\n").split("\n")]
  return "\n".join(lines).strip("\n")


def dedup_key(entry: Entry) -> tuple:
  """What makes two buffer entries the same task (see module docstring)."""
  if isinstance(entry, Triplet):
    return ("triplet", normalize_program(entry.program), entry.input.strip())
  if isinstance(entry, InductionTask):
    return ("induction", normalize_program(entry.program), tuple(i.strip() for i in entry.inputs))
  raise TypeError(f"buffer entries are Triplet or InductionTask, got {type(entry).__name__}")


class TaskBuffer(Generic[E]):
  """Append-only buffer of one task type with dedup and uniform / newest-first sampling."""

  def __init__(self, task_type: TaskType):
    self.task_type = task_type
    self._entries: list[E] = []
    self._steps: list[int] = []
    self._keys: set[tuple] = set()

  # ------------------------------------------------------------------ growth
  def add(self, entries: Sequence[E], step: int) -> int:
    """Append the entries not already present; returns how many were added."""
    added = 0
    for entry in entries:
      self._check_type(entry)
      key = dedup_key(entry)
      if key in self._keys:
        continue
      self._keys.add(key)
      self._entries.append(entry)
      self._steps.append(int(step))
      added += 1
    return added

  def _check_type(self, entry: Entry) -> None:
    want = InductionTask if self.task_type is TaskType.INDUCTION else Triplet
    if not isinstance(entry, want):
      raise TypeError(
          f"{self.task_type.value} buffer holds {want.__name__}, got {type(entry).__name__}"
      )

  def __len__(self) -> int:
    return len(self._entries)

  def __contains__(self, entry: Entry) -> bool:
    return dedup_key(entry) in self._keys

  @property
  def entries(self) -> tuple[E, ...]:
    return tuple(self._entries)

  @property
  def steps(self) -> tuple[int, ...]:
    return tuple(self._steps)

  def count_since(self, step: int, window: int) -> int:
    """Entries added in steps ``s`` with ``step - s <= window`` (reference
    ``get_recent_additions``); entries are in step order, so they are the last ones."""
    return sum(1 for s in self._steps if step - s <= window)

  # ------------------------------------------------------------------ sampling
  def sample_references(self, k: int, rng: np.random.Generator) -> list[E]:
    """``min(k, len)`` distinct entries drawn uniformly (proposer references, ``io_n``)."""
    if k < 0:
      raise ValueError(f"k must be >= 0, got {k}")
    if not self._entries:
      raise ValueError(
          f"the {self.task_type.value} buffer is empty: seed it before sampling references"
      )
    idx = rng.choice(len(self._entries), size=min(k, len(self._entries)), replace=False)
    return [self._entries[i] for i in idx]

  def sample_solver_tasks(
      self,
      n: int,
      rng: np.random.Generator,
      step: int,
      *,
      window: int = 1,
      strategy: str = "max_new",
  ) -> list[E]:
    """``n`` solver tasks (empty list if the buffer is empty).

    ``max_new`` (reference default): as many distinct entries as possible from those
    added within ``window`` steps, the rest drawn uniformly from the whole buffer
    (distinct while the buffer is big enough, with replacement beyond that).
    ``uniform``: all ``n`` drawn uniformly from the whole buffer.
    """
    if n < 0:
      raise ValueError(f"n must be >= 0, got {n}")
    if strategy not in ("max_new", "uniform"):
      raise ValueError(f"strategy must be 'max_new' or 'uniform', got {strategy!r}")
    size = len(self._entries)
    if size == 0 or n == 0:
      return []
    chosen: list[int] = []
    if strategy == "max_new":
      recent = self.count_since(step, window)
      take = min(recent, n)
      if take:
        chosen.extend(
            int(i) for i in (size - recent + rng.choice(recent, size=take, replace=False))
        )
    rest = n - len(chosen)
    if rest:
      chosen.extend(int(i) for i in rng.choice(size, size=rest, replace=rest > size))
    return [self._entries[i] for i in chosen]

  # ------------------------------------------------------------------ state
  def state_dict(self) -> dict[str, Any]:
    return {
        "task_type": self.task_type.value,
        "entries": [e.to_dict() for e in self._entries],
        "steps": list(self._steps),
    }

  def load_state_dict(self, state: dict[str, Any]) -> None:
    """Replace the contents with ``state`` (from ``state_dict``)."""
    task_type = TaskType.from_name(state["task_type"])
    if task_type is not self.task_type:
      raise ValueError(f"state is for the {task_type.value} buffer, this is {self.task_type.value}")
    entries, steps = state["entries"], state["steps"]
    if len(entries) != len(steps):
      raise ValueError(f"state has {len(entries)} entries but {len(steps)} steps")
    cls = InductionTask if task_type is TaskType.INDUCTION else Triplet
    self._entries, self._steps, self._keys = [], [], set()
    for data, step in zip(entries, steps):
      entry = cls.from_dict(data)
      self._keys.add(dedup_key(entry))
      self._entries.append(entry)
      self._steps.append(int(step))


class TaskBuffers:
  """The three buffers of a run, plus the program pool of the induction proposer."""

  def __init__(self) -> None:
    self.buffers: dict[TaskType, TaskBuffer] = {t: TaskBuffer(t) for t in TaskType}

  @classmethod
  def seeded(cls, seed: Triplet = ZERO_TRIPLET, step: int = 0) -> "TaskBuffers":
    """Buffers holding only the zero triplet in deduction and abduction (spec §3)."""
    buffers = cls()
    buffers[TaskType.DEDUCTION].add([seed], step)
    buffers[TaskType.ABDUCTION].add([seed], step)
    return buffers

  def __getitem__(self, task_type: TaskType) -> TaskBuffer:
    return self.buffers[task_type]

  def sizes(self) -> dict[str, int]:
    return {t.value: len(b) for t, b in self.buffers.items()}

  def programs(self) -> list[str]:
    """Distinct programs of the deduction and abduction buffers, first-seen order."""
    seen: dict[str, str] = {}
    for task_type in (TaskType.DEDUCTION, TaskType.ABDUCTION):
      for triplet in self.buffers[task_type].entries:
        seen.setdefault(normalize_program(triplet.program), triplet.program)
    return list(seen.values())

  def sample_induction_programs(self, n: int, rng: np.random.Generator) -> list[str]:
    """``n`` programs for induction proposer prompts, uniform over the distinct
    deduction+abduction programs (with replacement)."""
    programs = self.programs()
    if not programs:
      raise ValueError("no deduction/abduction programs yet: seed the buffers first")
    return [programs[int(i)] for i in rng.choice(len(programs), size=n, replace=True)]

  def state_dict(self) -> dict[str, Any]:
    return {t.value: b.state_dict() for t, b in self.buffers.items()}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    for task_type, buffer in self.buffers.items():
      buffer.load_state_dict(state[task_type.value])


def seed_target(batch_size: int, seed_batch_factor: int = 4) -> int:
  """Valid triplets wanted before training starts (spec §3: batch × factor)."""
  return batch_size * seed_batch_factor
