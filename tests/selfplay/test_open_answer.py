"""The opened answer block: prompts end with it, and the parser reads prefix + completion.

A stub sampler returns fixed completions, so the wiring from `PromptConfig.open_answer`
through `phases.solve` to the grader and the rewards is checked on answers whose grade is
known by hand: right, wrong, and never closed.
"""

import dataclasses

import jax
import numpy as np
import pytest

from absolute_zero.sandbox import SandboxLimits, SandboxPool
from absolute_zero.selfplay.selfplay_config import SelfPlayConfig
from absolute_zero.selfplay.phases import PhaseContext, solve
from absolute_zero.tasks.prompts import ANSWER_OPEN, PromptConfig, build_prompt
from absolute_zero.tasks.types import Role, TaskType, Triplet

TRIPLET = Triplet("def f(x):\n    return [x, x + 1]", "3", "[3, 4]")


@dataclasses.dataclass
class _Completion:
  text: str
  finish_reason: str
  prompt_token_ids: tuple = (1, 2)
  token_ids: np.ndarray = dataclasses.field(default_factory=lambda: np.ones(3, np.int32))
  logprobs: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3, np.float32))


class _StubSampler:
  """Returns `completions` in order, one per prompt and sample; records each call's stops."""

  def __init__(self, completions):
    self.completions, self.prompts, self.calls = list(completions), [], []

  def generate(self, prompts, n=1, stop=(), **kwargs):
    self.prompts.extend(prompts)
    self.calls.append((tuple(stop), list(prompts), kwargs.get("rng")))
    out, self.completions = (
        self.completions[: len(prompts) * n],
        self.completions[len(prompts) * n :],
    )
    return out


class _Chars:

  def encode(self, text):
    return list(text)


@pytest.mark.parametrize("role, task_type", [(r, t) for r in Role for t in TaskType])
def test_every_prompt_ends_with_the_opened_block(role, task_type):
  from absolute_zero.tasks.types import InductionTask, IOPair

  task = (
      InductionTask("def f(x):\n    return x", (IOPair("1", "1"),), (IOPair("2", "2"),), "identity")
      if task_type is TaskType.INDUCTION
      else TRIPLET
  )
  kwargs = (
      {"references": [TRIPLET]}
      if role is Role.PROPOSE and task_type is not TaskType.INDUCTION
      else {"program": TRIPLET.program}
      if role is Role.PROPOSE
      else {"task": task}
  )
  opened = build_prompt(task_type, role, config=PromptConfig(open_answer=True), **kwargs)
  closed = build_prompt(task_type, role, config=PromptConfig(open_answer=False), **kwargs)
  fields = build_prompt(
      task_type, role, config=PromptConfig(open_answer=True, single_line_answers=True), **kwargs
  )
  assert opened == closed + ANSWER_OPEN + "\n"
  assert not closed.endswith(ANSWER_OPEN + "\n")
  code = role is Role.SOLVE and task_type is TaskType.INDUCTION
  assert fields == opened + ("```python\n" if code else "")


@pytest.mark.parametrize("open_answer", [True, False])
def test_solver_answers_are_graded_with_the_prefix(open_answer):
  prefix = "" if open_answer else "reasoning\n<answer>\n"
  completions = [
      _Completion(prefix + "[3, 4]\n", "stop"),  # right
      _Completion(prefix + "[3, 5]\n", "stop"),  # wrong
      _Completion(prefix + "[3, 4] and more", "length"),  # never closed: format error
      _Completion("[3, 4]\n", "stop"),  # right only if the prompt opened the block
  ]
  config = SelfPlayConfig(prompts=PromptConfig(open_answer=open_answer))
  sampler = _StubSampler(completions)
  with SandboxPool(1, SandboxLimits(timeout_s=5, cpu_s=5)) as pool:
    ctx = PhaseContext(sampler=sampler, tokenizer=_Chars(), pool=pool, config=config)
    rollouts = solve(ctx, [(TaskType.DEDUCTION, TRIPLET)] * 4, 1, key=None)
  assert all(p.endswith(ANSWER_OPEN + "\n") == open_answer for p in sampler.prompts)
  rewards = [r.reward for r in rollouts]
  wrong, bad = config.rewards.wrong_reward, config.rewards.format_error_reward
  assert rewards[:3] == [1.0, wrong, bad]
  assert rewards[3] == (1.0 if open_answer else bad)
  if open_answer:
    assert rollouts[0].text == "<answer>\n[3, 4]\n</answer>"


