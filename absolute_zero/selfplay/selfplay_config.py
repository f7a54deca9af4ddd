"""Configuration of a self-play run (spec §2–6), as one frozen dataclass."""

from __future__ import annotations

import dataclasses

from absolute_zero.tasks.parsers import ParseConfig
from absolute_zero.tasks.prompts import PromptConfig
from absolute_zero.tasks.rewards import RewardConfig
from absolute_zero.tasks.types import TaskType
from absolute_zero.tasks.validators import ValidatorConfig

ALL_TASK_TYPES = (TaskType.DEDUCTION, TaskType.ABDUCTION, TaskType.INDUCTION)


def parse_task_types(spec: str | list[str] | tuple) -> tuple[TaskType, ...]:
  """'deduction,abduction' -> (DEDUCTION, ABDUCTION) in canonical order; clear errors."""
  names = spec.split(",") if isinstance(spec, str) else list(spec)
  names = [n.strip() for n in names if str(n).strip()]
  if not names:
    raise ValueError("--task_types is empty; choose any of deduction, abduction, induction")
  chosen = set()
  for name in names:
    try:
      chosen.add(TaskType.from_name(name))
    except (ValueError, KeyError):
      raise ValueError(
          f"unknown task type {name!r}; choose any of deduction, abduction, induction "
          "(reference names code_o, code_i, code_f also work)"
      ) from None
  return tuple(t for t in ALL_TASK_TYPES if t in chosen)


@dataclasses.dataclass(frozen=True)
class SelfPlayConfig:
  """What one self-play step does. Defaults are the reference's (spec §5–6)."""

  task_types: tuple[TaskType, ...] = ALL_TASK_TYPES
  train_proposer: bool = True
  batch_size: int = 64  # tasks per (task type, role) per step
  n_solver_samples: int = 8  # solver samples per new proposal (proposer reward)
  num_references: int = 6  # K references shown to deduction/abduction proposers
  num_induction_inputs: int = 10  # inputs asked of the induction proposer
  seed_batch_factor: int = 4  # seeding fills buffers to batch_size * this
  max_seed_rounds: int = 20  # give up seeding after this many proposer rounds
  max_prompt_tokens: int = 6144
  max_proposer_tokens: int = 8096  # new tokens per proposer response
  max_solver_tokens: int = 8096  # new tokens per solver response
  temperature: float = 1.0
  top_p: float = 1.0
  solver_task_strategy: str = "max_new"  # or 'uniform'
  seed: int = 0
  # Wall-clock seconds per sandboxed job; also the limit the proposer prompt states.
  sandbox_timeout_s: float = 10.0
  # Validate proposals and grade answers in the sandbox on a background thread as their
  # rows finish, while the device goes on generating (selfplay/overlap.py, phases.py).
  # Scheduling only: results equal the serial order.
  overlap_sandbox: bool = True
  # What the prompts say, how responses are parsed, how proposals are validated and
  # rewarded. Values used in two places are defined once above and copied in by
  # __post_init__: num_induction_inputs (prompt and parser), sandbox_timeout_s (the time
  # the prompt states), n_solver_samples (the reward's sample count).
  prompts: PromptConfig = PromptConfig()
  parsing: ParseConfig = ParseConfig()
  validation: ValidatorConfig = ValidatorConfig()
  rewards: RewardConfig = RewardConfig()

  def __post_init__(self):
    derived = {
        "prompts": dataclasses.replace(
            self.prompts, num_inputs=self.num_induction_inputs, time_limit_s=self.sandbox_timeout_s
        ),
        "parsing": dataclasses.replace(self.parsing, num_inputs=self.num_induction_inputs),
        "rewards": dataclasses.replace(self.rewards, n_samples=self.n_solver_samples),
    }
    for name, value in derived.items():
      object.__setattr__(self, name, value)
    self._check()

  def _check(self):
    if not self.task_types:
      raise ValueError("task_types must name at least one task type")
    for name in (
        "batch_size",
        "n_solver_samples",
        "num_references",
        "num_induction_inputs",
        "seed_batch_factor",
        "max_prompt_tokens",
        "max_proposer_tokens",
        "max_solver_tokens",
    ):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.max_seed_rounds < 0:
      raise ValueError(f"max_seed_rounds must be >= 0, got {self.max_seed_rounds}")
    if not self.temperature > 0:
      raise ValueError(
          "temperature must be > 0: the policy gradient needs sampled "
          f"rollouts and their log-probs (got {self.temperature})"
      )
    if not 0 < self.top_p <= 1:
      raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
    if self.solver_task_strategy not in ("max_new", "uniform"):
      raise ValueError(
          f"solver_task_strategy must be 'max_new' or 'uniform', got "
          f"{self.solver_task_strategy!r}"
      )

    if not self.sandbox_timeout_s > 0:
      raise ValueError(f"sandbox_timeout_s must be > 0, got {self.sandbox_timeout_s}")

  def to_dict(self) -> dict:
    """Plain JSON types (task types by name; the prompts' chat `wrap` callable by presence)."""
    wrap = self.prompts.wrap
    d = dataclasses.asdict(
        dataclasses.replace(self, prompts=dataclasses.replace(self.prompts, wrap=None))
    )
    d["task_types"] = [t.value for t in self.task_types]
    d["prompts"]["wrap"] = None if wrap is None else getattr(wrap, "__name__", "custom")
    return d
