"""Self-play end to end with a tiny model and the real sandbox; exact resume.

A tiny random model proposes nothing valid, which would make "the buffers grew only with
validated triplets" vacuous. So the fixture first teaches a tiny Llama (with a BPE
tokenizer trained here) to answer proposer prompts with one of three memorised proposals:
two valid programs and one that imports a banned module. The run must then add the valid
ones to the buffers and never the banned one, with every entry re-checked in the sandbox.
"""

from __future__ import annotations

import math
import threading
import time

import jax
import numpy as np
import pytest

from absolute_zero import learner
from absolute_zero.models import get_config, init_params
from absolute_zero.sandbox import SandboxPool
from absolute_zero.selfplay.selfplay_config import SelfPlayConfig
from absolute_zero.selfplay.run import SelfPlayRun
from absolute_zero.tasks.types import TaskType, ZERO_TRIPLET
from absolute_zero.tasks.validators import execute
from tests.selfplay import teaching

tokenizers = pytest.importorskip("tokenizers")

VALID, BANNED = teaching.VALID, teaching.BANNED


@pytest.fixture(scope="module")
def pool():
  with SandboxPool(num_workers=2) as p:
    yield p


@pytest.fixture(scope="module")
def taught(tmp_path_factory, pool):
  """(model config, params, tokenizer) of a tiny Llama that emits memorised proposals."""
  from absolute_zero.tokenizers import from_tokenizer_json

  prompts = teaching.proposer_prompts()
  targets = teaching.proposal_texts(VALID + [BANNED])
  path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
  teaching.train_bpe(prompts + targets * 20, path, vocab_size=500)
  tok = from_tokenizer_json(path)
  model_config = get_config("tiny-llama").replace(
      vocab_size=512, rope_scaling=None, num_layers=2, max_position=4096
  )
  params, loss = teaching.teach(
      model_config, init_params(model_config, jax.random.key(0)), tok, prompts, targets, steps=80
  )
  # Three equally likely memorised answers: the floor of the loss is log(3) per choice.
  assert loss < 0.2, loss
  return model_config, params, tok


def _selfplay(taught, pool, **overrides):
  """A SelfPlayRun of the taught tiny model with small test sizes (fields overridable)."""
  model_config, params, tok = taught
  config = SelfPlayConfig(
      **{
          **dict(
              batch_size=2,
              n_solver_samples=2,
              num_references=1,
              max_seed_rounds=1,
              max_prompt_tokens=4000,
              max_proposer_tokens=64,
              max_solver_tokens=16,
          ),
          **overrides,
      }
  )
  return SelfPlayRun(
      model_config, params, tok, config, learner.LearnerConfig(learning_rate=1e-5), pool=pool
  )


def _finite(metrics):
  return all(math.isfinite(v) for v in metrics.values() if isinstance(v, (int, float)))


def test_two_real_steps_grow_buffers_only_with_validated_triplets(taught, pool):
  run = _selfplay(taught, pool)
  seed_metrics = run.seed_buffers()
  assert _finite(seed_metrics)
  all_metrics = [run.run_step() for _ in range(2)]
  assert run.step == 2
  for m in all_metrics:
    assert _finite(m), m
    for name in ("deduction/propose", "abduction/propose", "deduction/solve"):
      assert m[f"{name}/count"] == 2
  banned_program = BANNED[0]
  valid_programs = {p for p, _ in VALID} | {ZERO_TRIPLET.program}
  grown = 0
  for task_type in (TaskType.DEDUCTION, TaskType.ABDUCTION):
    entries = run.buffers[task_type].entries
    grown += len(entries) - 1
    programs = [e.program for e in entries]
    assert banned_program not in programs
    assert set(programs) <= valid_programs
    # Every stored output is what the sandbox computes now.
    results = execute(pool, [(e.program, e.input) for e in entries])
    assert [r.output for r in results] == [e.output for e in entries]
  assert grown > 0, "the taught model's valid proposals never reached the buffers"
  # Proposals the sandbox rejected were counted as well-formed but invalid.
  assert (
      any(
          m["deduction/propose/validity_rate"] < 1 or m["abduction/propose/validity_rate"] < 1
          for m in all_metrics
      )
      or grown
  )


def test_exact_resume_equals_uninterrupted_run(taught, pool, tmp_path):
  from absolute_zero.checkpointing import RunCheckpointer

  # One run saves at step 2 and goes on to step 4; a fresh run restored from that save
  # takes steps 3 and 4 again and must end where the uninterrupted run ended.
  straight = _selfplay(taught, pool)
  straight.seed_buffers()
  straight_metrics = [straight.run_step() for _ in range(2)]
  with RunCheckpointer(tmp_path / "ckpt", async_save=False) as ckpt:
    ckpt.save(
        straight.step,
        straight.train_state,
        straight.base_key,
        straight.buffers.state_dict(),
        {"model": {}},
        {},
    )
  straight_metrics += [straight.run_step() for _ in range(2)]

  second = _selfplay(taught, pool)
  with RunCheckpointer(tmp_path / "ckpt") as ckpt:
    restored = ckpt.restore(None, second.train_state)
  second.restore(restored.train_state, restored.buffers, ckpt_step := 2)
  assert ckpt_step == second.step
  resumed_metrics = straight_metrics[:2] + [second.run_step() for _ in range(2)]

  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=0),
      straight.train_state.params,
      second.train_state.params,
  )
  assert straight.buffers.state_dict() == second.buffers.state_dict()
  for a, b in zip(straight_metrics, resumed_metrics):
    keys = [
        k
        for k in a
        if not k.startswith(
            ("time/", "throughput/generation_tokens_per_s", "throughput/train_tokens_per_s")
        )
    ]
    assert {k: a[k] for k in keys} == pytest.approx({k: b[k] for k in keys}, abs=1e-6)


