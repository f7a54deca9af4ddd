"""Run checkpoints: exact round trip, keep-last-N, restore onto other meshes, crash safety,
reading without writing (a read-only directory, a live run's save in progress), and the
errors for an unwritable directory and a checkpoint from a different model.

References are independent of Orbax: host NumPy copies taken before saving, shardings
computed by `learner.train_state_shardings` for the target mesh, and the directory
listing on disk.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from absolute_zero import checkpointing as ckpt_lib
from absolute_zero import learner as learner_lib
from absolute_zero import sharding as sharding_lib
from absolute_zero.policy_loading import load_run_checkpoint
from absolute_zero.models.presets import get_config
from absolute_zero.tasks.buffers import TaskBuffers
from absolute_zero.tasks.types import TaskType, Triplet

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def model_config():
  return get_config("tiny-qwen2")


@pytest.fixture(scope="module")
def learner_config():
  return learner_lib.LearnerConfig(learning_rate=1e-3)


def make_train_state(model_config, learner_config, mesh, seed=0, step=7):
  """A TrainState on `mesh` whose every float leaf (moments too) is random and non-zero.

  Built on the host with NumPy and placed with `device_put`: no per-leaf compilation.
  """
  abstract = learner_lib.abstract_train_state(model_config, learner_config, mesh)
  rng = np.random.default_rng(seed)

  def leaf(x):
    if jnp.issubdtype(x.dtype, jnp.floating):
      value = rng.standard_normal(x.shape).astype(x.dtype)
    else:
      value = rng.integers(1, 100, x.shape).astype(x.dtype)
    return jax.device_put(value, x.sharding)

  state = jax.tree.map(leaf, abstract)
  return state._replace(step=jax.device_put(np.asarray(step, np.int32), state.step.sharding))


def host_copy(tree):
  return jax.tree.map(lambda x: np.array(x), tree)


def run_config(model_config, **overrides):
  return {
      "model": model_config.replace(**overrides) if overrides else model_config,
      "learner": learner_lib.LearnerConfig(learning_rate=1e-3),
      "batch_size": 4,
      "task_types": ("deduction", "abduction", "induction"),
  }


def buffers_state():
  buffers = TaskBuffers.seeded()
  buffers[TaskType.DEDUCTION].add(
      [Triplet(program="def f(x):\n    return x * 2", input="3", output="6")], step=2
  )
  return buffers.state_dict()


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory, model_config, learner_config):
  """One checkpoint at step 7, written on a (2, 2, 2) mesh of 8 devices."""
  directory = tmp_path_factory.mktemp("ckpt") / "run"
  mesh = sharding_lib.make_mesh((2, 2, 2))
  state = make_train_state(model_config, learner_config, mesh)
  rng = jax.random.fold_in(jax.random.key(42), 3)
  expected = {
      "state": host_copy(state),
      "rng": np.array(jax.random.key_data(rng)),
      "buffers": buffers_state(),
      "config": ckpt_lib.to_jsonable(run_config(model_config)),
      "extra": {"metrics_step": 7, "note": "x", "nested": {"a": [1, 2.5]}},
  }
  with ckpt_lib.RunCheckpointer(directory, keep=3, async_save=True) as ckpt:
    ckpt.save(7, state, rng, expected["buffers"], run_config(model_config), expected["extra"])
  return directory, expected


def assert_tree_equal(actual, expected_host):
  a_leaves, a_def = jax.tree.flatten(actual)
  e_leaves, e_def = jax.tree.flatten(expected_host)
  assert a_def == e_def
  for a, e in zip(a_leaves, e_leaves):
    assert a.dtype == e.dtype and a.shape == e.shape
    np.testing.assert_array_equal(np.asarray(a), e)


# ------------------------------------------------------------------ round trips


def test_round_trip_restores_every_item_exactly(saved_run, model_config, learner_config):
  directory, expected = saved_run
  mesh = sharding_lib.make_mesh((2, 2, 2))
  with ckpt_lib.RunCheckpointer(directory) as ckpt:
    assert ckpt.latest_step() == 7 and ckpt.all_steps() == [7]
    abstract = learner_lib.abstract_train_state(model_config, learner_config, mesh)
    run = ckpt.restore(None, abstract, config=run_config(model_config))
  assert isinstance(run.train_state, learner_lib.TrainState)
  assert_tree_equal(run.train_state, expected["state"])
  assert int(run.train_state.step) == 7
  assert jnp.issubdtype(run.rng.dtype, jax.dtypes.prng_key)
  np.testing.assert_array_equal(np.asarray(jax.random.key_data(run.rng)), expected["rng"])
  # The restored key draws the same numbers as the original.
  original = jax.random.fold_in(jax.random.key(42), 3)
  np.testing.assert_array_equal(
      jax.random.uniform(run.rng, (4,)), jax.random.uniform(original, (4,))
  )
  assert run.buffers == expected["buffers"]
  reloaded = TaskBuffers()
  reloaded.load_state_dict(run.buffers)
  assert reloaded.sizes() == {"deduction": 2, "abduction": 1, "induction": 0}
  assert run.config == expected["config"]
  assert run.config["model"]["num_layers"] == model_config.num_layers
  assert run.extra == expected["extra"]


@pytest.mark.parametrize("target", ["one_device", "mesh_1_8_1"])
def test_restore_onto_a_different_mesh(saved_run, model_config, learner_config, target):
  directory, expected = saved_run
  if target == "one_device":
    mesh = sharding_lib.make_mesh((1, 1, 1), devices=jax.devices()[:1])
  else:
    mesh = sharding_lib.make_mesh((1, 8, 1))
  want = learner_lib.train_state_shardings(model_config, learner_config, mesh)
  abstract = learner_lib.abstract_train_state(model_config, learner_config, mesh)
  with ckpt_lib.RunCheckpointer(directory) as ckpt:
    run = ckpt.restore(7, abstract)
  assert_tree_equal(run.train_state, expected["state"])
  for array, sharding in zip(jax.tree.leaves(run.train_state), jax.tree.leaves(want)):
    assert array.sharding.is_equivalent_to(sharding, array.ndim), (array.sharding, sharding)
    assert array.sharding.mesh.devices.size == mesh.devices.size
  if target == "mesh_1_8_1":
    # The embedding [vocab, embed] is split over fsdp on embed: 8 distinct shards.
    emb = run.train_state.params["embedding"]
    assert emb.sharding.spec[1] == "fsdp"
    assert len({str(s.index) for s in emb.addressable_shards}) == 8
  else:
    assert {d for x in jax.tree.leaves(run.train_state) for d in x.devices()} == {jax.devices()[0]}


@pytest.mark.parametrize("mesh_shape", [(2, 2, 2), (1, 1, 1)])
def test_async_save_survives_deleting_the_source_arrays(
    tmp_path, model_config, learner_config, mesh_shape
):
  """The learner donates its state right after a save: the save must not need it."""
  mesh = sharding_lib.make_mesh(mesh_shape, devices=jax.devices()[: int(np.prod(mesh_shape))])
  state = make_train_state(model_config, learner_config, mesh, seed=3, step=1)
  expected = host_copy(state)
  with ckpt_lib.RunCheckpointer(tmp_path / "c", async_save=True) as ckpt:
    ckpt.save(1, state, jax.random.key(0), {}, {"model": model_config}, {})
    for leaf in jax.tree.leaves(state):
      leaf.delete()
    ckpt.wait_until_finished()
    run = ckpt.restore(1, learner_lib.abstract_train_state(model_config, learner_config, mesh))
  assert_tree_equal(run.train_state, expected)


def test_raw_uint32_key_round_trips(tmp_path):
  state = {"w": jnp.arange(6.0).reshape(2, 3)}
  raw = jax.random.PRNGKey(9)  # legacy uint32[2] key
  with ckpt_lib.RunCheckpointer(tmp_path / "c", async_save=False) as ckpt:
    ckpt.save(0, state, raw, {}, {}, {})
    run = ckpt.restore(0, state)
  assert run.rng.dtype == jnp.uint32
  np.testing.assert_array_equal(run.rng, raw)


def test_keep_last_n_deletes_older_steps(tmp_path):
  directory = tmp_path / "c"
  state = {"w": jnp.zeros((4,))}
  with ckpt_lib.RunCheckpointer(directory, keep=2, async_save=True) as ckpt:
    for step in range(1, 6):
      ckpt.save(step, {"w": state["w"] + step}, jax.random.key(step), {}, {}, {"s": step})
    ckpt.wait_until_finished()
    assert ckpt.all_steps() == [4, 5]
    assert ckpt.latest_step() == 5
    run = ckpt.restore(4, state)
  np.testing.assert_array_equal(run.train_state["w"], np.full((4,), 4.0, np.float32))
  assert run.extra == {"s": 4}
  assert sorted(p.name for p in directory.iterdir() if p.name.isdigit()) == ["4", "5"]


# ------------------------------------------------------------------ errors


def test_steps_must_increase(tmp_path):
  state = {"w": jnp.zeros((2,))}
  with ckpt_lib.RunCheckpointer(tmp_path / "c", async_save=False) as ckpt:
    ckpt.save(3, state, jax.random.key(0), {}, {}, {})
    with pytest.raises(ckpt_lib.CheckpointError, match="cannot save step 3.*holds step 3"):
      ckpt.save(3, state, jax.random.key(0), {}, {}, {})
    with pytest.raises(ckpt_lib.CheckpointError, match="cannot save step 2"):
      ckpt.save(2, state, jax.random.key(0), {}, {}, {})


def test_restore_errors_name_the_problem(tmp_path):
  state = {"w": jnp.zeros((2,))}
  with ckpt_lib.RunCheckpointer(tmp_path / "c", async_save=False) as ckpt:
    with pytest.raises(ckpt_lib.CheckpointError, match="no complete checkpoint"):
      ckpt.restore(None, state)
    ckpt.save(1, state, jax.random.key(0), {}, {}, {})
    with pytest.raises(ckpt_lib.CheckpointError, match=r"no checkpoint for step 5.*\[1\]"):
      ckpt.restore(5, state)
    no_sharding = {"w": jax.ShapeDtypeStruct((2,), jnp.float32)}
    with pytest.raises(ValueError, match="target sharding on every leaf.*w"):
      ckpt.restore(1, no_sharding)


def test_json_items_must_be_json_able(tmp_path):
  with ckpt_lib.RunCheckpointer(tmp_path / "c", async_save=False) as ckpt:
    with pytest.raises(ckpt_lib.CheckpointError, match="'extra' is not JSON-able"):
      ckpt.save(1, {"w": jnp.zeros(2)}, jax.random.key(0), {}, {}, {"f": object()})
    with pytest.raises(ckpt_lib.CheckpointError, match="'config'.*non-finite"):
      ckpt.save(1, {"w": jnp.zeros(2)}, jax.random.key(0), {}, {"lr": float("nan")}, {})
    assert ckpt.latest_step() is None


def test_unwritable_directory_gives_one_clear_error(tmp_path):
  a_file = tmp_path / "file"
  a_file.write_text("not a directory")
  with pytest.raises(ckpt_lib.CheckpointDirError, match=r"'.*file/ckpt' is not writable"):
    ckpt_lib.RunCheckpointer(a_file / "ckpt")
  # sysfs refuses new directories even to root.
  with pytest.raises(ckpt_lib.CheckpointDirError, match="not writable"):
    ckpt_lib.RunCheckpointer("/sys/azr-checkpoint-probe")


def test_checkpoint_from_a_different_model_is_refused(saved_run, model_config, learner_config):
  directory, _ = saved_run
  other = model_config.replace(num_layers=3, embed_dim=96)
  mesh = sharding_lib.make_mesh((2, 2, 2))
  with ckpt_lib.RunCheckpointer(directory) as ckpt:
    ckpt.check_compatible(run_config(model_config))  # same model: no error
    with pytest.raises(ckpt_lib.IncompatibleCheckpointError) as info:
      ckpt.check_compatible(run_config(model_config, num_layers=3, embed_dim=96))
    message = str(info.value)
    assert "embed_dim: checkpoint=64, current=96" in message
    assert "num_layers: checkpoint=2, current=3" in message
    assert "vocab_size" not in message
    # restore(config=...) checks before reading arrays.
    with pytest.raises(ckpt_lib.IncompatibleCheckpointError, match="num_layers"):
      ckpt.restore(
          7,
          learner_lib.abstract_train_state(model_config, learner_config, mesh),
          config=run_config(model_config, num_layers=3, embed_dim=96),
      )
    # Without a config, the layout check names the leaves whose shapes differ.
    with pytest.raises(
        ckpt_lib.IncompatibleCheckpointError,
        match=r"params/embedding: checkpoint shape \(512, 64\), target shape " r"\(512, 96\)",
    ):
      ckpt.restore(7, learner_lib.abstract_train_state(other, learner_config, mesh))


def test_model_field_differences_reads_flat_or_nested_configs():
  saved = {"model": {"num_layers": 2, "vocab_size": 10, "name": "a"}}
  assert ckpt_lib.model_field_differences(saved, {"num_layers": 2, "vocab_size": 10}) == []
  assert ckpt_lib.model_field_differences(
      saved, {"model": {"num_layers": 4, "vocab_size": 10}}
  ) == ["num_layers: checkpoint=2, current=4"]
  assert ckpt_lib.model_field_differences(saved, {"model": {"vocab_size": 10}}) == [
      "num_layers: checkpoint=2, current='<absent>'"
  ]


# ------------------------------------------------------------------ reading never writes


def _tree_snapshot(root):
  """Relative path -> (file type, mtime in ns, bytes of a file) for everything under `root`.

  A created-and-deleted probe file still shows: it changes its directory's mtime."""
  out = {".": (None, os.stat(root).st_mtime_ns, None)}
  for dirpath, dirnames, filenames in os.walk(root):
    for name in dirnames + filenames:
      path = os.path.join(dirpath, name)
      st = os.lstat(path)
      content = None
      if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
          content = f.read()
      out[os.path.relpath(path, root)] = (stat.S_IFMT(st.st_mode), st.st_mtime_ns, content)
  return out


