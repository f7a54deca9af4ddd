"""Buffers: dedup, uniform and newest-first sampling, growth, JSON state round trip."""

import json
from collections import Counter

import numpy as np
import pytest

from absolute_zero.tasks.buffers import TaskBuffer, TaskBuffers, dedup_key, seed_target
from absolute_zero.tasks.types import ZERO_TRIPLET, InductionTask, IOPair, TaskType, Triplet


def triplet(i: int, inp: str = "1") -> Triplet:
  return Triplet(
      f"def f(x):\n    return x + {i}", inp, repr(int(inp) + i) if inp.isdigit() else "?"
  )


def test_dedup_by_program_and_input():
  buf = TaskBuffer(TaskType.DEDUCTION)
  assert buf.add([triplet(1), triplet(2)], step=0) == 2
  same_modulo_whitespace = Triplet("\ndef f(x):   \n    return x + 1\n\n", " 1 ", "2")
  assert buf.add([same_modulo_whitespace], step=1) == 0
  assert buf.add([triplet(1, "2")], step=1) == 1  # same program, new input: a new task
  assert buf.add([triplet(3), triplet(3)], step=2) == 1  # duplicates within one batch
  assert len(buf) == 4
  assert buf.steps == (0, 0, 1, 2)
  assert triplet(2) in buf


def test_induction_dedup_ignores_message():
  a = InductionTask("def f(x):\n    return x", (IOPair("1", "1"),), (IOPair("2", "2"),), "identity")
  b = InductionTask(
      "def f(x):\n    return x", (IOPair("1", "1"),), (IOPair("2", "2"),), "returns its input"
  )
  c = InductionTask("def f(x):\n    return x", (IOPair("2", "2"),), (IOPair("1", "1"),), "identity")
  assert dedup_key(a) == dedup_key(b) != dedup_key(c)
  buf = TaskBuffer(TaskType.INDUCTION)
  assert buf.add([a, b, c], step=0) == 2


def test_wrong_entry_type_is_rejected():
  with pytest.raises(TypeError, match="induction buffer holds InductionTask"):
    TaskBuffer(TaskType.INDUCTION).add([ZERO_TRIPLET], 0)


def test_reference_sampling_is_uniform_distinct_and_seeded():
  buf = TaskBuffer(TaskType.ABDUCTION)
  buf.add([triplet(i) for i in range(10)], step=0)
  rng = np.random.default_rng(0)
  counts = Counter()
  draws = 4000
  for _ in range(draws):
    refs = buf.sample_references(3, rng)
    assert len(set(refs)) == 3
    counts.update(refs)
  # each entry appears with probability 3/10 per draw: mean 1200, sd ~29
  assert all(abs(c - 1200) < 150 for c in counts.values()), counts
  # same seed, same draw; the global numpy RNG plays no part
  np.random.seed(1)
  a = buf.sample_references(6, np.random.default_rng(7))
  np.random.seed(2)
  b = buf.sample_references(6, np.random.default_rng(7))
  assert a == b
  assert len(buf.sample_references(50, rng)) == 10  # never more than the buffer holds
  with pytest.raises(ValueError, match="empty"):
    TaskBuffer(TaskType.DEDUCTION).sample_references(2, rng)


def test_solver_sampling_max_new():
  buf = TaskBuffer(TaskType.DEDUCTION)
  old = [triplet(i) for i in range(10)]
  new = [triplet(100 + i) for i in range(3)]
  buf.add(old, step=3)
  buf.add(new, step=5)
  rng = np.random.default_rng(0)
  assert buf.count_since(5, window=1) == 3
  for _ in range(50):
    tasks = buf.sample_solver_tasks(4, rng, step=5)
    assert set(tasks[:3]) == set(new)  # all new ones first
    assert tasks[3] in set(old) | set(new)
    two = buf.sample_solver_tasks(2, rng, step=5)
    assert len(set(two)) == 2 and set(two) <= set(new)
  # step 6 with window 1 still counts step 5 as recent; step 7 does not
  assert buf.count_since(6, window=1) == 3
  assert buf.count_since(7, window=1) == 0
  assert buf.count_since(7, window=2) == 3
  # without recent entries, the draw is uniform over everything
  counts = Counter()
  for _ in range(2600):
    counts.update(buf.sample_solver_tasks(1, rng, step=9))
  assert len(counts) == 13 and all(abs(c - 200) < 60 for c in counts.values()), counts
  # asking for more than the buffer holds: with replacement
  assert len(buf.sample_solver_tasks(40, rng, step=9)) == 40
  assert TaskBuffer(TaskType.DEDUCTION).sample_solver_tasks(5, rng, step=0) == []


def test_solver_sampling_uniform_strategy_ignores_recency():
  buf = TaskBuffer(TaskType.DEDUCTION)
  buf.add([triplet(i) for i in range(20)], step=0)
  buf.add([triplet(99)], step=1)
  rng = np.random.default_rng(3)
  hits = sum(
      triplet(99) in buf.sample_solver_tasks(1, rng, step=1, strategy="uniform")
      for _ in range(2100)
  )
  assert abs(hits - 100) < 40  # 1/21 of draws, not all of them


def test_growth_and_state_round_trip():
  buffers = TaskBuffers.seeded()
  assert buffers.sizes() == {"deduction": 1, "abduction": 1, "induction": 0}
  for step in range(1, 4):
    buffers[TaskType.DEDUCTION].add([triplet(step), triplet(step + 10, "7")], step)
    buffers[TaskType.ABDUCTION].add([triplet(step + 20)], step)
    buffers[TaskType.INDUCTION].add(
        [
            InductionTask(
                triplet(step).program,
                (IOPair("1", "2"),),
                (IOPair("3", "4"), IOPair("'é'", "None")),
                f"m{step}",
            )
        ],
        step,
    )
  assert buffers.sizes() == {"deduction": 7, "abduction": 4, "induction": 3}
  state = json.loads(json.dumps(buffers.state_dict()))  # JSON-able
  restored = TaskBuffers()
  restored.load_state_dict(state)
  for t in TaskType:
    assert restored[t].entries == buffers[t].entries
    assert restored[t].steps == buffers[t].steps
  # dedup keys come back too, and sampling continues identically
  assert restored[TaskType.DEDUCTION].add([triplet(1)], 9) == 0
  a = buffers[TaskType.DEDUCTION].sample_solver_tasks(5, np.random.default_rng(4), step=3)
  b = restored[TaskType.DEDUCTION].sample_solver_tasks(5, np.random.default_rng(4), step=3)
  assert a == b
  with pytest.raises(ValueError, match="deduction buffer"):
    restored[TaskType.ABDUCTION].load_state_dict(state["deduction"])


def test_induction_program_pool():
  buffers = TaskBuffers.seeded()
  buffers[TaskType.DEDUCTION].add([triplet(1), triplet(1, "5")], 1)
  buffers[TaskType.ABDUCTION].add([triplet(1, "9"), triplet(2)], 1)
  assert buffers.programs() == [ZERO_TRIPLET.program, triplet(1).program, triplet(2).program]
  got = buffers.sample_induction_programs(3000, np.random.default_rng(0))
  counts = Counter(got)
  assert all(abs(c - 1000) < 120 for c in counts.values()), counts
  with pytest.raises(ValueError, match="seed"):
    TaskBuffers().sample_induction_programs(1, np.random.default_rng(0))


def test_seed_target():
  assert seed_target(64) == 256
  assert seed_target(8, 2) == 16
