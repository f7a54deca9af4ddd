"""A self-play run's Orbax checkpoint loads back as (config, params) for evaluation."""

import dataclasses

import jax
import numpy as np

from absolute_zero import learner, sharding
from absolute_zero.checkpointing import RunCheckpointer, to_jsonable
from absolute_zero.models import get_config, init_params
from absolute_zero.policy_loading import (
    is_run_checkpoint_dir,
    learner_fields_from_run_config,
    load_run_checkpoint,
    resolve_model_source,
)


def test_run_checkpoint_round_trip(tmp_path):
  config = get_config("tiny-llama")
  lc = learner.LearnerConfig(learning_rate=1e-3)
  params = init_params(config, jax.random.key(5))
  state = learner.init_train_state(params, lc, sharding.single_device_mesh(), config)
  saved = to_jsonable(
      {
          "model": dataclasses.asdict(config),
          "learner": dataclasses.asdict(lc),
          "model_source": "smollm2-135m",
      }
  )
  with RunCheckpointer(tmp_path / "run", async_save=False) as ckpt:
    ckpt.save(3, state, jax.random.key(0), {}, saved, {})
  assert is_run_checkpoint_dir(tmp_path / "run")
  assert resolve_model_source(str(tmp_path / "run")) == ("run", str(tmp_path / "run"))
  loaded_config, loaded, source = load_run_checkpoint(tmp_path / "run")
  assert loaded_config == config and source == "smollm2-135m"
  jax.tree.map(
      lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), loaded, params
  )


def test_a_config_saved_before_the_split_chunk_knobs_keeps_its_heads():
  """`logprob_chunk_size` (rows for the fused head, columns for the autodiff one, None: the
  unfused full head) becomes the two knobs; unknown fields are dropped, new ones kept."""
  old = {"learning_rate": 1e-3, "logprob_chunk_size": 256, "fused_head": True, "gone": 1}
  assert learner_fields_from_run_config(old) == {
      "learning_rate": 1e-3,
      "fused_head": True,
      "logprob_row_chunk_size": 256,
      "logprob_vocab_chunk_size": 256,
  }
  assert learner_fields_from_run_config({"logprob_chunk_size": None, "fused_head": True}) == {
      "fused_head": False,
      "logprob_row_chunk_size": None,
      "logprob_vocab_chunk_size": None,
  }
  new = {"logprob_row_chunk_size": 8, "logprob_vocab_chunk_size": 16}
  assert learner_fields_from_run_config(new) == new
  assert (
      learner.LearnerConfig(**learner_fields_from_run_config(old)).logprob_vocab_chunk_size == 256
  )