def _copy_with_save_in_progress(saved_run, tmp_path):
  """A copy of the saved run beside the unfinished save of step 9 a live run would leave."""
  directory = tmp_path / "run"
  shutil.copytree(saved_run[0], directory)
  live = directory / "9.orbax-checkpoint-tmp-1764490000" / "train_state"
  live.mkdir(parents=True)
  (live / "partial").write_bytes(b"half-written array")
  return directory


def _read_as_evaluation_and_export_do(directory, expected, model_config):
  """The readers' paths: the step query, the saved config, the params (one device)."""
  with ckpt_lib.RunCheckpointer(directory, async_save=False, read_only=True) as ckpt:
    assert ckpt.latest_step() == 7 and ckpt.all_steps() == [7]
    assert ckpt.saved_config(7) == expected["config"]
  config, params, source = load_run_checkpoint(directory)
  assert config.num_layers == model_config.num_layers and source == ""
  assert_tree_equal(params, expected["state"].params)
  assert load_run_checkpoint(directory, params_too=False)[1] is None


def test_reading_leaves_a_save_in_progress_untouched(saved_run, tmp_path, model_config):
  directory = _copy_with_save_in_progress(saved_run, tmp_path)
  before = _tree_snapshot(directory)
  _read_as_evaluation_and_export_do(directory, saved_run[1], model_config)
  assert _tree_snapshot(directory) == before  # no probe file, no tmp cleanup, nothing new


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod a-w")
def test_reading_works_on_a_read_only_directory(saved_run, tmp_path, model_config):
  directory = _copy_with_save_in_progress(saved_run, tmp_path)
  subprocess.run(["chmod", "-R", "a-w", str(directory)], check=True)
  try:
    before = _tree_snapshot(directory)
    _read_as_evaluation_and_export_do(directory, saved_run[1], model_config)
    assert _tree_snapshot(directory) == before
  finally:
    subprocess.run(["chmod", "-R", "u+w", str(directory)], check=True)


