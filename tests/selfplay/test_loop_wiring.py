"""What the self-play loop feeds the tested kernels, checked against independent values.

The kernels (advantages, rewards, batching, the loss, the sampler) have their own tests;
these pin the wiring between them in `SelfPlayRun.run_step` and `selfplay.phases`: which
(task, role) group each rollout's advantage is normalised in, which solver samples price
which proposal, which sampling knobs reach the sampler, which key and step a resumed run
draws with, which buffer strategy picks the solver's tasks.

A scripted sampler stands in for the model. It recognises every prompt (proposer or
solver, task type, which task) and answers from a script whose rewards are known by hand
and differ between all six groups; each answer carries a unique id in its log-probs, so a
row of the train batch (captured before the update) leads back to the script. Expected
rewards and advantages are computed here with NumPy, never by the code under test.

The last test runs the real sampler and learner on a tiny random model at temperature
0.7 and checks the ratio pi_theta / pi_old is 1 on every trained token before the update.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from absolute_zero import learner
from absolute_zero.sandbox import SandboxLimits, SandboxPool
from absolute_zero.selfplay import run as run_module
from absolute_zero.selfplay.selfplay_config import SelfPlayConfig
from absolute_zero.selfplay.run import SelfPlayRun
from absolute_zero.tasks.buffers import TaskBuffers
from absolute_zero.tasks.prompts import (
    ANSWER_CLOSE,
    render_induction_proposal,
    render_literal_answer,
    render_program_answer,
    render_triplet_proposal,
)
from absolute_zero.tasks.types import ZERO_TRIPLET, Role, TaskType, Triplet

DED, ABD, IND = TaskType.DEDUCTION, TaskType.ABDUCTION, TaskType.INDUCTION
TEMPERATURE, TOP_P = 0.7, 0.9
N = 4  # solver samples per proposal (proposer reward)
B = 3  # proposals / solver tasks per task type
EPS = 1e-6  # LearnerConfig.advantage_eps default
RIGHT, WRONG, MALFORMED = "right", "wrong", "malformed"
SOLVER_REWARD = {RIGHT: 1.0, WRONG: -0.5, MALFORMED: -1.0}  # spec §4 with the format rule
IDENTITY = "def f(x):\n    return x"


@dataclasses.dataclass
class _Completion:
  text: str
  finish_reason: str
  token_ids: np.ndarray
  logprobs: np.ndarray
  prompt_token_ids: tuple = (1, 2, 3)
  prompt_index: int = -1  # set by ScriptedSampler.generate
  sample_index: int = -1


def _triplet_task(constant: int, input_literal: str) -> dict:
  """f(x) = x + constant: the marker `+ constant` appears in every prompt showing it."""
  return dict(
      program=f"def f(x):\n    return x + {constant}",
      input=input_literal,
      output=str(int(input_literal) + constant),
  )


# Tasks by marker (a substring of every solver prompt that shows the task). Proposer
# rewards by hand from each proposal's own N estimation samples, `est` of them right:
# 1 - est/N if 0 < est < N, else -0.5 (not learnable); invalid -0.5; malformed -1.
TASKS = {
    DED: {
        "x + 301": dict(**_triplet_task(301, "5"), est=1),  # reward 0.75
        "x + 302": dict(**_triplet_task(302, "6"), est=3),
    },  # 0.25
    ABD: {
        "x + 401": dict(**_triplet_task(401, "7"), est=2),  # 0.5
        "x + 403": dict(**_triplet_task(403, "9"), est=1),
    },  # 0.75
    IND: {
        "rule K1": dict(inputs=["1", "2", "3", "4"], est=1),  # 0.75
        "rule K2": dict(inputs=["5", "6", "7", "8"], est=0),  # -0.5
        "rule K3": dict(inputs=["9", "10", "11", "12"], est=3),
    },  # 0.25
}
# The B proposals of each type, in the order the proposer is asked.
PROPOSALS = {
    DED: [("task", "x + 301"), ("task", "x + 302"), ("malformed", None)],  # 0.75 0.25 -1
    ABD: [
        ("task", "x + 401"),
        ("invalid", "def f(x):\n    return x // 0 + 402"),
        ("task", "x + 403"),
    ],  # 0.5 -0.5 0.75
    IND: [("task", "rule K1"), ("task", "rule K2"), ("task", "rule K3")],  # 0.75 -0.5 0.25
}
# Outcome of the k-th buffer-task answer of each type (by position, so the rewards of a
# group do not depend on which tasks the buffer draw picked).
SOLVE_OUTCOMES = {
    DED: [RIGHT, WRONG, MALFORMED],  # 1 -0.5 -1
    ABD: [RIGHT, RIGHT, WRONG],  # 1 1 -0.5
    IND: [RIGHT, MALFORMED, RIGHT],
}  # 1 -1 1


def proposer_reward(
    kind: str, marker: str | None, task_type: TaskType, tasks: dict = TASKS
) -> float:
  if kind == "malformed":
    return -1.0
  if kind == "invalid":
    return -0.5
  rate = tasks[task_type][marker]["est"] / N
  return 1.0 - rate if 0.0 < rate < 1.0 else -0.5


def numpy_advantages(rewards: np.ndarray, groups: list) -> np.ndarray:
  """(r - mean_g) / (std_g + eps) per group, Bessel-corrected std; 0 for a lone or
  constant group (spec §5)."""
  out = np.zeros(len(rewards))
  for g in set(groups):
    idx = np.array([i for i, x in enumerate(groups) if x == g])
    r = rewards[idx].astype(np.float64)
    if len(r) > 1 and r.std(ddof=1) > 0:
      out[idx] = (r - r.mean()) / (r.std(ddof=1) + EPS)
  return out


class ScriptedSampler:
  """Answers every prompt from the script; records every call and every completion.

  `emitted[uid]` = (task type, role, kind, expected reward); the completion's log-probs
  are all -(uid + 1) / 64 (exact in float32), so the uid survives into the train batch.
  """

  def __init__(self, config: SelfPlayConfig, tasks: dict, proposals: dict, outcomes: dict):
    self.config, self.tasks, self.proposals, self.outcomes = config, tasks, proposals, outcomes
    self.calls: list[dict] = []
    self.emitted: dict[int, tuple] = {}
    self.proposed = {t: 0 for t in TaskType}
    self.solved = {t: 0 for t in TaskType}

  def update_params(self, params):
    pass

  def _emit(self, text: str | None, task_type, role, kind, reward) -> _Completion:
    uid = len(self.emitted)
    self.emitted[uid] = (task_type, role, kind, reward)
    if text is None:  # a broken format: no answer block, cut by the token budget
      text, finish = "I am not sure what to write here", "length"
    else:  # the sampler cuts the stop string; the phases put it back
      assert text.endswith(ANSWER_CLOSE)
      text, finish = text[: -len(ANSWER_CLOSE)], "stop"
    return _Completion(
        text, finish, np.arange(5, 5 + 3, dtype=np.int32), np.full(3, -(uid + 1) / 64, np.float32)
    )

  def generate(
      self,
      prompts,
      *,
      max_new_tokens,
      temperature=1.0,
      top_p=1.0,
      top_k=0,
      n=1,
      stop=(),
      rng=None,
      on_finished=None,
      **unexpected,
  ):
    assert not unexpected, unexpected
    proposer = max_new_tokens == self.config.max_proposer_tokens
    kind = "propose" if proposer else ("solve" if n == 1 else "estimate")
    call = dict(
        kind=kind, n=n, temperature=temperature, top_p=top_p, top_k=top_k, rng=rng, tasks=[]
    )
    self.calls.append(call)
    out = []
    for prompt in prompts:
      if proposer:
        assert n == 1
        out.append(self._propose(prompt))
      else:
        task_type = self._solver_type(prompt)
        marker = self._marker(task_type, prompt)
        call["tasks"].append((task_type, marker))
        if kind == "solve":
          outcome = self.outcomes[task_type][self.solved[task_type]]
          self.solved[task_type] += 1
          outcomes = [outcome]
        else:
          right = self.tasks[task_type][marker]["est"]
          outcomes = [RIGHT] * right + [WRONG] * (n - right)
        out.extend(self._answer(task_type, marker, o, kind) for o in outcomes)
    for j, c in enumerate(out):
      c.prompt_index, c.sample_index = j // n, j % n
    if on_finished is not None:
      # As a streaming sampler may: out of order, in uneven batches, some left unreported
      # (the phases take those from the returned list).
      order = out[::-1][: len(out) * 2 // 3]
      for start, size in ((0, 1), (1, 3), (4, len(order))):
        if order[start : start + size]:
          on_finished(order[start : start + size])
    return out

  def _propose(self, prompt: str) -> _Completion:
    if "must predict the exact output" in prompt:
      task_type = DED
    elif "must find an input that produces" in prompt:
      task_type = ABD
    else:
      assert "choose inputs for a program" in prompt, prompt[:200]
      task_type = IND
    kind, what = self.proposals[task_type][self.proposed[task_type]]
    self.proposed[task_type] += 1
    reward = proposer_reward(kind, what, task_type, self.tasks)
    if kind == "malformed":
      text = None
    elif kind == "invalid":
      text = render_triplet_proposal(what, "1")
    elif task_type is IND:
      text = render_induction_proposal(self.tasks[IND][what]["inputs"], what)
    else:
      task = self.tasks[task_type][what]
      text = render_triplet_proposal(task["program"], task["input"])
    return self._emit(text, task_type, Role.PROPOSE, kind, reward)

  @staticmethod
  def _solver_type(prompt: str) -> TaskType:
    if prompt.startswith("## Task: predict the output"):
      return DED
    if prompt.startswith("## Task: find an input"):
      return ABD
    return IND

  def _marker(self, task_type: TaskType, prompt: str) -> str:
    found = [m for m in self.tasks[task_type] if m in prompt]
    if found:
      assert len(found) == 1, found
      return found[0]
    assert task_type is not IND and ZERO_TRIPLET.input in prompt, prompt
    return "zero"

  def _answer(self, task_type, marker, outcome, kind) -> _Completion:
    text = None
    if outcome != MALFORMED:
      if task_type is IND:
        text = render_program_answer(IDENTITY if outcome == RIGHT else "def f(x):\n    return 0")
      else:
        task = (
            dict(input=ZERO_TRIPLET.input, output=ZERO_TRIPLET.output)
            if marker == "zero"
            else self.tasks[task_type][marker]
        )
        right = task["output"] if task_type is DED else task["input"]
        text = render_literal_answer(right if outcome == RIGHT else "-1000")
    return self._emit(text, task_type, Role.SOLVE, kind, SOLVER_REWARD[outcome])


class _Tokens:
  """Only prompt lengths (max_prompt_tokens) and the pad id matter to the loop here."""

  pad_id = 0

  def encode(self, text):
    return [3] * (len(text) // 4)


@pytest.fixture(scope="module")
def pool():
  with SandboxPool(2, SandboxLimits(timeout_s=5.0, cpu_s=5.0)) as p:
    yield p


@pytest.fixture(scope="module")
def tiny():
  """A one-layer tiny Llama with NumPy-drawn weights (seconds faster than `init_params`):
  norm scales 1, weights N(0, 0.05^2), the head N(0, 1) so next-token laws are far from
  uniform (where the temperature would hardly change a log-prob)."""
  from absolute_zero.models import get_config, init_params

  config = get_config("tiny-llama").replace(num_layers=1, rope_scaling=None, max_position=4096)
  shapes = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
  rng = np.random.default_rng(1)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if "scale" in name:
      return np.ones(leaf.shape, leaf.dtype)
    std = 1.0 if "lm_head" in name else 0.05
    return (rng.standard_normal(leaf.shape) * std).astype(leaf.dtype)

  return config, jax.tree_util.tree_map_with_path(draw, shapes)


def _scripted_run(
    monkeypatch, tiny, pool, tasks=TASKS, proposals=PROPOSALS, outcomes=SOLVE_OUTCOMES, **overrides
):
  """A SelfPlayRun whose sampler is scripted and whose train step records its batches."""
  config = SelfPlayConfig(
      **{
          **dict(
              batch_size=B,
              n_solver_samples=N,
              num_references=1,
              num_induction_inputs=4,
              max_prompt_tokens=4000,
              max_proposer_tokens=40,
              max_solver_tokens=24,
              temperature=TEMPERATURE,
              top_p=TOP_P,
              max_seed_rounds=0,
              seed=7,
          ),
          **overrides,
      }
  )
  sampler = ScriptedSampler(config, tasks, proposals, outcomes)
  batches = []

  def make_train_step(*args, **kwargs):
    def train_step(state, batch):  # batch: one TrainBatch per role (a tuple of parts)
      parts = jax.tree.map(np.asarray, tuple(batch))
      batches.append(parts)
      return state, {"tokens": np.float32(sum(p.loss_mask.sum() for p in parts))}

    return train_step

  monkeypatch.setattr(run_module, "Sampler", lambda *a, **k: sampler)
  monkeypatch.setattr(learner, "make_train_step", make_train_step)
  model_config, params = tiny
  run = SelfPlayRun(
      model_config,
      params,
      _Tokens(),
      config,
      learner.LearnerConfig(temperature=TEMPERATURE),
      pool=pool,
  )
  return run, sampler, batches


def _uid(logprobs) -> int:
  """The scripted completion a row or rollout came from (see ScriptedSampler)."""
  value = float(np.asarray(logprobs)[0])
  uid = int(round(-value * 64)) - 1
  assert value == -(uid + 1) / 64, value
  return uid


def test_rewards_advantages_and_knobs_of_one_step(monkeypatch, tiny, pool):
  run, sampler, batches = _scripted_run(monkeypatch, tiny, pool)
  metrics = run.run_step()

  # Every generate call got the run's sampling knobs (no top-k: the config has none).
  assert [c["kind"] for c in sampler.calls] == ["propose", "solve", "estimate"]
  for call in sampler.calls:
    assert (call["temperature"], call["top_p"], call["top_k"]) == (TEMPERATURE, TOP_P, 0)
  assert sampler.calls[2]["n"] == N
  # Estimation solved exactly the valid proposals, N samples each.
  assert sorted((t.value, m) for t, m in sampler.calls[2]["tasks"]) == sorted(
      (t.value, m) for t in TaskType for m in TASKS[t]
  )

  # Each rollout's reward (and each proposer's solve rate) is the script's, whatever the
  # order the loop kept them in.
  proposer = run.last_rollouts["propose"]
  solver = run.last_rollouts["solve"]
  assert len(proposer) == len(solver) == 3 * B
  for rollout in proposer + solver:
    task_type, role, kind, reward = sampler.emitted[_uid(rollout.logprobs)]
    assert (rollout.task_type, rollout.role) == (task_type, role)
    assert rollout.reward == pytest.approx(reward), (task_type, role, kind, rollout.status)
  for rollout in proposer:
    marker = next((m for m in TASKS[rollout.task_type] if m in rollout.text), None)
    if rollout.valid:
      assert rollout.solve_rate == TASKS[rollout.task_type][marker]["est"] / N
    else:
      assert rollout.solve_rate is None
  assert sorted(r.reward for r in proposer) == sorted(
      proposer_reward(k, w, t) for t in TaskType for k, w in PROPOSALS[t]
  )

  # The train batch (one part per role): every real row traced back to the script.
  (parts,) = batches
  emitted, group_ids, advantages = [], [], []
  for part in parts:
    rows = np.nonzero(part.row_valid)[0]
    emitted += [sampler.emitted[_uid(part.old_logprobs[r][part.loss_mask[r]])] for r in rows]
    group_ids += part.group_ids[rows].tolist()
    advantages += part.advantages[rows].tolist()
    assert (part.group_ids[~part.row_valid] == -1).all()
    assert (part.advantages[~part.row_valid] == 0).all()
    assert (
        len({sampler.emitted[_uid(part.old_logprobs[r][part.loss_mask[r]])][1] for r in rows}) == 1
    )  # one role per part
  assert len(emitted) == 6 * B
  advantages = np.array(advantages)
  pairs = [(t, role) for t, role, _, _ in emitted]
  rewards = np.array([reward for *_, reward in emitted])
  # The six (task, role) groups have six different reward means: one baseline for the
  # whole batch, or per task, or per role, gives other advantages.
  means = {p: rewards[[q == p for q in pairs]].mean() for p in set(pairs)}
  assert len(means) == 6 and len({round(m, 6) for m in means.values()}) == 6, means
  # Group ids: one id per (task, role), different ids for different pairs.
  ids = {p: {g for g, q in zip(group_ids, pairs) if q == p} for p in means}
  assert all(len(v) == 1 for v in ids.values()) and len(set.union(*ids.values())) == 6, ids
  # Advantages: NumPy per (task, role) group.
  np.testing.assert_allclose(advantages, numpy_advantages(rewards, pairs), atol=1e-5)
  for p in means:
    adv = advantages[[q == p for q in pairs]]
    assert abs(adv.mean()) < 1e-5, (p, adv)
    assert adv.std(ddof=1) == pytest.approx(1.0, abs=1e-4), (p, adv)
    name = f"{p[0].value}/{p[1].value}"
    assert metrics[f"{name}/advantage_mean"] == pytest.approx(0.0, abs=1e-5)
    assert metrics[f"{name}/advantage_std"] == pytest.approx(adv.std(), abs=1e-5)
    assert metrics[f"{name}/reward_mean"] == pytest.approx(means[p])
  assert metrics["solver/estimation_samples"] == N * sum(len(TASKS[t]) for t in TaskType)
  # Per-group rates by hand from the script.
  for t in TaskType:
    kinds = [k for k, _ in PROPOSALS[t]]
    rates = [TASKS[t][w]["est"] / N for k, w in PROPOSALS[t] if k == "task"]
    assert metrics[f"{t.value}/propose/validity_rate"] == pytest.approx(len(rates) / B)
    assert metrics[f"{t.value}/propose/solve_rate_of_valid"] == pytest.approx(np.mean(rates))
    assert metrics[f"{t.value}/propose/format_failure_rate"] == pytest.approx(
        kinds.count("malformed") / B
    )
    assert metrics[f"{t.value}/solve/solve_rate"] == pytest.approx(
        SOLVE_OUTCOMES[t].count(RIGHT) / B
    )


def _old_triplets(count: int) -> list[dict]:
  return [_triplet_task(500 + i, str(i)) for i in range(count)]


@pytest.mark.parametrize("strategy", ["max_new", "uniform"])
def test_resumed_step_key_and_solver_task_strategy(monkeypatch, tiny, pool, strategy):
  """After restore(step=4) the next step is 5: its keys are (seed, 5)'s, its proposals
  are stored at step 5, and the solver's tasks follow the configured strategy."""
  old = _old_triplets(12)
  tasks = {
      DED: {
          **{f"x + {500 + i}": dict(t, est=1) for i, t in enumerate(old)},
          "x + 301": dict(**_triplet_task(301, "5"), est=1),
          "x + 302": dict(**_triplet_task(302, "6"), est=2),
          "x + 303": dict(**_triplet_task(303, "7"), est=3),
      }
  }
  proposals = {DED: [("task", "x + 301"), ("task", "x + 302"), ("task", "x + 303")]}
  outcomes = {DED: [RIGHT, WRONG, RIGHT]}
  run, sampler, _ = _scripted_run(
      monkeypatch,
      tiny,
      pool,
      tasks,
      proposals,
      outcomes,
      task_types=(DED,),
      solver_task_strategy=strategy,
  )
  buffers = TaskBuffers.seeded()
  buffers[DED].add([Triplet(t["program"], t["input"], t["output"]) for t in old], step=0)
  run.restore(run.train_state, buffers.state_dict(), 4)
  run.run_step()
  assert run.step == 5
  # Keys: split(fold_in(key(seed), step), 3) -> propose, solve, score (run.py docstring).
  expected = jax.random.split(jax.random.fold_in(jax.random.key(7), 5), 3)
  got = [c["rng"] for c in sampler.calls]
  assert [c["kind"] for c in sampler.calls] == ["propose", "solve", "estimate"]
  for key, want in zip(got, expected):
    np.testing.assert_array_equal(jax.random.key_data(key), jax.random.key_data(want))
  new = {"x + 301", "x + 302", "x + 303"}
  entries = run.buffers[DED].entries
  steps = dict(zip((e.program for e in entries), run.buffers[DED].steps))
  assert {steps[tasks[DED][m]["program"]] for m in new} == {5}
  solved = {m for _, m in sampler.calls[1]["tasks"]}
  assert len(sampler.calls[1]["tasks"]) == B
  if strategy == "max_new":
    assert solved == new  # the B newest first (reference default)
  else:
    assert solved - new, solved  # uniform over 16 entries: not only the 3 new ones