def test_solver_answers_as_template_fields():
  """Literals stop at the newline; the induction program's code block is opened for it."""
  from absolute_zero.tasks.types import InductionTask, IOPair

  ind = InductionTask(
      "def f(x):\n    return x", (IOPair("1", "1"),), (IOPair("2", "2"),), "identity"
  )
  abd = Triplet(TRIPLET.program, "3", "[3, 4]")
  items = [
      (TaskType.INDUCTION, ind),
      (TaskType.DEDUCTION, TRIPLET),
      (TaskType.ABDUCTION, abd),
      (TaskType.INDUCTION, ind),
      (TaskType.INDUCTION, ind),
  ]
  # Stop sets in sorted order are the newline set ('\n' < '`'), then the fence; each is
  # keyed by that rank. They are sampled heaviest sandbox work first, so that its grading
  # overlaps the other's generation: the three induction answers (fence), then the
  # deduction (no sandbox) and abduction answers (newline).
  completions = [
      _Completion("def f(x):\n    return x\n", "stop"),  # stopped at the fence
      _Completion("def f(x):\n    return 0\n", "stop"),  # right format, wrong
      _Completion("def f(x):\n    return (", "length"),  # never finished
      _Completion("[3, 4]", "stop"),  # deduction, cut at its newline
      _Completion("3", "stop"),  # abduction
  ]
  config = SelfPlayConfig(prompts=PromptConfig(open_answer=True, single_line_answers=True))
  sampler = _StubSampler(completions)
  with SandboxPool(1, SandboxLimits(timeout_s=5, cpu_s=5)) as pool:
    ctx = PhaseContext(sampler=sampler, tokenizer=_Chars(), pool=pool, config=config)
    rollouts = solve(ctx, items, 1, key=jax.random.key(0))
  assert [c[0] for c in sampler.calls] == [("</answer>", "```"), ("</answer>", "\n")]
  assert all(p.endswith("<answer>\n```python\n") for p in sampler.calls[0][1])
  assert all(p.endswith("<answer>\n") for p in sampler.calls[1][1])
  key_data = [jax.random.key_data(c[2]).tolist() for c in sampler.calls]
  assert key_data == [
      jax.random.key_data(jax.random.fold_in(jax.random.key(0), k)).tolist() for k in (1, 0)
  ]
  assert [r.task_type for r in rollouts] == [t for t, _ in items]
  wrong, bad = config.rewards.wrong_reward, config.rewards.format_error_reward
  assert [r.reward for r in rollouts] == [1.0, 1.0, 1.0, wrong, bad]
  assert rollouts[1].text == "<answer>\n[3, 4]</answer>"
  assert rollouts[0].text == "<answer>\n```python\ndef f(x):\n    return x\n\n```\n</answer>"


def test_single_line_answers_do_nothing_without_the_opened_block():
  config = PromptConfig(open_answer=False, single_line_answers=True)
  for task_type in TaskType:
    for role in Role:
      assert config.stop_strings(task_type, role) == ("</answer>",)
      assert config.response_prefix(task_type, role) == ""


@dataclasses.dataclass
class _Indexed(_Completion):
  prompt_index: int = 0
  sample_index: int = 0


class _SwappingSampler:
  """Reports prompt 0's completion finished, then returns a different object for it."""

  def generate(self, prompts, n=1, stop=(), on_finished=None, **kwargs):
    reported = [_Indexed("[3, 4]\n", "stop", prompt_index=i) for i in range(len(prompts))]
    on_finished(reported[:1])
    return [dataclasses.replace(c, text="[3, 5]\n") for c in reported]


def test_a_sampler_that_reports_one_completion_and_returns_another_is_refused():
  """`on_finished` must get the returned objects: otherwise the phases would grade a
  completion the sampler then threw away."""
  with SandboxPool(1, SandboxLimits(timeout_s=5, cpu_s=5)) as pool:
    ctx = PhaseContext(
        sampler=_SwappingSampler(), tokenizer=_Chars(), pool=pool, config=SelfPlayConfig()
    )
    with pytest.raises(RuntimeError, match=r"reported completions \[0\] finished"):
      solve(ctx, [(TaskType.DEDUCTION, TRIPLET)] * 2, 1, key=None)