# ------------------------------------------------------------------ crash safety

_CHILD = textwrap.dedent("""
    import os, sys, time
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp
    from absolute_zero.checkpointing import RunCheckpointer

    directory, n = sys.argv[1], int(sys.argv[2])
    def state(step):  # [n] float32 x 4 leaves
      base = jnp.arange(n, dtype=jnp.float32)
      return {"a": base + step, "b": base * step, "c": base - step, "d": -base + step,
              "step": jnp.asarray(step, jnp.int32)}
    ckpt = RunCheckpointer(directory, keep=3, async_save=True)
    ckpt.save(1, state(1), jax.random.key(1), {"b": 1}, {"c": 1}, {"e": 1})
    ckpt.wait_until_finished()
    print("SAVED 1", flush=True)
    s2 = jax.block_until_ready(state(2))
    ckpt.save(2, s2, jax.random.key(2), {"b": 2}, {"c": 2}, {"e": 2})
    print("SAVING 2", flush=True)
    ckpt.wait_until_finished()
    print("SAVED 2", flush=True)
    time.sleep(600)
""")


def _expected_state(step, n):
  base = np.arange(n, dtype=np.float32)
  return {
      "a": base + step,
      "b": base * step,
      "c": base - step,
      "d": -base + step,
      "step": np.asarray(step, np.int32),
  }


