"""Task diversity of a self-play step: metrics per task type and intrinsic proposer bonuses.

The measures themselves (canonical programs, the program distance, complexity, value
types) are defined in `absolute_zero/tasks/diversity.py`; this module applies them to one
step's proposals against the buffers as they were before the step, and names the results
after `metric_names`. Everything here is host-side and cheap: programs are parsed, never
run. docs/method.md ("Task diversity") gives the formulas.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from absolute_zero.selfplay import metric_names as mn
from absolute_zero.tasks import diversity as div
from absolute_zero.tasks.buffers import TaskBuffers
from absolute_zero.tasks.rewards import RewardConfig, intrinsic_bonus
from absolute_zero.tasks.types import Role, TaskType

# Proposers that write the program; the induction proposer is shown a buffer program and
# writes inputs and a message, so the program terms of the intrinsic reward skip it.
PROGRAM_WRITERS = (TaskType.DEDUCTION, TaskType.ABDUCTION)


@dataclasses.dataclass
class StepDiversity:
  """What `measure_step` found.

  Attributes:
    metrics: flat metrics, `{task}/propose/{name}` and `types/{task}/{side}/{type}`.
    bonuses: per proposer rollout (the outcome's order), its intrinsic bonus: 0.0 unless
      the rollout is a valid deduction/abduction proposal and an intrinsic weight is on.
  """

  metrics: dict[str, float]
  bonuses: list[float]


def measure_step(
    index: div.BufferIndex,
    buffers: TaskBuffers,
    outcome,
    task_types: Sequence[TaskType],
    reward_config: RewardConfig = RewardConfig(),
) -> StepDiversity:
  """Diversity of the step's valid proposals against the buffers, before they are added.

  Args:
    index: the run's buffer index; synced to `buffers` here.
    buffers: the task buffers, not yet holding this step's proposals.
    outcome: the step's `phases.ProposeOutcome` (rollouts and their accepted tasks).
    task_types: the run's task types (metrics for each).
    reward_config: the intrinsic weights (bonuses are all 0.0 when both are 0).
  """
  index.sync(buffers)
  metrics: dict[str, float] = {}
  bonuses = [0.0] * len(outcome.rollouts)
  for task_type in task_types:
    name = f"{task_type.value}/{Role.PROPOSE.value}"
    rows = [
        (i, outcome.tasks[i])
        for i, r in enumerate(outcome.rollouts)
        if r.task_type is task_type and r.valid and outcome.tasks[i] is not None
    ]
    analyses = [div.analyse_program(task.program) for _, task in rows]
    keys = [
        div.fallback_key(task.program) if a is None else a.key
        for (_, task), a in zip(rows, analyses)
    ]
    metrics[f"{name}/{mn.DISTINCT_PROGRAMS}"] = len(set(keys))
    if task_type is TaskType.INDUCTION:
      metrics[f"{name}/{mn.DISTINCT_MESSAGES}"] = len(
          {div.normalize_message(task.message) for _, task in rows}
      )
    if not rows:
      continue
    metrics[f"{name}/{mn.NOVEL_SHARE}"] = float(
        np.mean([not index.contains(task_type, key) for key in keys])
    )
    analysed = [a for a in analyses if a is not None]
    distances = {id(a): index.nearest_distance(task_type, a.features) for a in analysed}
    if analysed:
      metrics[f"{name}/{mn.NN_DISTANCE_MEAN}"] = float(np.mean(list(distances.values())))
      metrics[f"{name}/{mn.AST_NODES_MEAN}"] = float(np.mean([a.ast_nodes for a in analysed]))
      metrics[f"{name}/{mn.CYCLOMATIC_MEAN}"] = float(np.mean([a.cyclomatic for a in analysed]))
    inputs, outputs = [], []
    for _, task in rows:
      task_inputs, task_outputs = div.task_io(task)
      inputs += task_inputs
      outputs += task_outputs
    for side, names in zip(mn.TYPE_SIDES, (inputs, outputs)):
      group = mn.distribution_group(task_type.value, side)
      metrics.update({f"{group}/{t}": share for t, share in div.type_shares(names).items()})
    if reward_config.intrinsic and task_type in PROGRAM_WRITERS:
      for (i, _), a in zip(rows, analyses):
        if a is not None:
          bonuses[i] = intrinsic_bonus(a.complexity_score, distances[id(a)], reward_config)
      metrics[f"{name}/{mn.INTRINSIC_REWARD_MEAN}"] = float(np.mean([bonuses[i] for i, _ in rows]))
  return StepDiversity(metrics=metrics, bonuses=bonuses)


def buffer_metrics(index: div.BufferIndex, buffers: TaskBuffers) -> dict[str, int]:
  """`buffer/{task}/distinct_programs` of every buffer (index synced to `buffers`)."""
  index.sync(buffers)
  return {
      f"{mn.BUFFER}/{t.value}/{mn.DISTINCT_PROGRAMS}": index.distinct_programs(t) for t in TaskType
  }
