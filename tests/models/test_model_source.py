"""What a model source resolves to, and the error for each kind of unusable one."""

import dataclasses
import json
import os

import jax
import pytest

from absolute_zero import checkpointing, learner, sharding
from absolute_zero.models import get_config, init_params
from absolute_zero.models.hf_import import config_from_hf
from absolute_zero.models.hf_layout import ModelFileError as ImportError_
from absolute_zero.policy_loading import (
    ModelSourceError,
    load_model,
    load_run_checkpoint,
    resolve_model_source,
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  """A run directory (azr's --log_dir) whose checkpoints/ holds step 4 of tiny-llama."""
  root = tmp_path_factory.mktemp("run")
  config = get_config("tiny-llama")
  lc = learner.LearnerConfig(learning_rate=1e-3)
  state = learner.init_train_state(
      init_params(config, jax.random.key(1)), lc, sharding.single_device_mesh(), config
  )
  saved = checkpointing.to_jsonable(
      {
          "model": dataclasses.asdict(config),
          "learner": dataclasses.asdict(lc),
          "model_source": "smollm2-135m",
      }
  )
  with checkpointing.RunCheckpointer(root / "checkpoints", async_save=False) as ckpt:
    ckpt.save(4, state, jax.random.key(0), {}, saved, {})
  return root


def test_run_directory_and_its_checkpoints_resolve_alike(run_dir, monkeypatch):
  expected = ("run", str(run_dir / "checkpoints"))
  assert resolve_model_source(str(run_dir)) == expected
  assert resolve_model_source(str(run_dir / "checkpoints")) == expected
  monkeypatch.chdir(run_dir.parent)
  assert resolve_model_source(run_dir.name) == expected  # relative to the cwd
  monkeypatch.setenv("HOME", str(run_dir.parent))
  assert resolve_model_source(f"~/{run_dir.name}/checkpoints") == expected


def test_missing_paths_say_no_such_file(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  for source in ("absent/dir", "absent.gguf", "./absent", str(tmp_path / "x")):
    with pytest.raises(FileNotFoundError, match="no such file or directory") as info:
      resolve_model_source(source)
    assert "preset" not in str(info.value)  # no list of names for a path
  with pytest.raises(ModelSourceError, match="cannot interpret model source 'qwen-9000'"):
    resolve_model_source("qwen-9000")


@pytest.mark.parametrize(
    "layout, reason",
    [
        ({}, "the directory is empty"),
        ({"3.orbax-checkpoint-tmp-1764490000/": None}, "only unfinished saves"),
        ({"notes.txt": "hello", "data/": None}, "only: data, notes.txt"),
        ({"7/": None, "7/meta/": None}, "without train_state"),
        ({"checkpoints/": None}, "checkpoints holds no usable checkpoint"),
    ],
)
def test_directories_without_a_model_say_why(tmp_path, layout, reason):
  for name, text in layout.items():
    path = tmp_path / name
    if name.endswith("/"):
      path.mkdir(parents=True)
    else:
      path.write_text(text)
  with pytest.raises(ModelSourceError, match=reason):
    resolve_model_source(str(tmp_path))
  with pytest.raises(ModelSourceError, match=reason):  # load_model raises the same
    load_model(str(tmp_path))


def test_a_file_that_is_not_gguf(tmp_path):
  (tmp_path / "weights.bin").write_bytes(b"\0" * 8)
  with pytest.raises(ModelSourceError, match="not a .gguf file"):
    resolve_model_source(str(tmp_path / "weights.bin"))


def test_hf_config_errors_name_the_file_and_every_missing_field(tmp_path):
  with pytest.raises(
      ImportError_,
      match=r"cfg\.json lacks required fields vocab_size, "
      r"num_hidden_layers, num_attention_heads, intermediate_size",
  ):
    config_from_hf({"model_type": "llama", "hidden_size": 8}, source="cfg.json")
  with pytest.raises(ImportError_, match=r"\(text_config\) lacks required field hidden_size"):
    config_from_hf(
        {
            "model_type": "gemma3",
            "text_config": {
                "vocab_size": 8,
                "num_hidden_layers": 1,
                "num_attention_heads": 1,
                "intermediate_size": 8,
            },
        }
    )
  full = {
      "model_type": "llama",
      "hidden_size": 8,
      "vocab_size": 8,
      "num_hidden_layers": 1,
      "num_attention_heads": 1,
      "intermediate_size": 8,
      "rope_scaling": {"rope_type": "llama3", "factor": 8.0},
  }
  with pytest.raises(ImportError_, match="lacks field 'low_freq_factor'"):
    config_from_hf(full)
  (tmp_path / "config.json").write_text('{"model_type": "lla')
  with pytest.raises(ImportError_, match="config.json: not valid JSON"):
    load_model(str(tmp_path))


def test_reading_a_run_checkpoint_leaves_the_directory_alone(run_dir):
  """Evaluating a live run must not delete its save in progress nor write anything."""
  ckpts = run_dir / "checkpoints"
  in_progress = ckpts / "5.orbax-checkpoint-tmp-1764490000"
  in_progress.mkdir()
  (in_progress / "part").write_text("being written")
  before = sorted(str(p) for p in ckpts.rglob("*"))
  os.chmod(ckpts, 0o555)  # a reader needs no write access either (unless root)
  try:
    config, params, source = load_run_checkpoint(ckpts)
  finally:
    os.chmod(ckpts, 0o755)
  assert config == get_config("tiny-llama") and source == "smollm2-135m" and params
  assert sorted(str(p) for p in ckpts.rglob("*")) == before
  import shutil

  shutil.rmtree(in_progress)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # TensorStore
def test_truncated_checkpoint_files_are_one_checkpoint_error(run_dir, tmp_path):
  import shutil

  copy = tmp_path / "copy"
  shutil.copytree(run_dir / "checkpoints", copy)
  for path in copy.rglob("*"):
    if path.is_file() and path.parent.name == "d":  # the arrays' data files
      os.truncate(path, path.stat().st_size // 2)
  with pytest.raises(checkpointing.CheckpointError, match=r"copy/4 cannot be read"):
    load_run_checkpoint(copy)
  config_file = copy / "4" / "config" / "metadata"
  config_file.write_text(json.dumps({"model": 1})[:5])
  with pytest.raises(checkpointing.CheckpointError, match=r"copy/4 cannot be read"):
    load_run_checkpoint(copy, params_too=False)