def _kill_during_second_save(directory, n) -> bool:
  """Runs the child, SIGKILLs it while step 2 is being written; True if caught mid-save."""
  env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  env.pop("XLA_FLAGS", None)
  err_path = os.path.join(directory, os.pardir, f"child-{os.path.basename(directory)}.err")
  err = open(err_path, "w")  # a file, not a pipe: nobody drains stderr while we read stdout
  child = subprocess.Popen(
      [sys.executable, "-c", _CHILD, str(directory), str(n)],
      stdout=subprocess.PIPE,
      stderr=err,
      text=True,
      env=env,
  )
  try:
    deadline = time.monotonic() + 45
    for line in child.stdout:
      if line.startswith("SAVING 2") or time.monotonic() > deadline:
        break
    else:
      err.flush()
      with open(err_path) as f:
        tail = f.read()[-2000:]
      raise AssertionError(f"child exited before saving step 2; its stderr:\n{tail}")
    # The async save is now writing in the background; kill as soon as its tmp dir shows.
    while time.monotonic() < deadline:
      names = os.listdir(directory)
      if "2" in names:
        break  # finished before we could kill it: too small a state
      if any(n.startswith("2.") and "tmp" in n for n in names):
        break
      time.sleep(0.002)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
  finally:
    if child.poll() is None:
      child.kill()
      child.wait()
    err.close()
  names = os.listdir(directory)
  return "2" not in names and any(n.startswith("2.") for n in names)


