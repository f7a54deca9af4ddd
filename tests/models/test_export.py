"""Hugging Face export: transformers loads what we write, with our logits and our token ids.

The reference is transformers itself (PyTorch, float32, eager attention): the exported
directory goes through `AutoModelForCausalLM.from_pretrained` and
`AutoTokenizer.from_pretrained`, and must give our logits (within 1e-4) and our ids on the
tokenizer test strings (tests/golden/tokenizer_strings.json). The tiny models have every
family switch on and randomised norms and biases (zeros and ones would hide a misplaced
tensor); the embedded Gemma 3 270M runs the same check on real weights (slow), with a bound
relative to its logits' scale (float32 rounding alone exceeds 1e-4 there; see that test).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from absolute_zero import tokenizers as tk  # noqa: E402
from absolute_zero.models import compute_logits, forward, get_config, init_params  # noqa: E402
from absolute_zero.models.hf_export import export_hf  # noqa: E402
from absolute_zero.models.hf_import import load_hf_checkpoint  # noqa: E402
from absolute_zero.tokenizer_export import write_hf_tokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
FAMILIES = ["tiny-gemma3", "tiny-qwen2", "tiny-llama"]


@pytest.fixture(scope="module")
def strings() -> list[str]:
  return json.loads((GOLDEN / "tokenizer_strings.json").read_text(encoding="utf-8"))["strings"]


def _random_params(config, seed: int = 0) -> dict:
  """Random parameters of `config`'s shapes, norm scales and biases included (numpy draws:
  flax's init runs the model op by op, seconds per family)."""
  shapes = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    std = 0.3 if ("norm" in name or "bias" in name) else 0.5 if "embedding" in name else 0.05
    return rng.normal(0, std, leaf.shape).astype(leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def _our_logits(config, params, ids: np.ndarray) -> np.ndarray:
  """[B, T, V] float32 logits of our forward for token ids [B, T]."""
  positions = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
  fwd = jax.jit(lambda p, t, pos: compute_logits(p, forward(p, t, pos, None, config), config))
  return np.asarray(fwd(params, jnp.asarray(ids), jnp.asarray(positions)))


def _hf_logits(directory, ids: np.ndarray) -> np.ndarray:
  model = transformers.AutoModelForCausalLM.from_pretrained(
      str(directory), dtype=torch.float32, attn_implementation="eager"
  )
  with torch.no_grad():
    return model(torch.from_numpy(np.asarray(ids))).logits.numpy()


def _tiny_sentencepiece(directory: Path) -> Path:
  """A Gemma-style SentencePiece BPE model (identity normaliser, byte fallback, turn
  markers as control pieces, whitespace runs as user-defined pieces), 360 pieces."""
  spm = pytest.importorskip("sentencepiece")
  corpus = directory / "corpus.txt"
  corpus.write_text(
      "\n".join(
          [
              "def add(a, b):",
              "    return a + b",
              "hello world",
              "the cat sat on the mat",
              "x = [1, 2, 3]",
          ]
          * 50
      )
  )
  spm.SentencePieceTrainer.train(
      input=str(corpus),
      model_prefix=str(directory / "tokenizer"),
      vocab_size=360,
      model_type="bpe",
      byte_fallback=True,
      add_dummy_prefix=False,
      control_symbols=["<start_of_turn>", "<end_of_turn>"],
      user_defined_symbols=["  ", "   ", "    ", "\n\n"],
      normalization_rule_name="identity",
      remove_extra_whitespaces=False,
      bos_id=2,
      eos_id=1,
      pad_id=0,
      unk_id=3,
      minloglevel=2,
  )
  corpus.unlink()
  (directory / "tokenizer.vocab").unlink()
  return directory / "tokenizer.model"


def _tiny_tokenizer_json(directory: Path, qwen2: bool) -> Path:
  """A byte-level BPE tokenizer.json (500 tokens) trained on proposer prompts. For Qwen2,
  with Qwen2's NFC normaliser and pre-tokenizer regex (taken from transformers), because
  transformers 5 gives a qwen2 model Qwen2's pre-tokenizer whatever tokenizer.json says."""
  from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
  from tokenizers import trainers
  from tests.selfplay.teaching import proposer_prompts

  tok = Tokenizer(models.BPE())
  if qwen2:
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
  else:
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
  tok.decoder = decoders.ByteLevel()
  tok.train_from_iterator(
      proposer_prompts(),
      trainers.BpeTrainer(
          vocab_size=500,
          special_tokens=specials,
          initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
      ),
  )
  tok.save(str(directory / "tokenizer.json"))
  return directory / "tokenizer.json"


def _assert_same_ids(ours: tk.Tokenizer, directory, strings):
  """AutoTokenizer from `directory` encodes and decodes every string as `ours` does."""
  theirs = transformers.AutoTokenizer.from_pretrained(str(directory))
  diff = []
  for k, s in enumerate(strings):
    expected = ours.encode(s, parse_special=True, add_bos=False)
    got = theirs.encode(s, add_special_tokens=False)
    if got != expected:
      diff.append((k, s[:40], expected[:10], got[:10]))
  assert not diff, f"{len(diff)}/{len(strings)} strings differ, e.g. {diff[:3]}"
  return theirs


@pytest.mark.parametrize("name", FAMILIES)
def test_tiny_export_loads_in_transformers_with_our_logits(name, tmp_path, strings):
  config = get_config(name)
  params = _random_params(config)
  tok_dir = tmp_path / "tok"
  tok_dir.mkdir()
  source = (
      _tiny_sentencepiece(tok_dir)
      if config.family == "gemma3"
      else _tiny_tokenizer_json(tok_dir, qwen2=config.family == "qwen2")
  )
  out = tmp_path / "hf"
  result = export_hf(
      config, params, out, tokenizer_source=str(source), max_shard_bytes=200_000
  )  # several shards and an index
  assert "model.safetensors.index.json" in result.files
  assert {
      "config.json",
      "generation_config.json",
      "tokenizer.json",
      "tokenizer_config.json",
  } <= set(result.files)
  assert sorted(result.files) == sorted(os.listdir(out))

  rng = np.random.default_rng(1)
  ids = rng.integers(0, config.vocab_size, (3, 24))  # 3x the tiny Gemma window of 8
  ours = _our_logits(config, params, ids)
  theirs = _hf_logits(out, ids)
  err = float(np.abs(ours - theirs).max())
  print(f"{name}: max |logit difference| {err:.2e}")
  assert err <= 1e-4, err

  # Our importer reads the export back to the same parameters and config.
  back_config, back = load_hf_checkpoint(out)
  for field in (
      "family",
      "vocab_size",
      "embed_dim",
      "num_layers",
      "num_heads",
      "num_kv_heads",
      "head_dim",
      "mlp_dim",
      "tie_embeddings",
      "qkv_bias",
      "qk_norm",
      "post_norms",
      "rope_base",
      "rope_scaling",
      "sliding_window",
      "global_every",
      "query_pre_attn_scalar",
      "rms_norm_eps",
  ):
    assert getattr(back_config, field) == getattr(config, field), field
  jax.tree.map(
      lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), back, params
  )

  ours_tok = tk.load_tokenizer(source)
  theirs_tok = _assert_same_ids(ours_tok, out, strings)
  hf_config = json.loads((out / "config.json").read_text())
  assert hf_config.get("bos_token_id") == ours_tok.bos_id == theirs_tok.bos_token_id
  generation = json.loads((out / "generation_config.json").read_text())
  stops = generation["eos_token_id"]
  assert (stops if isinstance(stops, list) else [stops]) == list(ours_tok.stop_ids)


