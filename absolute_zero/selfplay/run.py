"""One self-play run: seeding, then steps of propose -> solve -> reward -> update (spec §6).

`SelfPlayRun` owns the sampler, the learner state, the task buffers and the step counter;
the sandbox pool is passed in (the caller owns its lifetime). Randomness is derived from
(seed, step) rather than carried, so a run resumed from a checkpoint at step s draws
exactly what an uninterrupted run draws at step s + 1: exact resume needs only the train
state, the buffers and the step.

Multi-process (one JAX process per host): every process runs this same code with the same
seeds. The sampler returns the whole batch of completions on every process, the sandbox
pool is wrapped in `host_pool.HostShardedPool` (each host runs its share of every batch,
the results are gathered), so rollouts, rewards and buffer additions are identical on
every process, and the train step gets one global batch built from identical host copies.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import jax
import numpy as np

from absolute_zero import batching, distributed, learner, loss, sharding
from absolute_zero.sampler import Sampler, SamplerConfig
from absolute_zero.selfplay import step_diversity as diversity
from absolute_zero.selfplay import metric_names as mn
from absolute_zero.selfplay.selfplay_config import ALL_TASK_TYPES, SelfPlayConfig
from absolute_zero.selfplay.host_pool import HostShardedPool
from absolute_zero.selfplay.overlap import SandboxLane, compile_seconds
from absolute_zero.selfplay.phases import (
    PhaseContext,
    Rollout,
    propose,
    start_score_proposals,
    start_solve,
)
from absolute_zero.tasks import seed_data
from absolute_zero.tasks.buffers import TaskBuffers, seed_target
from absolute_zero.tasks.diversity import BufferIndex
from absolute_zero.tasks.types import Role, TaskType

ROLES = (Role.PROPOSE, Role.SOLVE)
GROUPS = tuple((t, r) for t in ALL_TASK_TYPES for r in ROLES)
_SEED_STREAM = 1_000_000  # key/rng stream offset for seeding rounds
# Training sequence lengths: steps of 1.25x-1.5x (less padding than powers of two, still few
# compiled shapes).
LENGTH_BUCKETS = (
    128,
    192,
    256,
    320,
    384,
    512,
    640,
    768,
    1024,
    1280,
    1536,
    2048,
    3072,
    4096,
    6144,
    8192,
    12288,
    16384,
)


def group_id(task_type: TaskType, role: Role) -> int:
  return GROUPS.index((task_type, role))


def group_name(task_type: TaskType, role: Role) -> str:
  return f"{task_type.value}/{role.value}"


class _Timed:
  """Proxy that adds the wall time of one method's calls to `self.seconds`."""

  def __init__(self, target, method: str):
    self._target, self._method, self.seconds = target, method, 0.0

  def __getattr__(self, name):
    attr = getattr(self._target, name)
    if name != self._method:
      return attr

    def timed(*args, **kwargs):
      start = time.perf_counter()
      try:
        return attr(*args, **kwargs)
      finally:
        self.seconds += time.perf_counter() - start

    return timed