def test_sigkill_during_save_resumes_from_previous_complete_step(tmp_path):
  n = 4_000_000  # 4 leaves x 16 MB: a save takes a good fraction of a second
  for attempt in range(3):
    directory = tmp_path / f"run{attempt}"
    os.makedirs(directory)
    if _kill_during_second_save(directory, n):
      break
    n *= 2
  else:
    pytest.fail("could not kill the child while step 2 was being written")
  assert any(".orbax-checkpoint-tmp" in name for name in os.listdir(directory))

  with ckpt_lib.RunCheckpointer(directory, async_save=False) as ckpt:
    assert ckpt.latest_step() == 1
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(
            x.shape, x.dtype, sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0])
        ),
        _expected_state(1, n),
    )
    run = ckpt.restore(None, target)
    assert_tree_equal(run.train_state, _expected_state(1, n))
    np.testing.assert_array_equal(
        jax.random.key_data(run.rng), jax.random.key_data(jax.random.key(1))
    )
    assert (run.buffers, run.config, run.extra) == ({"b": 1}, {"c": 1}, {"e": 1})
    # The resumed run writes step 2 again; the half-written one is gone.
    ckpt.save(2, _expected_state(2, n), jax.random.key(2), {}, {}, {})
    assert ckpt.all_steps() == [1, 2]
    assert sorted(os.listdir(directory)) == ["1", "2"]


