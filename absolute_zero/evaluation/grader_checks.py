"""Grader correctness: each benchmark's own reference answers, and the same answers
shuffled across items, written as model completions and put through the real graders.

A right grader scores the references at (or near, where noted) 100 % and the shuffled set
near 0 %. Completions are written in the format a model is asked for, so the whole path
(parser or extractor, sandbox, comparison) is exercised, not just the final comparison.
"""

from __future__ import annotations

import random
from typing import Callable, Optional, Sequence

from absolute_zero.evaluation.benchmarks import grade_benchmark
from absolute_zero.evaluation.data import CruxItem, HumanEvalItem, Item, MathItem, load_benchmark
from absolute_zero.tasks.prompts import render_literal_answer


def reference_completion(name: str, item: Item) -> str:
  """What a perfect model would write for `item`, in the format its prompt asks for."""
  if name in ("cruxeval_o", "cruxeval_i"):
    assert isinstance(item, CruxItem)
    literal = item.output if name == "cruxeval_o" else item.input
    return render_literal_answer(literal, reasoning="Tracing the function step by step.")
  if isinstance(item, HumanEvalItem):
    return item.canonical_solution
  if isinstance(item, MathItem):
    return f"Working through the problem.\nThe final answer is $\\boxed{{{item.answers[0]}}}$."
  raise TypeError(f"no reference completion for {type(item).__name__}")


def derangement(n: int, seed: int = 0) -> list[int]:
  """A random permutation with no fixed point (identity for n < 2)."""
  if n < 2:
    return list(range(n))
  rng = random.Random(seed)
  while True:
    perm = list(range(n))
    rng.shuffle(perm)
    if all(i != p for i, p in enumerate(perm)):
      return perm


def _shuffled_items(items: Sequence[Item], seed: int) -> list[Item]:
  """The donor of each item: item i is answered with item perm[i]'s reference."""
  return [items[j] for j in derangement(len(items), seed)]


def score_completions(
    name: str, pool, items: Sequence[Item], make_completion: Callable[[Item], str]
) -> tuple[float, list[str]]:
  """(fraction correct, ids graded wrong) for one completion per item."""
  completions = [[make_completion(item)] for item in items]
  graded = grade_benchmark(name, pool, items, completions)
  wrong = [_item_id(item) for item, g in zip(items, graded) if not g[0].correct]
  return ((len(items) - len(wrong)) / len(items)) if items else 0.0, wrong


def _item_id(item: Item) -> str:
  return item.id


def check_grader(name: str, pool, items: Sequence[Item], seed: int = 0) -> dict:
  """{'n', 'reference', 'shuffled', 'reference_failures', 'shuffled_passes'} for one
  benchmark: references graded against their own items, then shuffled ones."""
  reference, ref_wrong = score_completions(
      name, pool, items, lambda it: reference_completion(name, it)
  )
  donors = _shuffled_items(items, seed)
  donor_of = {id(item): donor for item, donor in zip(items, donors)}
  shuffled, shuf_wrong = score_completions(
      name, pool, items, lambda it: reference_completion(name, donor_of[id(it)])
  )
  wrong_set = set(shuf_wrong)
  return {
      "n": len(items),
      "reference": reference,
      "shuffled": shuffled,
      "reference_failures": ref_wrong,
      "shuffled_passes": [_item_id(it) for it in items if _item_id(it) not in wrong_set],
  }


def check_graders(
    pool,
    benchmarks: Sequence[str],
    data_dir: Optional[str] = None,
    limit: Optional[int] = None,
    seed: int = 0,
) -> dict[str, dict]:
  """`check_grader` for every benchmark, on its first `limit` items."""
  return {
      name: check_grader(name, pool, load_benchmark(name, data_dir, limit), seed)
      for name in benchmarks
  }
