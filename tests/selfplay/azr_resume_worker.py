"""experiments.azr's run loop with recording fakes (tests/selfplay/test_azr_resume.py).

    python -m tests.selfplay.azr_resume_worker OUT_DIR

Runs `experiments.azr._run` twice with `--steps=5`: resumed from a (fake) checkpoint of
step 3, and fresh. The model loader, sandbox pool, `SelfPlayRun` and the checkpointer are
fakes that record what the loop hands them (which step it restores, which step the run is
set to, which steps it runs and saves); the metrics writer is the real one. Writes
OUT_DIR/calls.json. Its own process because experiments.azr defines absl flags at import
(another command's flags must not meet them in one test process). Nothing here is
collected by pytest.
"""

from __future__ import annotations

import json
import os
import sys
import types

if __package__ in (None, ""):  # run as a script: the repository root holds `tests`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def main(out_dir: str) -> None:
  from absl import flags

  import absolute_zero.sandbox
  import absolute_zero.selfplay.run
  from absolute_zero import policy_loading as loading
  from absolute_zero.models import get_config
  from experiments import azr

  calls: dict = {}

  class FakeRun:

    def __init__(self, model_config, params, tokenizer, config, learner_config, *, pool, mesh, log):
      self.config, self.step, self.train_state = config, 0, "fresh state"
      self.buffers = types.SimpleNamespace(sizes=lambda: {}, state_dict=lambda: {})
      self.last_rollouts = {}

    def restore(self, train_state, buffers_state, step):  # as SelfPlayRun.restore
      calls["restore"] = [train_state, buffers_state, step]
      self.train_state, self.step = train_state, int(step)

    def seed_from_dataset(self, path):
      calls["seed_from_dataset"] = True
      return {}

    def seed_buffers(self):
      calls["seed_buffers"] = True
      return {}

    def run_step(self):
      self.step += 1
      calls.setdefault("steps", []).append(self.step)
      return {"time/generation_s": 0.0, "time/sandbox_s": 0.0, "time/update_s": 0.0}

  class FakeCheckpointer:

    def check_compatible(self, config, step):
      calls["check_compatible"] = step

    def restore(self, step, train_state, config=None):
      calls["restore_from"] = step
      return types.SimpleNamespace(train_state=f"state of step {step}", buffers={"saved at": step})

    def wait_until_finished(self):
      pass

    def save(self, step, train_state, key, buffers, config, extra):
      calls.setdefault("saved", []).append([step, extra])

  class FakePool:

    def __init__(self, *args, **kwargs):
      pass

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      pass

  loading.load_policy = lambda *a, **k: (get_config("tiny-llama"), None, None)
  absolute_zero.sandbox.SandboxPool = FakePool
  absolute_zero.selfplay.run.SelfPlayRun = FakeRun
  out = {}
  for name, latest in (("resumed", 3), ("fresh", None)):
    log_dir = os.path.join(out_dir, name)
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["azr", f"--log_dir={log_dir}", "--steps=5", "--plot=false", "--mesh=1,1,1"])
    calls.clear()
    azr._run(FakeCheckpointer(), latest, log_dir, os.path.join(log_dir, "checkpoints"))
    with open(os.path.join(log_dir, "metrics.jsonl"), encoding="utf-8") as f:
      calls["metric_steps"] = [json.loads(line)["step"] for line in f]
    out[name] = dict(calls)
  with open(os.path.join(out_dir, "calls.json"), "w", encoding="utf-8") as f:
    json.dump(out, f)


if __name__ == "__main__":
  main(sys.argv[1])