# ------------------------------------------------------------------ failed writes


@pytest.mark.parametrize("async_save", [True, False])
def test_a_failed_write_is_one_checkpoint_write_error_and_loses_nothing(
    tmp_path, model_config, learner_config, async_save
):
  """A write the OS refuses (here a file-size limit, as a full disk refuses it) surfaces as
  CheckpointWriteError naming the directory and the OS's reason, whether the save runs in
  the background or not; the step before stays the latest complete one and a later save
  into the same directory works."""
  import resource

  directory = tmp_path / "run"
  mesh = sharding_lib.make_mesh((1, 1, 1), jax.devices()[:1])
  state = make_train_state(model_config, learner_config, mesh)
  expected = host_copy(state)
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  with ckpt_lib.RunCheckpointer(directory, keep=3, async_save=async_save) as ckpt:
    ckpt.save(1, state, None, buffers_state(), run_config(model_config))
    ckpt.wait_until_finished()
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, hard))  # files over 16 KiB fail
    try:
      with pytest.raises(ckpt_lib.CheckpointWriteError) as failed:
        ckpt.save(2, state, None, buffers_state(), run_config(model_config))
        ckpt.wait_until_finished()
    finally:
      resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    message = str(failed.value)
    assert f"writing a checkpoint in {directory} failed" in message
    assert message.endswith(": File too large (errno 27)"), message
    assert "\n" not in message
  assert ckpt_lib.complete_steps(directory) == [1]
  with ckpt_lib.RunCheckpointer(directory, keep=3, async_save=async_save) as ckpt:
    assert ckpt.latest_step() == 1
    assert_tree_equal(ckpt.restore(None, state).train_state, expected)
    ckpt.save(2, state, None, buffers_state(), run_config(model_config))
  assert ckpt_lib.complete_steps(directory) == [1, 2]


def test_a_full_disk_is_named_in_the_error():
  error = ckpt_lib._write_failure(
      "/runs/x", ValueError('RESOURCE_EXHAUSTED: Error writing "a" in OCDBT database\nmore detail')
  )
  assert str(error) == (
      "writing a checkpoint in /runs/x failed (the disk is full: free "
      "space, or keep fewer checkpoints): RESOURCE_EXHAUSTED: Error "
      'writing "a" in OCDBT database'
  )
  assert "disk is full" in str(ckpt_lib._write_failure("/r", OSError(28, "No space left")))
  tensorstore = ValueError(
      'RESOURCE_EXHAUSTED: Error writing "a": Failed writing: "/r/d/1": '
      "Failed to write 9 bytes to file 19: No space left on device "
      "[tensorstore_spec='{\"a\": [1]}'] [os_error_code='28']"
  )
  assert str(ckpt_lib._write_failure("/r", tensorstore)).endswith(
      "(the disk is full: free space, or keep fewer checkpoints): No space left on device "
      "(errno 28)"
  )
  assert "disk is full" not in str(ckpt_lib._write_failure("/r", OSError(13, "denied")))