class SelfPlayRun:
  """The state of a run and the step function."""

  def __init__(
      self,
      model_config,
      params,
      tokenizer,
      config: SelfPlayConfig,
      learner_config: learner.LearnerConfig,
      *,
      pool,
      mesh=None,
      sampler_config: SamplerConfig | None = None,
      log: Callable[[str], None] = lambda msg: None,
  ):
    if abs(learner_config.temperature - config.temperature) > 1e-9:
      raise ValueError(
          f"learner temperature {learner_config.temperature} must equal the "
          f"sampling temperature {config.temperature}"
      )
    self.model_config, self.config, self.learner_config = model_config, config, learner_config
    mesh = mesh if mesh is not None else sharding.single_device_mesh()  # one device: 1x1x1
    self.tokenizer, self.mesh, self.log = tokenizer, mesh, log
    self.sampler = Sampler(
        model_config, params, tokenizer, mesh=mesh, sampler_config=sampler_config
    )
    self._timed_sampler = _Timed(self.sampler, "generate")
    if distributed.process_count() > 1:
      # Every process gets the same batches; each runs its share in its own sandbox pool
      # and the results are gathered, so all processes see identical results.
      pool = HostShardedPool(pool)
    self.pool = pool
    self._timed_pool = _Timed(pool, "run_batch")
    # Sandbox work overlapped with generation (overlap.py). Not with several processes:
    # the sharded pool gathers results with device collectives, which every process must
    # issue in the same order, and a second thread would race the sampler's.
    self.lane = SandboxLane(overlap=config.overlap_sandbox and distributed.process_count() == 1)
    self.ctx = PhaseContext(
        sampler=self._timed_sampler,
        tokenizer=tokenizer,
        pool=self._timed_pool,
        config=config,
        lane=self.lane,
    )
    self.train_state = learner.init_train_state(params, learner_config, mesh, model_config)
    self.train_step = learner.make_train_step(model_config, learner_config, mesh)
    self.buffers = TaskBuffers.seeded()
    self.buffer_index = BufferIndex()  # canonical programs of the buffers (diversity)
    self.step = 0  # updates applied so far
    self.last_rollouts: dict[str, list[Rollout]] = {}  # of the last step, for logging
    dp = sharding.data_parallel_size(mesh)
    micro = learner_config.micro_batch_size or self.rows_per_step
    self.batch_shapes = batching.BatchShapes(length_buckets=LENGTH_BUCKETS, row_multiple=micro * dp)
    self.base_key = jax.random.key(config.seed)

  @property
  def rows_per_step(self) -> int:
    roles = 2 if self.config.train_proposer else 1
    return self.rows_per_role * roles

  @property
  def rows_per_role(self) -> int:
    """Rollouts of one role per step: batch_size per task type (the train batch part)."""
    return self.config.batch_size * len(self.config.task_types)

  def _randomness(self, stream: int) -> tuple[np.random.Generator, jax.Array]:
    return (
        np.random.default_rng([self.config.seed, stream]),
        jax.random.fold_in(self.base_key, stream),
    )

  def _reset_timers(self) -> None:
    self._timed_sampler.seconds = self._timed_pool.seconds = self.lane.wait_seconds = 0.0

  # ------------------------------------------------------------------ seeding

  def seed_buffers(self) -> dict[str, Any]:
    """Proposes from the zero triplet until the buffers hold batch x seed_batch_factor.

    Induction programs come from the deduction/abduction pool, so with induction active
    the deduction proposer also runs here (even when deduction itself is ablated).
    """
    cfg = self.config
    target = seed_target(cfg.batch_size, cfg.seed_batch_factor)
    types = list(cfg.task_types)
    if TaskType.INDUCTION in types and not set(types) & {TaskType.DEDUCTION, TaskType.ABDUCTION}:
      types.insert(0, TaskType.DEDUCTION)
    rounds, proposals, accepted = 0, 0, 0
    start = time.perf_counter()
    while rounds < cfg.max_seed_rounds:
      short = [t for t in types if len(self.buffers[t].entries) < target]
      if not short:
        break
      rng, key = self._randomness(_SEED_STREAM + rounds)
      outcome = propose(self.ctx, short, cfg.batch_size, self.buffers, rng, key)
      for task_type, entries in outcome.accepted.items():
        accepted += self.buffers[task_type].add(entries, step=0)
      proposals += len(outcome.rollouts)
      rounds += 1
      self.log(
          f"seeding round {rounds}: buffers {self.buffers.sizes()} "
          f"(target {target}), {accepted}/{proposals} proposals valid"
      )
    return {
        "seed/rounds": rounds,
        "seed/proposals": proposals,
        "seed/accepted": accepted,
        "seed/seconds": time.perf_counter() - start,
        **{f"buffer/{k}": v for k, v in self.buffers.sizes().items()},
    }

  def seed_from_dataset(self, path: str) -> dict[str, Any]:
    """Adds the tasks of a seed file (JSONL) to the buffers at step 0.

    Every row is validated in the sandbox as a proposal is, with this run's parser and
    validator settings (`absolute_zero.tasks.seed_data`); rejected rows are counted, logged
    and skipped. Triplet rows go to the deduction and abduction buffers, induction rows to
    the induction buffer, whatever the task types (as the zero triplet does). Call it
    before `seed_buffers()`, which then proposes only what the targets still lack, or
    instead of it. Raises `seed_data.SeedDataError` for an unusable file.
    """
    start = time.perf_counter()
    data = seed_data.load_seed_dataset(
        path,
        self.ctx.pool,
        parse_config=self.ctx.parse_config,
        validator_config=self.ctx.validator_config,
    )
    report = data.report
    added = {t: self.buffers[t].add(entries, step=0) for t, entries in data.entries.items()}
    self.log(
        f"{report.summary()}; added {({t.value: n for t, n in added.items()})}, "
        f"buffers {self.buffers.sizes()}"
    )
    return {
        "seed_data/rows": report.rows_read,
        "seed_data/rejected": len(report.rejected),
        "seed_data/dropped_inputs": len(report.dropped_inputs),
        **{f"seed_data/added/{t.value}": n for t, n in added.items()},
        "seed_data/seconds": time.perf_counter() - start,
        **{f"buffer/{k}": v for k, v in self.buffers.sizes().items()},
    }

  # ------------------------------------------------------------------ one step

  def run_step(self) -> dict[str, Any]:
    """One self-play iteration and one policy update; returns flat metrics."""
    cfg = self.config
    step = self.step + 1
    rng, key = self._randomness(step)
    k_propose, k_solve, k_score = jax.random.split(key, 3)
    self._reset_timers()
    compile_start = compile_seconds()
    start = time.perf_counter()
    try:
      proposals, solver_rollouts, estimates, step_diversity = self._rollouts(
          step, rng, k_propose, k_solve, k_score
      )
    finally:
      self.lane.drain()  # nothing of this step runs on after it (or after its failure)
    rollout_seconds = time.perf_counter() - start

    train_rollouts = solver_rollouts + (proposals.rollouts if cfg.train_proposer else [])
    self.log(f"step {step}: updating the policy on {len(train_rollouts)} rollouts ...")
    update_start = time.perf_counter()
    advantages, update_metrics = self._update(train_rollouts)
    update_seconds = time.perf_counter() - update_start
    self.step = step

    generated = sum(len(r.completion_ids) for r in proposals.rollouts + solver_rollouts + estimates)
    self.last_rollouts = {"propose": proposals.rollouts, "solve": solver_rollouts}
    metrics: dict[str, Any] = {}
    metrics.update(
        _group_metrics(
            proposals.rollouts,
            solver_rollouts,
            train_rollouts,
            advantages,
            cfg.task_types,
            cfg.train_proposer,
        )
    )
    metrics.update(step_diversity.metrics)
    metrics.update({f"buffer/{k}": v for k, v in self.buffers.sizes().items()})
    metrics.update(diversity.buffer_metrics(self.buffer_index, self.buffers))
    metrics.update({f"learner/{k}": float(v) for k, v in update_metrics.items()})
    gen_s, sandbox_s = self._timed_sampler.seconds, self._timed_pool.seconds
    critical_s, step_s = self.lane.wait_seconds, time.perf_counter() - start
    metrics.update(
        {
            # Wall seconds. generation and update include their compilation (compile_s).
            "time/generation_s": gen_s,
            "time/sandbox_s": sandbox_s,  # the pool's busy time, wherever it ran
            # The main thread in sandbox work or waiting for it: what overlap did not hide.
            "time/sandbox_critical_s": critical_s,
            "time/other_host_s": max(rollout_seconds - gen_s - critical_s, 0.0),
            "time/update_s": update_seconds,
            "time/compile_s": compile_seconds() - compile_start,
            # Neither generating nor updating: the device waits for the host.
            "time/device_idle_s": max(step_s - gen_s - update_seconds, 0.0),
            "time/step_s": step_s,
            "throughput/generated_tokens": generated,
            "throughput/generation_tokens_per_s": generated / max(gen_s, 1e-9),
            "throughput/train_tokens": int(update_metrics.get("tokens", 0)),
            "throughput/train_tokens_per_s": float(update_metrics.get("tokens", 0))
            / max(update_seconds, 1e-9),
            "solver/estimation_samples": len(estimates),
        }
    )
    return metrics

  def _rollouts(self, step, rng, k_propose, k_solve, k_score):
    """The step's proposals, solver rollouts and estimation rollouts, all graded.

    Order of the device work: proposals (each validated as it finishes, while the rest
    decode; everything after depends on validation); solver answers to buffer tasks;
    estimation samples of the valid proposals. With overlap, answers are graded on the lane
    as they finish, while the rest and the next batch generate."""
    cfg = self.config
    self.log(f"step {step}: proposing {cfg.batch_size} task(s) per type ...")
    proposals = propose(self.ctx, cfg.task_types, cfg.batch_size, self.buffers, rng, k_propose)
    # Against the buffers as they were before this step's proposals join them.
    step_diversity = diversity.measure_step(
        self.buffer_index, self.buffers, proposals, cfg.task_types, cfg.rewards
    )
    for task_type, entries in proposals.accepted.items():
      self.buffers[task_type].add(entries, step=step)
    items = [
        (t, task)
        for t in cfg.task_types
        for task in self.buffers[t].sample_solver_tasks(
            cfg.batch_size, rng, step, strategy=cfg.solver_task_strategy
        )
    ]
    valid = sum(r.valid for r in proposals.rollouts)
    self.log(
        f"step {step}: {valid}/{len(proposals.rollouts)} proposals valid; solving "
        f"{len(items)} buffer task(s) ..."
    )
    solving = start_solve(self.ctx, items, 1, k_solve)
    scoring = None
    if cfg.train_proposer:
      if valid:
        self.log(
            f"step {step}: pricing {valid} valid proposal(s) with "
            f"{cfg.n_solver_samples} solver samples each ..."
        )
      scoring = start_score_proposals(
          self.ctx,
          proposals,
          cfg.n_solver_samples,
          k_score,
          intrinsic=step_diversity.bonuses if cfg.rewards.intrinsic else None,
      )
    solver_rollouts = solving.result()
    estimates = scoring.result() if scoring is not None else []
    return proposals, solver_rollouts, estimates, step_diversity

  def _update(self, rollouts: list[Rollout]) -> tuple[np.ndarray, dict]:
    """Task-relative advantages, the fixed-shape batch, one train step, new sampler params."""
    rewards = np.asarray([r.reward for r in rollouts], np.float32)  # [N]
    groups = np.asarray([group_id(r.task_type, r.role) for r in rollouts], np.int32)
    advantages = np.asarray(
        loss.task_relative_advantages(
            rewards,
            groups,
            len(GROUPS),
            np.ones(len(rollouts), bool),
            eps=self.learner_config.advantage_eps,
            mode=self.learner_config.advantage_mode,
        )
    )
    # One part per role, each padded to its own length bucket: proposer prompts (with
    # references) run 2-4x longer than solver prompts, so one shared bucket would pad every
    # solver row to the proposer length. Each part keeps a fixed row count per step (no
    # recompiles); the objective is still the token mean over all rows.
    parts = []
    for role in ROLES:
      index = [i for i, r in enumerate(rollouts) if r.role is role]
      if not index:
        continue
      parts.append(
          batching.build_train_batch(
              [rollouts[i].prompt_ids for i in index],
              [rollouts[i].completion_ids for i in index],
              advantages[index],
              [rollouts[i].logprobs for i in index],
              group_ids=groups[index],
              shapes=self.batch_shapes,
              pad_id=self.tokenizer.pad_id or 0,
              min_rows=self.rows_per_role,
          )
      )
    batch = learner.shard_batch(tuple(parts), self.mesh)
    self.train_state, metrics = self.train_step(self.train_state, batch)
    self._share_params_with_sampler()
    return advantages, distributed.to_host(metrics)

  # ------------------------------------------------------------------ resume

  def restore(self, train_state, buffers_state: dict, step: int) -> None:
    """Continues from a checkpoint: train state, buffers and step counter."""
    self.train_state = train_state
    self.buffers.load_state_dict(buffers_state)
    self.step = int(step)
    self._share_params_with_sampler()

  def _share_params_with_sampler(self) -> None:
    """The sampler reads the learner's parameters, without a copy (1 GiB for Gemma 3 270M).

    The next train step donates (deletes) these buffers; that is safe because the sampler
    is not used between the start of a train step and this call right after it, which
    hands it the new parameters. On a mesh whose sampling layout differs from the
    training layout, `update_params` reshards, which copies.
    """
    self.sampler.update_params(self.train_state.params)


