"""The two phases of a self-play step: proposing tasks and solving them (spec §2–4, §6).

Host-side orchestration only: prompts from the task layer, generation by the sampler,
parsing, validation and grading in the sandbox pool, rewards. Nothing here touches the
learner; a phase returns `Rollout`s (prompt ids, sampled ids, their log-probs, reward),
which the run turns into a training batch.

Sandbox work goes through `PhaseContext.lane` (`overlap.SandboxLane`). Every phase hands
each batch of responses to the lane as soon as the sampler reports it finished
(`Sampler.generate`'s `on_finished`), so with overlap on, proposals are validated and answers
graded while the rest of their batch decodes. `start_solve` and `start_score_proposals`
return as soon as their generation is done, with the grading still pending (`Pending`): it
runs on while the caller generates the next phase. Generation is the same call for call in
both modes, and each response's sandbox result depends on that response alone, so the
results are the same too.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Sequence

import jax
import numpy as np

from absolute_zero.selfplay.selfplay_config import SelfPlayConfig
from absolute_zero.selfplay.overlap import SandboxLane
from absolute_zero.tasks import grading, rewards, validators
from absolute_zero.tasks.buffers import TaskBuffers
from absolute_zero.tasks.parsers import ParseConfig, parse_response
from absolute_zero.tasks.prompts import ANSWER_CLOSE, PromptConfig, build_prompt
from absolute_zero.tasks.types import InductionTask, Role, TaskType, Triplet


@dataclasses.dataclass
class Rollout:
  """One sampled response and what it earned."""

  task_type: TaskType
  role: Role
  prompt_ids: tuple[int, ...]
  completion_ids: np.ndarray  # [n] int32, including the token that ended it
  logprobs: np.ndarray  # [n] float32, sampler log-probs at the run's temperature
  text: str
  finish_reason: str
  well_formed: bool = False
  status: str = ""  # 'ok' / 'correct' / 'wrong' / a parse-failure kind / sandbox status
  valid: bool = False  # proposers: the sandbox accepted the proposal
  solve_rate: float | None = None  # proposers: mean score of the n solver samples
  reward: float = 0.0


@dataclasses.dataclass(frozen=True)
class PhaseContext:
  """Everything a phase uses besides the buffers and the randomness."""

  sampler: Any  # absolute_zero.sampler.Sampler (or anything with the same generate())
  tokenizer: Any
  pool: Any  # absolute_zero.sandbox.SandboxPool
  config: SelfPlayConfig
  # Where sandbox work runs (overlap.SandboxLane); None: inline, in the serial order.
  lane: SandboxLane | None = None

  @property
  def sandbox(self) -> SandboxLane:
    return self.lane if self.lane is not None else SandboxLane(overlap=False)

  # The run's prompt, parse, validation and reward settings (one source: the config).
  @property
  def prompt_config(self) -> PromptConfig:
    return self.config.prompts

  @property
  def parse_config(self) -> ParseConfig:
    return self.config.parsing

  @property
  def validator_config(self) -> validators.ValidatorConfig:
    return self.config.validation

  @property
  def reward_config(self) -> rewards.RewardConfig:
    return self.config.rewards


@dataclasses.dataclass
class ProposeOutcome:
  rollouts: list[Rollout]
  tasks: list[Triplet | InductionTask | None]  # the accepted task per rollout, or None
  accepted: dict[TaskType, list]  # new valid triplets / induction tasks per type


def _generate_sets(
    ctx: PhaseContext,
    prompts: Sequence[str],
    max_new_tokens: int,
    n: int,
    key: jax.Array,
    stops: Sequence[tuple[str, ...]] | None = None,
    weights: Sequence[float] | None = None,
    on_finished: Callable[[list[int], list], None] | None = None,
) -> Iterator[tuple[list[int], list]]:
  """Completions per stop set: yields (prompt indices, their completions, prompt-major).

  `stops[i]`: the stop strings of prompt i (default: the closing tag for all). Prompts
  with different stop strings are sampled in one call per stop set; with several sets, set
  k (in sorted order) gets the key `fold_in(key, k)`. `weights[i]` (default all equal):
  the sandbox work prompt i's answers will need; the sets are generated heaviest first, so
  that their grading can overlap the generation of the rest. The order of the calls does
  not change their results (each has its own key).

  `on_finished(rows, completions)`: every completion once, with its row `i * n + s`
  (prompt i, sample s), as soon as the sampler reports it final (`Sampler.generate`'s
  `on_finished`: while the rest of its batch decodes); completions a sampler returns
  without reporting them are passed when its call returns.
  """
  if not prompts:
    return

  def sample(idx: list[int], stop: tuple[str, ...], rng: jax.Array) -> list:
    reported: dict[int, Any] = {}  # position in this call's output -> reported completion

    def report(completions: list) -> None:
      for c in completions:
        reported[c.prompt_index * n + c.sample_index] = c
      on_finished([idx[c.prompt_index] * n + c.sample_index for c in completions], completions)

    out = ctx.sampler.generate(
        [prompts[i] for i in idx],
        max_new_tokens=max_new_tokens,
        temperature=ctx.config.temperature,
        top_p=ctx.config.top_p,
        n=n,
        stop=stop,
        rng=rng,
        **({"on_finished": report} if on_finished is not None else {}),
    )
    if on_finished is not None:
      swapped = [j for j, c in reported.items() if out[j] is not c]
      if swapped:
        raise RuntimeError(
            f"the sampler reported completions {swapped[:5]} finished, then returned others "
            "in their place (on_finished must get the returned objects)"
        )
      rest = [j for j in range(len(out)) if j not in reported]
      if rest:
        on_finished([idx[j // n] * n + j % n for j in rest], [out[j] for j in rest])
    return out

  stops = [(ANSWER_CLOSE,)] * len(prompts) if stops is None else list(stops)
  sets = sorted(set(stops))
  if len(sets) == 1:
    everyone = list(range(len(prompts)))
    yield everyone, sample(everyone, sets[0], key)
    return
  members = [[i for i, s in enumerate(stops) if s == stop] for stop in sets]
  weight = [sum(weights[i] for i in idx) if weights is not None else 0.0 for idx in members]
  for k in sorted(range(len(sets)), key=lambda k: -weight[k]):  # stable: ties keep k order
    yield members[k], sample(members[k], sets[k], jax.random.fold_in(key, k))


def _generate(
    ctx: PhaseContext,
    prompts: Sequence[str],
    max_new_tokens: int,
    n: int,
    key: jax.Array,
    stops: Sequence[tuple[str, ...]] | None = None,
    on_finished: Callable[[list[int], list], None] | None = None,
):
  """Completions of every prompt, `n` each, prompt-major (`_generate_sets`, merged)."""
  out: list = [None] * (len(prompts) * n)
  sets = _generate_sets(ctx, prompts, max_new_tokens, n, key, stops, on_finished=on_finished)
  for idx, completions in sets:
    for j, i in enumerate(idx):
      out[i * n : (i + 1) * n] = completions[j * n : (j + 1) * n]
  return out


def _response_text(completion, prefix: str = "", suffix: str = ANSWER_CLOSE) -> str:
  """The whole response as the parser reads it.

  `prefix` is the part of the response the prompt already holds (an opened answer block,
  `PromptConfig.response_prefix`). The sampler cuts text before the stop string, so a
  completion that stopped gets `suffix` (`PromptConfig.response_suffix`: the closing tag,
  or the closing fence and tag of an opened code field) put back.
  """
  if completion.finish_reason == "stop":
    return prefix + completion.text + suffix
  return prefix + completion.text


def _rollout(ctx: PhaseContext, task_type: TaskType, role: Role, completion) -> Rollout:
  prompts = ctx.prompt_config
  return Rollout(
      task_type=task_type,
      role=role,
      prompt_ids=tuple(completion.prompt_token_ids),
      completion_ids=np.asarray(completion.token_ids, np.int32),
      logprobs=np.asarray(completion.logprobs, np.float32),
      text=_response_text(
          completion,
          prompts.response_prefix(task_type, role),
          prompts.response_suffix(task_type, role),
      ),
      finish_reason=completion.finish_reason,
  )


def _fits(ctx: PhaseContext, prompt: str) -> bool:
  # Encoded as the sampler does: untrusted text in the prompt stays plain text.
  return len(ctx.tokenizer.encode(prompt)) <= ctx.config.max_prompt_tokens


def proposer_prompt(
    ctx: PhaseContext, task_type: TaskType, buffers: TaskBuffers, rng: np.random.Generator
) -> tuple[str, str | None]:
  """(prompt, induction program or None). References shrink until the prompt fits."""
  if task_type is TaskType.INDUCTION:
    program = buffers.sample_induction_programs(1, rng)[0]
    prompt = build_prompt(task_type, Role.PROPOSE, program=program, config=ctx.prompt_config)
    if not _fits(ctx, prompt):
      raise ValueError(
          f"induction proposer prompt exceeds max_prompt_tokens=" f"{ctx.config.max_prompt_tokens}"
      )
    return prompt, program
  k = ctx.config.num_references
  while True:
    refs = buffers[task_type].sample_references(k, rng)
    prompt = build_prompt(task_type, Role.PROPOSE, references=refs, config=ctx.prompt_config)
    if _fits(ctx, prompt) or k == 1:
      if not _fits(ctx, prompt):
        raise ValueError(
            f"{task_type.value} proposer prompt with one reference exceeds "
            f"max_prompt_tokens={ctx.config.max_prompt_tokens}"
        )
      return prompt, None
    k -= 1


def propose(
    ctx: PhaseContext,
    task_types: Sequence[TaskType],
    batch_size: int,
    buffers: TaskBuffers,
    rng: np.random.Generator,
    key: jax.Array,
) -> ProposeOutcome:
  """`batch_size` proposals per task type, validated in the sandbox: each batch of
  proposals the sampler reports finished is parsed and submitted to `ctx.lane` while the
  rest decode (one sandbox batch per kind and batch); returns once all are validated."""
  plan = []  # (task_type, prompt, induction program)
  for task_type in task_types:
    for _ in range(batch_size):
      prompt, program = proposer_prompt(ctx, task_type, buffers, rng)
      plan.append((task_type, prompt, program))
  n = len(plan)
  rollouts: list = [None] * n
  chunks = []  # (rows, future of their validation results)
  lane = ctx.sandbox

  def validate_finished(rows: list[int], completions: list) -> None:
    # Proposals are validated as they finish, on the lane, while the rest decode. The
    # solver's tasks come from the buffers validation fills, so nothing else can overlap it.
    for r, c in zip(rows, completions):
      rollouts[r] = _rollout(ctx, plan[r][0], Role.PROPOSE, c)
    finished = [rollouts[r] for r in rows]
    parsed = [parse_response(x.task_type, Role.PROPOSE, x.text, ctx.parse_config) for x in finished]
    programs = [plan[r][2] for r in rows]
    chunks.append((rows, lane.submit(_validate, ctx, finished, parsed, programs)))

  _generate(
      ctx,
      [p for _, p, _ in plan],
      ctx.config.max_proposer_tokens,
      1,
      key,
      on_finished=validate_finished,
  )
  results: dict[int, Any] = {}
  for (rows, _), out in zip(chunks, lane.wait([f for _, f in chunks])):
    results.update({rows[j]: res for j, res in out.items()})

  tasks: list = [None] * n
  accepted: dict[TaskType, list] = {t: [] for t in task_types}
  for i, rollout in enumerate(rollouts):
    res = results[i]
    rollout.well_formed, rollout.status, rollout.valid = res.well_formed, res.status, res.valid
    if res.valid:
      tasks[i] = res.triplet if rollout.task_type is not TaskType.INDUCTION else res.task
      accepted[rollout.task_type].append(tasks[i])
  return ProposeOutcome(rollouts=rollouts, tasks=tasks, accepted=accepted)


def _validate(ctx: PhaseContext, rollouts, parsed, programs) -> dict[int, Any]:
  """Validation result per proposer rollout index (one sandbox batch per kind)."""
  triplet_idx = [i for i, r in enumerate(rollouts) if r.task_type is not TaskType.INDUCTION]
  induction_idx = [i for i, r in enumerate(rollouts) if r.task_type is TaskType.INDUCTION]
  results: dict[int, Any] = {}
  if triplet_idx:
    out = validators.validate_triplet_proposals(ctx.pool, [parsed[i] for i in triplet_idx])
    results.update({i: res for i, res in zip(triplet_idx, out)})
  if induction_idx:
    out = validators.validate_induction_proposals(
        ctx.pool, [(programs[i], parsed[i]) for i in induction_idx], ctx.validator_config
    )
    results.update({i: res for i, res in zip(induction_idx, out)})
  return results


@dataclasses.dataclass
class Pending:
  """Rollouts whose grading may still be running on `lane`; `result()` waits for it.

  Until then the rollouts' grades and rewards are not set: read nothing but their
  generation fields (ids, log-probs, text)."""

  rollouts: list
  futures: list
  lane: SandboxLane
  then: Callable[[], None] | None = None  # runs once the grading is done

  def result(self) -> list:
    if self.futures:
      self.lane.wait(self.futures)
      self.futures = []
    if self.then is not None:
      then, self.then = self.then, None
      then()
    return self.rollouts


def _sandbox_weight(task_type: TaskType, task) -> float:
  """Sandbox jobs one answer's grading may take: none for deduction (compared as values),
  one for abduction, one per held-out pair for induction (at most)."""
  if task_type is TaskType.DEDUCTION:
    return 0.0
  if task_type is TaskType.INDUCTION:
    return float(max(1, len(task.held_out)))
  return 1.0


def _grade(ctx: PhaseContext, part: list[tuple[Rollout, Any]]) -> None:
  """Parses and grades solver rollouts (with their tasks); one sandbox batch per type."""
  parsed = [parse_response(r.task_type, Role.SOLVE, r.text, ctx.parse_config) for r, _ in part]
  for task_type in dict.fromkeys(r.task_type for r, _ in part):
    idx = [j for j, (r, _) in enumerate(part) if r.task_type is task_type]
    outcomes = grading.grade_answers(
        ctx.pool,
        task_type,
        [parsed[j] for j in idx],
        [part[j][1] for j in idx],
        ctx.reward_config,
    )
    for j, outcome in zip(idx, outcomes):
      r = part[j][0]
      r.well_formed, r.status = outcome.well_formed, outcome.status
      r.solve_rate = outcome.score
      r.reward = rewards.final_solver_reward(outcome.well_formed, outcome.score, ctx.reward_config)


def start_solve(
    ctx: PhaseContext,
    items: Sequence[tuple[TaskType, Triplet | InductionTask]],
    n: int,
    key: jax.Array,
) -> Pending:
  """`solve`, returning once generation is done; answers are graded on `ctx.lane` as the
  sampler reports them finished, while the rest of their batch and the next stop set
  (heaviest grading first) decode."""
  lane = ctx.sandbox
  if not items:
    return Pending([], [], lane)
  prompts = [build_prompt(t, Role.SOLVE, task=task, config=ctx.prompt_config) for t, task in items]
  stops = [ctx.prompt_config.stop_strings(t, Role.SOLVE) for t, _ in items]
  weights = [_sandbox_weight(t, task) for t, task in items]
  rollouts: list = [None] * (len(items) * n)
  futures = []

  def grade_finished(rows: list[int], completions: list) -> None:
    part = []
    for row, completion in zip(rows, completions):
      task_type, task = items[row // n]
      rollouts[row] = _rollout(ctx, task_type, Role.SOLVE, completion)
      part.append((rollouts[row], task))
    futures.append(lane.submit(_grade, ctx, part))

  for _ in _generate_sets(
      ctx,
      prompts,
      ctx.config.max_solver_tokens,
      n,
      key,
      stops,
      weights,
      on_finished=grade_finished,
  ):
    pass
  return Pending(rollouts, futures, lane)


def solve(
    ctx: PhaseContext,
    items: Sequence[tuple[TaskType, Triplet | InductionTask]],
    n: int,
    key: jax.Array,
) -> list[Rollout]:
  """`n` solver samples per (task type, task), graded in the sandbox; task-major order."""
  return start_solve(ctx, items, n, key).result()


def _valid_tasks(proposals: ProposeOutcome) -> list[tuple[int, TaskType, Any]]:
  return [(i, r.task_type, proposals.tasks[i]) for i, r in enumerate(proposals.rollouts) if r.valid]


def _price(
    ctx: PhaseContext,
    proposals: ProposeOutcome,
    valid: list,
    estimates: list[Rollout],
    n: int,
    intrinsic: Sequence[float] | None,
) -> None:
  """Sets each proposer rollout's solve rate and reward from its graded estimates."""
  rates = {
      i: rewards.solve_rate([e.solve_rate for e in estimates[k * n : (k + 1) * n]])
      for k, (i, _, _) in enumerate(valid)
  }
  for i, rollout in enumerate(proposals.rollouts):
    rollout.solve_rate = rates.get(i)
    rollout.reward = rewards.final_proposer_reward(
        rollout.well_formed,
        rollout.valid,
        rollout.solve_rate,
        ctx.reward_config,
        intrinsic=intrinsic[i] if intrinsic is not None else 0.0,
    )