def test_learner_temperature_must_be_the_sampling_temperature(tiny, pool):
  model_config, params = tiny
  with pytest.raises(
      ValueError, match="learner temperature 1.0 must equal the sampling " "temperature 0.7"
  ):
    SelfPlayRun(
        model_config,
        params,
        _Tokens(),
        SelfPlayConfig(temperature=0.7),
        learner.LearnerConfig(temperature=1.0),
        pool=pool,
    )


def test_on_policy_ratio_is_one_before_the_update(tmp_path, tiny, pool):
  """Real sampler, real batch, the learner's log-probs: at temperature 0.7 and top-p 0.9
  the learner's log-prob of every trained token equals the sampler's (ratio 1) before
  the update. The update itself is left out (its log-probs are the learner tests')."""
  pytest.importorskip("tokenizers")
  from absolute_zero.models import compute_logits, forward
  from absolute_zero.tokenizers import from_tokenizer_json
  from tests.selfplay.teaching import proposer_prompts, train_bpe

  train_bpe(proposer_prompts(), tmp_path / "tokenizer.json", vocab_size=500)
  tok = from_tokenizer_json(tmp_path / "tokenizer.json")
  model_config, params = tiny
  config = SelfPlayConfig(
      task_types=(DED,),
      batch_size=2,
      n_solver_samples=2,
      num_references=1,
      max_prompt_tokens=4000,
      max_proposer_tokens=12,
      max_solver_tokens=8,
      temperature=TEMPERATURE,
      top_p=TOP_P,
      max_seed_rounds=0,
  )
  learner_config = learner.LearnerConfig(temperature=TEMPERATURE)
  run = SelfPlayRun(model_config, params, tok, config, learner_config, pool=pool)
  # The learner's log-probs without vocabulary chunks (the chunked and fused forms are
  # checked against this one in tests/test_loss.py and tests/test_learner.py).
  unchunked = dataclasses.replace(learner_config, logprob_vocab_chunk_size=None)
  seen = {}

  def checked_step(state, batch):  # one part per role
    for part in batch:
      logits = compute_logits(
          state.params,
          forward(state.params, part.tokens, part.positions, part.valid, model_config),
          model_config,
      )
      seen.setdefault("parts", []).append(
          (
              jax.tree.map(np.asarray, part),
              np.asarray(
                  learner.token_logprobs(state.params, part, model_config, unchunked, run.mesh)[0]
              ),
              np.asarray(logits, np.float64),
          )
      )
    return state, {"tokens": np.float32(sum(np.asarray(p.loss_mask).sum() for p in batch))}

  def numpy_logprobs(logits, targets, temperature):  # log_softmax(logits / T)[target]
    z = logits / temperature
    z = z - z.max(-1, keepdims=True)
    logz = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return np.take_along_axis(logz, targets[..., None], -1)[..., 0]

  run.train_step = checked_step
  run.run_step()
  assert len(seen["parts"]) == 2  # proposer and solver rows
  for part, logp, logits in seen["parts"]:
    mask, old = part.loss_mask, part.old_logprobs
    assert mask.sum() >= 4
    np.testing.assert_allclose(logp[mask], old[mask], atol=2e-4)
    np.testing.assert_allclose(
        numpy_logprobs(logits, part.targets, TEMPERATURE)[mask], old[mask], atol=2e-4
    )
    # At temperature 1 the same tokens have other log-probs: the check can tell.
    assert np.abs(numpy_logprobs(logits, part.targets, 1.0)[mask] - old[mask]).max() > 0.05