def test_bfloat16_export_is_our_weights_rounded(tmp_path):
  """--dtype=bfloat16 stores round-to-nearest bfloat16 of each float32 weight."""
  import ml_dtypes

  config = get_config("tiny-llama")
  params = _random_params(config, seed=3)
  export_hf(config, params, tmp_path, tokenizer_source=None, dtype="bfloat16")
  header_len = int.from_bytes((tmp_path / "model.safetensors").read_bytes()[:8], "little")
  header = json.loads((tmp_path / "model.safetensors").read_bytes()[8 : 8 + header_len])
  assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"BF16"}
  assert json.loads((tmp_path / "config.json").read_text())["torch_dtype"] == "bfloat16"
  _, back = load_hf_checkpoint(tmp_path)
  want = np.asarray(params["layers"]["mlp"]["up_proj"]).astype(ml_dtypes.bfloat16)
  np.testing.assert_array_equal(np.asarray(back["layers"]["mlp"]["up_proj"]), want)


def test_config_that_no_hf_model_has_is_refused(tmp_path):
  from absolute_zero.models.hf_layout import ModelFileError

  config = dataclasses.replace(get_config("tiny-llama"), qk_norm=True)
  with pytest.raises(ModelFileError, match="qk_norm=True"):
    export_hf(config, {}, tmp_path / "out", tokenizer_source=None)
  assert not (tmp_path / "out").exists()  # refused before anything is written