def score_proposals(
    ctx: PhaseContext,
    proposals: ProposeOutcome,
    n: int,
    key: jax.Array,
    intrinsic: Sequence[float] | None = None,
) -> list[Rollout]:
  """Proposer rewards from `n` solver samples per valid proposal (learnability, §4).

  `intrinsic`: per proposer rollout, its intrinsic bonus (`rewards.intrinsic_bonus`,
  added to valid proposals only); None: none. Returns the estimation rollouts (not
  trained on, but logged)."""
  valid = _valid_tasks(proposals)
  estimates = solve(ctx, [(t, task) for _, t, task in valid], n, key)
  _price(ctx, proposals, valid, estimates, n, intrinsic)
  return estimates


def start_score_proposals(
    ctx: PhaseContext,
    proposals: ProposeOutcome,
    n: int,
    key: jax.Array,
    intrinsic: Sequence[float] | None = None,
) -> Pending:
  """`score_proposals`, returning once generation is done; `result()` waits for the
  grading, then sets the proposer rewards and returns the estimation rollouts."""
  valid = _valid_tasks(proposals)
  pending = start_solve(ctx, [(t, task) for _, t, task in valid], n, key)
  pending.then = lambda: _price(ctx, proposals, valid, pending.rollouts, n, intrinsic)
  return pending