def _group_metrics(
    proposer: list[Rollout],
    solver: list[Rollout],
    trained: list[Rollout],
    advantages: np.ndarray,
    task_types,
    proposals_scored: bool = True,
) -> dict[str, float]:
  """Per (task, role): reward, format failures, validity / solve rate, lengths, advantages.

  Keys `{task}/{role}/{name}` with names from `metric_names` (the plot reads the same).
  Without `proposals_scored` (--train_proposer=false: proposals are never priced) the
  proposer groups have no reward to report, so none is logged (it would read 0.0).
  """
  out: dict[str, float] = {}
  adv_by_rollout = {id(r): a for r, a in zip(trained, advantages)}
  for task_type in task_types:
    for role, rollouts in ((Role.PROPOSE, proposer), (Role.SOLVE, solver)):
      group = [r for r in rollouts if r.task_type is task_type]
      name = group_name(task_type, role)
      out[f"{name}/{mn.COUNT}"] = len(group)
      if not group:
        continue
      if role is Role.SOLVE or proposals_scored:
        out[f"{name}/{mn.REWARD_MEAN}"] = float(np.mean([r.reward for r in group]))
      out[f"{name}/{mn.FORMAT_FAILURE_RATE}"] = float(np.mean([not r.well_formed for r in group]))
      out[f"{name}/{mn.RESPONSE_TOKENS_MEAN}"] = float(
          np.mean([len(r.completion_ids) for r in group])
      )
      if role is Role.PROPOSE:
        out[f"{name}/{mn.VALIDITY_RATE}"] = float(np.mean([r.valid for r in group]))
        rates = [r.solve_rate for r in group if r.solve_rate is not None]
        if rates:
          out[f"{name}/{mn.SOLVE_RATE_OF_VALID}"] = float(np.mean(rates))
      else:
        out[f"{name}/{mn.SOLVE_RATE}"] = float(np.mean([r.solve_rate == 1.0 for r in group]))
      adv = [adv_by_rollout[id(r)] for r in group if id(r) in adv_by_rollout]
      if adv:
        out[f"{name}/{mn.ADVANTAGE_MEAN}"] = float(np.mean(adv))
        out[f"{name}/{mn.ADVANTAGE_STD}"] = float(np.std(adv))
  return out