def test_tiny_gpt2_gguf_tokenizer(tmp_path, strings):
  """A GGUF byte-level BPE vocabulary (SmolLM2's kind) as tokenizer.json."""
  from tests.test_tokenizers import _write_tiny_gpt2_gguf

  gguf_path = tmp_path / "tiny.gguf"
  _write_tiny_gpt2_gguf(gguf_path, "smollm")
  out = tmp_path / "hf"
  out.mkdir()
  write_hf_tokenizer(gguf_path, out)
  _assert_same_ids(tk.load_tokenizer(gguf_path), out, strings)


def test_embedded_smollm2_tokenizer(tmp_path, strings):
  try:
    from absolute_zero.embedded_models import smollm2_135m_gguf_path

    smollm2_135m_gguf_path()
  except FileNotFoundError as e:
    pytest.skip(str(e))
  write_hf_tokenizer("smollm2-135m", tmp_path)
  ours = tk.load_tokenizer("smollm2-135m")
  theirs = _assert_same_ids(ours, tmp_path, strings)
  messages = [{"role": "user", "content": "Write f."}]
  assert theirs.apply_chat_template(
      messages, tokenize=False, add_generation_prompt=True
  ) == ours.apply_chat_template(messages)


# ------------------------------------------------------------------ the embedded Gemma 3


# Our side of the embedded round trip, in its own process (loading the float32 GGUF peaks at
# 3.5 GiB, load_model's own transient; with transformers' copy in the same process the test
# passed 4.9 GiB): the exported tensors must equal ours bit for bit, read here from the
# safetensors layout (8-byte header size, JSON header, raw little-endian data) in 64 MiB
# pieces, so the check adds little memory to the loaded model; our logits go to a file.
_OURS_SCRIPT = """
import json
import struct
import sys
import jax
import numpy as np
from absolute_zero.models import compute_logits, forward
from absolute_zero.models.hf_layout import hf_tensors_from_params
from absolute_zero.policy_loading import load_model
out, ids_file, logits_file = sys.argv[1:]
config, params = load_model("gemma3-270m")
weight_map = json.load(open(out + "/model.safetensors.index.json"))["weight_map"]
headers = {}
for name, tensor in hf_tensors_from_params(params, config):
  shard = out + "/" + weight_map.pop(name)
  if shard not in headers:
    with open(shard, "rb") as f:
      (size,) = struct.unpack("<Q", f.read(8))
      headers[shard] = (8 + size, json.loads(f.read(size)))
  base, header = headers[shard]
  info = header[name]
  assert info["dtype"] == "F32" and info["shape"] == list(tensor.shape), (name, info)
  flat = np.ascontiguousarray(tensor).reshape(-1)
  start, end = info["data_offsets"]
  step = 16 << 20  # floats per piece
  with open(shard, "rb") as f:
    for i in range(0, flat.size, step):
      f.seek(base + start + 4 * i)
      piece = np.frombuffer(f.read(4 * min(step, flat.size - i)), "<f4")
      np.testing.assert_array_equal(piece, flat[i:i + step], err_msg=name)
assert not weight_map, f"written but not a parameter: {sorted(weight_map)}"
ids = np.load(ids_file)  # [3, T]
fwd = jax.jit(lambda p, t: compute_logits(p, forward(p, t, np.arange(t.shape[1])[None], None,
                                                     config), config))
np.savez(logits_file, **{str(i): np.asarray(fwd(params, ids[i:i + 1])) for i in range(len(ids))})
"""