@pytest.mark.parametrize(
    "task_types", [(TaskType.DEDUCTION, TaskType.ABDUCTION), (TaskType.INDUCTION,)]
)
def test_task_type_ablation_logs_only_those_groups(taught, pool, task_types):
  run = _selfplay(taught, pool, task_types=task_types)
  run.seed_buffers()
  metrics = run.run_step()
  assert _finite(metrics)
  logged = {k.split("/")[0] for k in metrics if k.split("/")[0] in {t.value for t in TaskType}}
  assert logged == {t.value for t in task_types}
  assert metrics[f"{task_types[0].value}/propose/count"] == 2


def test_solver_only_training(taught, pool):
  """--train_proposer=false: proposals still feed the buffers, only solver rows train."""
  run = _selfplay(taught, pool, train_proposer=False)
  run.seed_buffers()
  metrics = run.run_step()
  solver = run.last_rollouts["solve"]
  assert metrics["learner/tokens"] == sum(len(r.completion_ids) for r in solver)
  assert not any(k.endswith("propose/advantage_mean") for k in metrics)
  # Proposals are never priced, so no proposer reward is reported (it would read 0.0).
  assert not any(k.endswith("propose/reward_mean") for k in metrics)
  assert metrics["deduction/propose/format_failure_rate"] >= 0
  assert metrics["solver/estimation_samples"] == 0


def _recorded_run(taught, pool, overlap: bool, steps: int):
  """A run whose generate calls and sandbox-lane work are timed: spans (kind, on the main
  thread?, start, end). Lane work first sleeps when off the main thread, so that work
  overlapped with generation is sure to be seen overlapping."""
  spans = []
  run = _selfplay(taught, pool, overlap_sandbox=overlap)
  generate, submit = run.sampler.generate, run.lane.submit

  def timed_generate(*args, **kwargs):
    start = time.perf_counter()
    try:
      return generate(*args, **kwargs)
    finally:
      spans.append(("generate", True, start, time.perf_counter(), kwargs["max_new_tokens"]))

  def timed_submit(fn, *args):
    def work(*args):
      main = threading.current_thread() is threading.main_thread()
      start = time.perf_counter()
      if not main:
        time.sleep(0.2)
      try:
        return fn(*args)
      finally:
        spans.append(("sandbox", main, start, time.perf_counter(), fn.__name__))

    return submit(work, *args)

  run.sampler.generate, run.lane.submit = timed_generate, timed_submit
  run.seed_buffers()
  metrics = [run.run_step() for _ in range(steps)]
  return run, metrics, spans


def _overlapping(spans):
  """(sandbox span, generate span) pairs that overlap in time."""
  sandbox = [s for s in spans if s[0] == "sandbox"]
  generate = [s for s in spans if s[0] == "generate"]
  return [(a, b) for a in sandbox for b in generate if a[2] < b[3] and b[2] < a[3]]


def test_overlap_gives_the_serial_results(taught, pool):
  """Grading on the lane while the device generates changes no result: the same rollouts,
  rewards, buffers and parameters as the serial order, step after step."""
  serial, serial_metrics, serial_spans = _recorded_run(taught, pool, overlap=False, steps=2)
  overlap, overlap_metrics, overlap_spans = _recorded_run(taught, pool, overlap=True, steps=2)

  # The schedules differ: serial runs every batch on the main thread when it is handed
  # over (inside a generate call when the sampler reports rows finished early, so the device
  # waits for it); with overlap some grading runs on the lane during a generate call.
  assert all(main for kind, main, *_ in serial_spans if kind == "sandbox")
  assert any(not a[1] for a, _ in _overlapping(overlap_spans)), overlap_spans
  # Proposals finished early are validated while the proposer's generate call goes on.
  proposing = overlap.config.max_proposer_tokens
  assert any(
      a[4] == "_validate" and b[4] == proposing for a, b in _overlapping(overlap_spans)
  ), overlap_spans
  assert any(m["solver/estimation_samples"] > 0 for m in serial_metrics)  # proposals priced

  jax.tree.map(
      lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
      serial.train_state.params,
      overlap.train_state.params,
  )
  assert serial.buffers.state_dict() == overlap.buffers.state_dict()
  for role in ("propose", "solve"):
    a, b = serial.last_rollouts[role], overlap.last_rollouts[role]
    assert [(r.text, r.status, r.reward, r.solve_rate) for r in a] == [
        (r.text, r.status, r.reward, r.solve_rate) for r in b
    ]
  for a, b in zip(serial_metrics, overlap_metrics):
    keys = [k for k in a if not k.startswith(("time/", "throughput/"))]
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    assert a["time/sandbox_critical_s"] >= a["time/sandbox_s"] > 0  # serial: all of it
