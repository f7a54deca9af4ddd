"""Teach a tiny model to answer proposer prompts with memorised proposals (test helper).

A tiny random model proposes nothing that parses, so self-play would send no code to the
sandbox and the tests about buffers, validation and sharded sandbox batches would be
vacuous. The self-play tests (single- and multi-process) therefore fine-tune a tiny model
on (proposer prompt, memorised proposal) pairs first: a BPE tokenizer trained on those
texts, then a masked next-token NLL with Adam. Nothing here is collected by pytest.
"""

from __future__ import annotations

import numpy as np

from absolute_zero.tasks.types import TaskType

VALID = [("def f(x):\n    return x * 3", "4"), ("def f(s):\n    return s[::-1]", "'abc'")]
BANNED = ("import random\ndef f(x):\n    return random.random() + x", "1")
EOS = "<|endoftext|>"


class CharCount:
  """Stands in for a tokenizer where only prompt length matters (building prompts)."""

  def encode(self, text):
    return list(range(len(text) // 4))


def proposer_prompts(task_types=(TaskType.DEDUCTION, TaskType.ABDUCTION)) -> list[str]:
  """The proposer prompt of each task type, with the seed buffers and one reference."""
  from absolute_zero.selfplay.selfplay_config import SelfPlayConfig
  from absolute_zero.selfplay.phases import PhaseContext, proposer_prompt
  from absolute_zero.tasks.buffers import TaskBuffers

  config = SelfPlayConfig(num_references=1)
  buffers = TaskBuffers.seeded()
  rng = np.random.default_rng(0)
  stub = PhaseContext(sampler=None, tokenizer=CharCount(), pool=None, config=config)
  return [proposer_prompt(stub, t, buffers, rng)[0] for t in task_types]


def proposal_texts(proposals) -> list[str]:
  """Rendered proposer answers for (program, input) pairs."""
  from absolute_zero.tasks.prompts import render_triplet_proposal

  return [render_triplet_proposal(p, i) for p, i in proposals]


def train_bpe(texts, path: str, vocab_size: int) -> None:
  """A byte-level BPE tokenizer.json trained on `texts` (EOS first, then "<s>")."""
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.train_from_iterator(
      texts,
      trainers.BpeTrainer(
          vocab_size=vocab_size,
          special_tokens=[EOS, "<s>"],
          initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
      ),
  )
  tok.save(str(path))


def teach(model_config, params, tok, prompts, targets, steps: int, learning_rate: float = 1e-2):
  """(params, final loss) after `steps` Adam steps of the completion-token NLL.

  Rows are every whole prompt followed by every target and EOS (a window of the prompt
  alone did not carry over to generation with the full prompt).
  """
  import jax
  import jax.numpy as jnp
  import optax

  from absolute_zero.models import compute_logits, forward

  rows = [(tok.encode(p), tok.encode(t) + [tok.eos_id]) for p in prompts for t in targets]
  length = max(len(p) + len(c) for p, c in rows)
  tokens = np.zeros((len(rows), length), np.int32)
  mask = np.zeros((len(rows), length), bool)  # predict completion tokens only
  for r, (p, c) in enumerate(rows):
    tokens[r, : len(p) + len(c)] = p + c
    mask[r, len(p) - 1 : len(p) + len(c) - 1] = True
  positions = np.broadcast_to(np.arange(length, dtype=np.int32), tokens.shape)
  optimizer = optax.adam(learning_rate)

  @jax.jit
  def sft_step(params, opt_state):
    def nll(params):
      hidden = forward(params, tokens, positions, None, model_config)
      logp = jax.nn.log_softmax(compute_logits(params, hidden[:, :-1], model_config))
      picked = jnp.take_along_axis(logp, tokens[:, 1:, None], -1)[..., 0]
      return -(picked * mask[:, :-1]).sum() / mask.sum()

    value, grads = jax.value_and_grad(nll)(params)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, value

  opt_state = optimizer.init(params)
  value = None
  for _ in range(steps):
    params, opt_state, value = sft_step(params, opt_state)
  return params, float(value)