@pytest.mark.slow
def test_embedded_gemma3_export_round_trip(tmp_path, strings):
  """gemma3-270m through the command line: the stored tensors are ours bit for bit,
  transformers' float32 logits equal ours to float32 accuracy (5e-6 of max |logit|), its
  tokenizer gives our ids (with BOS by default), its chat template renders as ours. One
  model per process (the export and our side run in their own): the test's peak RSS is
  printed."""
  import resource

  try:
    tk.resolve_tokenizer_source("gemma3-270m")
  except FileNotFoundError as e:
    pytest.skip(f"embedded model not installed: {e}")
  out = tmp_path / "hf"
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [
          sys.executable,
          "-m",
          "experiments.export",
          "--checkpoint=gemma3-270m",
          f"--output={out}",
          "--max_shard_size_mb=400",
      ],
      cwd=tmp_path,
      env=env,
      capture_output=True,
      text=True,
      timeout=900,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  index = json.loads((out / "model.safetensors.index.json").read_text())
  assert len(set(index["weight_map"].values())) == 2  # the 671 MB embedding alone, the rest

  ours_tok = tk.load_tokenizer("gemma3-270m")
  prompts = [
      "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
      "The capital of France is the city of",
      "<start_of_turn>user\nWhat is 2 + 2?<end_of_turn>\n<start_of_turn>model\n",
  ]
  ids = [ours_tok.encode(p, parse_special=True) for p in prompts]
  width = min(len(i) for i in ids)
  ids = np.asarray([i[:width] for i in ids])  # [3, width]: one array for the script
  np.save(tmp_path / "ids.npy", ids)
  proc = subprocess.run(
      [
          sys.executable,
          "-c",
          _OURS_SCRIPT,
          str(out),
          str(tmp_path / "ids.npy"),
          str(tmp_path / "ours.npz"),
      ],
      cwd=tmp_path,
      env=env,
      capture_output=True,
      text=True,
      timeout=900,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  ours = np.load(tmp_path / "ours.npz")

  model = transformers.AutoModelForCausalLM.from_pretrained(
      str(out), dtype=torch.float32, attn_implementation="eager"
  )
  errors, scales = [], []
  with torch.no_grad():
    for k in range(len(ids)):
      reference = model(torch.from_numpy(ids[k : k + 1])).logits.numpy()
      mine = ours[str(k)]
      errors.append(float(np.abs(reference - mine).max()))
      scales.append(float(np.abs(reference).max()))
      np.testing.assert_array_equal(reference.argmax(-1), mine.argmax(-1))
  del model
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  print(
      f"gemma3-270m: max |logit difference| per prompt {errors}, max |logit| {scales}, "
      f"test process peak RSS {peak:.2f} GiB"
  )
  # Not the 1e-4 absolute: that is below float32 rounding of this model's logits
  # (up to ~98; its residual stream reaches ~1e5). Against an exact float64 forward of the
  # same weights (experiments/export_precision.py), transformers' own float32 logits are
  # off by up to 1.36e-4 and ours by up to 1.52e-4, both 0.7e-6 .. 1.6e-6 of max |logit|,
  # and ours vs theirs 1.8e-6 of max |logit| on each of the three whole prompts (4.3e-5 ..
  # 1.75e-4; this test's 9-token prefixes: 1.2e-6 .. 1.8e-6).
  # The weights are exact (the script above); the bound, 5e-6 of max |logit| (~40 float32
  # ulps), is 2.8x the largest measured difference.
  assert all(e <= 5e-6 * s for e, s in zip(errors, scales)), (errors, scales)

  theirs_tok = _assert_same_ids(ours_tok, out, strings)
  for s in strings[:50]:
    assert theirs_tok.encode(s) == ours_tok.encode(s, parse_special=True)  # BOS first
    ids_s = ours_tok.encode(s, parse_special=True, add_bos=False)
    assert theirs_tok.decode(ids_s) == ours_tok.decode(ids_s)
  messages = [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello."},
      {"role": "user", "content": "2+2?"},
  ]
  rendered = theirs_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
  assert rendered == "<bos>" + ours_tok.apply_chat_template(messages)
