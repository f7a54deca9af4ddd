"""run_evaluation end to end with a scripted sampler (no model): generation batching,
stop-string restoration, grading, pass@k, the report layout and the printed table."""

import json

import numpy as np
import pytest

from absolute_zero.evaluation import report as report_lib
from absolute_zero.evaluation.grader_checks import reference_completion
from absolute_zero.evaluation.data import load_benchmark
from absolute_zero.evaluation.runner import EvalConfig, run_evaluation
from absolute_zero.sampler import Completion
from tests.evaluation.conftest import require


class ScriptedSampler:
  """Answers each prompt with a scripted text per sample index, cut at the first stop
  string as the real sampler does (finish_reason 'stop')."""

  def __init__(self, answers_by_prompt):
    self.answers_by_prompt = answers_by_prompt
    self.calls = []

  def generate(self, prompts, *, max_new_tokens, temperature, top_p, n, stop, seed):
    self.calls.append(dict(num_prompts=len(prompts), n=n, temperature=temperature, seed=seed))
    out = []
    for i, prompt in enumerate(prompts):
      for j in range(n):
        text = self.answers_by_prompt[prompt][j]
        reason = "eos"
        cuts = [text.find(s) for s in stop if s in text]
        if cuts:
          text, reason = text[: min(cuts)], "stop"
        out.append(
            Completion(
                i, j, (1,), np.arange(5, dtype=np.int32), np.zeros(5, np.float32), text, reason
            )
        )
    return out


def _script(name, items, correct_pattern):
  """Sample j of item i is the reference if correct_pattern[i][j] else another item's."""
  from absolute_zero.evaluation.benchmarks import BENCHMARK_SPECS

  spec = BENCHMARK_SPECS[name]
  script = {}
  for i, item in enumerate(items):
    other = items[(i + 1) % len(items)]
    script[spec.prompt(item)] = [
        reference_completion(name, item if ok else other) for ok in correct_pattern[i]
    ]
  return script


def test_greedy_report_on_cruxeval_o_and_gsm8k(pool, tmp_path):
  require("cruxeval", "cruxeval.jsonl")
  require("math", "gsm8k", "test.jsonl")
  crux = load_benchmark("cruxeval_o", limit=5)
  gsm = load_benchmark("gsm8k", limit=5)
  script = _script("cruxeval_o", crux, [[True], [False], [True], [True], [False]])
  script.update(_script("gsm8k", gsm, [[True], [True], [False], [True], [True]]))
  sampler = ScriptedSampler(script)
  report = run_evaluation(
      sampler,
      pool,
      ["cruxeval_o", "gsm8k"],
      limit=5,
      config=EvalConfig(batch_size=2),
      model={"source": "scripted"},
  )
  crux_section = report["benchmarks"]["cruxeval_o"]
  assert crux_section["n"] == 5
  assert crux_section["score"] == pytest.approx(3 / 5)
  assert [r["correct"] for r in crux_section["records"]] == [True, False, True, True, False]
  assert crux_section["records"][0]["prediction"] == crux[0].output
  assert crux_section["finish_reasons"] == {"stop": 5}  # "</answer>" restored before parsing
  assert report["benchmarks"]["gsm8k"]["score"] == pytest.approx(4 / 5)
  assert [c["num_prompts"] for c in sampler.calls] == [2, 2, 1, 2, 2, 1]
  assert all(c["temperature"] == 0.0 for c in sampler.calls)

  path = tmp_path / "report.json"
  report_lib.write_report(report, str(path))
  again = report_lib.load_report(str(path))
  assert again["schema_version"] == report_lib.SCHEMA_VERSION
  assert again["config"]["max_new_tokens"] == 512 and again["config"]["limit"] == 5
  assert json.loads(path.read_text())["model"] == {"source": "scripted"}
  table = report_lib.format_table(report)
  assert "cruxeval_o" in table and "60.0" in table and "80.0" in table


def test_pass_at_k_with_several_samples(pool):
  require("cruxeval", "cruxeval.jsonl")
  items = load_benchmark("cruxeval_i", limit=3)
  pattern = [[True, False, False, False], [False] * 4, [True] * 4]
  sampler = ScriptedSampler(_script("cruxeval_i", items, pattern))
  report = run_evaluation(
      sampler,
      pool,
      ["cruxeval_i"],
      limit=3,
      config=EvalConfig(n_samples=4, temperature=0.8, ks=(1, 2, 4)),
  )
  section = report["benchmarks"]["cruxeval_i"]
  assert [r["num_correct"] for r in section["records"]] == [1, 0, 4]
  # pass@k per item: 1 - C(n-c, k)/C(n, k); item 1: c=1 -> k/4.
  assert section["pass_at_k"]["1"] == pytest.approx((0.25 + 0 + 1) / 3)
  assert section["pass_at_k"]["2"] == pytest.approx((0.5 + 0 + 1) / 3)
  assert section["pass_at_k"]["4"] == pytest.approx((1 + 0 + 1) / 3)
  assert len(section["records"][0]["samples"]) == 4


def test_validate_report_names_missing_fields():
  with pytest.raises(ValueError, match="benchmarks"):
    report_lib.validate_report(
        {
            "schema_version": 1,
            "created": "",
            "model": {},
            "config": {},
            "environment": {},
            "timing": {},
        }
    )


def test_bad_config():
  with pytest.raises(ValueError, match="n_samples"):
    EvalConfig(n_samples=0)
  with pytest.raises(ValueError, match="pass@k"):
    EvalConfig(n_samples=2, ks=(5,))
