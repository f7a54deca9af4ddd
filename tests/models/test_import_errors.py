"""GGUF round trip on a tiny model written with gguf.GGUFWriter, and bad-input errors."""

import json
import shutil

import jax
import numpy as np
import pytest

from absolute_zero.models import get_config, init_params
from absolute_zero.models.gguf_import import load_gguf
from absolute_zero.models.hf_import import load_hf_checkpoint
from absolute_zero.models.hf_layout import ModelFileError
from absolute_zero.policy_loading import load_model

gguf = pytest.importorskip("gguf")


def _permute_rows(w, n_head):
  """llama.cpp's converter permutation (the inverse of what the importer undoes)."""
  return (
      w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
  )


def write_tiny_llama_gguf(path, params, config, quant=None):
  """Writes our tiny-llama params as a llama.cpp-style GGUF (HF layout, permuted Q/K)."""
  c = config
  w = gguf.GGUFWriter(str(path), "llama")
  w.add_block_count(c.num_layers)
  w.add_context_length(c.max_position)
  w.add_embedding_length(c.embed_dim)
  w.add_feed_forward_length(c.mlp_dim)
  w.add_head_count(c.num_heads)
  w.add_head_count_kv(c.num_kv_heads)
  w.add_layer_norm_rms_eps(c.rms_norm_eps)
  w.add_rope_freq_base(c.rope_base)

  def add(name, array):
    array = np.ascontiguousarray(np.asarray(array, np.float32))
    if quant is not None and array.ndim == 2 and array.shape[-1] % 32 == 0:
      q = gguf.quants.quantize(array, quant)
      w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=quant)
    else:
      w.add_tensor(name, array)

  L = params["layers"]
  add("token_embd.weight", params["embedding"])
  add("output_norm.weight", params["final_norm"]["scale"])
  add("output.weight", params["lm_head"])
  d = c.embed_dim
  for i in range(c.num_layers):
    a = {k: np.asarray(v[i]) for k, v in L["attn"].items()}
    add(f"blk.{i}.attn_q.weight", _permute_rows(a["q_proj"].reshape(d, -1).T, c.num_heads))
    add(f"blk.{i}.attn_k.weight", _permute_rows(a["k_proj"].reshape(d, -1).T, c.num_kv_heads))
    add(f"blk.{i}.attn_v.weight", a["v_proj"].reshape(d, -1).T)
    add(f"blk.{i}.attn_output.weight", a["o_proj"].reshape(-1, d).T)
    add(f"blk.{i}.ffn_gate.weight", np.asarray(L["mlp"]["gate_proj"][i]).T)
    add(f"blk.{i}.ffn_up.weight", np.asarray(L["mlp"]["up_proj"][i]).T)
    add(f"blk.{i}.ffn_down.weight", np.asarray(L["mlp"]["down_proj"][i]).T)
    add(f"blk.{i}.attn_norm.weight", L["pre_attn_norm"]["scale"][i])
    add(f"blk.{i}.ffn_norm.weight", L["pre_mlp_norm"]["scale"][i])
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()


@pytest.fixture(scope="module")
def tiny_llama():
  config = get_config("tiny-llama").replace(rope_scaling=None)
  params = jax.tree.map(np.asarray, init_params(config, jax.random.key(3)))
  return config, params


def test_gguf_round_trip_unpermutes_qk(tiny_llama, tmp_path):
  config, params = tiny_llama
  path = tmp_path / "tiny.gguf"
  write_tiny_llama_gguf(path, params, config)
  loaded_config, loaded = load_gguf(path)
  assert loaded_config.num_kv_heads == config.num_kv_heads
  assert not loaded_config.tie_embeddings
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), loaded, params)


@pytest.mark.parametrize("quant", ["Q8_0", "Q4_1", "Q5_0", "F16"])
def test_gguf_dequantises_each_type(tiny_llama, tmp_path, quant):
  """Quantised tensors come back close to the originals (error bound per format)."""
  config, params = tiny_llama
  qtype = gguf.GGMLQuantizationType[quant]
  path = tmp_path / f"tiny-{quant}.gguf"
  write_tiny_llama_gguf(path, params, config, quant=qtype)
  _, loaded = load_gguf(path)
  tol = {"Q8_0": 0.02, "F16": 1e-3, "Q5_0": 0.08, "Q4_1": 0.15}[quant]
  orig, got = params["layers"]["mlp"]["gate_proj"], loaded["layers"]["mlp"]["gate_proj"]
  rel = np.abs(orig - got).max() / np.abs(orig).max()
  assert 0 < rel < tol if quant != "F16" else rel < tol


def test_truncated_gguf_is_a_clear_error(tiny_llama, tmp_path):
  config, params = tiny_llama
  path = tmp_path / "tiny.gguf"
  write_tiny_llama_gguf(path, params, config)
  data = path.read_bytes()
  cut = tmp_path / "cut.gguf"
  cut.write_bytes(data[: len(data) // 2])
  with pytest.raises(ModelFileError, match="truncated or not a GGUF"):
    load_gguf(cut)
  with pytest.raises(FileNotFoundError, match="no such file or directory"):
    load_model(str(tmp_path / "absent.gguf"))


def test_gguf_config_mismatch_is_a_clear_error(tiny_llama, tmp_path):
  config, params = tiny_llama
  path = tmp_path / "tiny.gguf"
  write_tiny_llama_gguf(path, params, config)
  with pytest.raises(ModelFileError, match="num_layers"):
    load_gguf(path, config=config.replace(num_layers=3))


def _save_sharded(tmp_path, config, params):
  """A two-shard HF checkpoint of tiny-llama params (via the HF name layout)."""
  from safetensors.numpy import save_file

  d = config.embed_dim
  L = params["layers"]
  tensors = {
      "model.embed_tokens.weight": params["embedding"],
      "model.norm.weight": params["final_norm"]["scale"],
      "lm_head.weight": params["lm_head"],
  }
  for i in range(config.num_layers):
    p = f"model.layers.{i}."
    a = {k: np.asarray(v[i]) for k, v in L["attn"].items()}
    tensors.update(
        {
            p + "self_attn.q_proj.weight": a["q_proj"].reshape(d, -1).T,
            p + "self_attn.k_proj.weight": a["k_proj"].reshape(d, -1).T,
            p + "self_attn.v_proj.weight": a["v_proj"].reshape(d, -1).T,
            p + "self_attn.o_proj.weight": a["o_proj"].reshape(-1, d).T,
            p + "mlp.gate_proj.weight": np.asarray(L["mlp"]["gate_proj"][i]).T,
            p + "mlp.up_proj.weight": np.asarray(L["mlp"]["up_proj"][i]).T,
            p + "mlp.down_proj.weight": np.asarray(L["mlp"]["down_proj"][i]).T,
            p + "input_layernorm.weight": L["pre_attn_norm"]["scale"][i],
            p + "post_attention_layernorm.weight": L["pre_mlp_norm"]["scale"][i],
        }
    )
  tensors = {k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}
  names = sorted(tensors)
  shards = {
      "model-00001-of-00002.safetensors": names[: len(names) // 2],
      "model-00002-of-00002.safetensors": names[len(names) // 2 :],
  }
  weight_map = {}
  for shard, keys in shards.items():
    save_file({k: tensors[k] for k in keys}, str(tmp_path / shard))
    weight_map.update({k: shard for k in keys})
  (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
  (tmp_path / "config.json").write_text(
      json.dumps(
          {
              "model_type": "llama",
              "vocab_size": config.vocab_size,
              "hidden_size": config.embed_dim,
              "intermediate_size": config.mlp_dim,
              "num_hidden_layers": config.num_layers,
              "num_attention_heads": config.num_heads,
              "num_key_value_heads": config.num_kv_heads,
              "head_dim": config.head_dim,
              "rms_norm_eps": config.rms_norm_eps,
              "rope_theta": config.rope_base,
              "tie_word_embeddings": False,
          }
      )
  )
  return tensors


def test_sharded_safetensors_round_trip_and_errors(tiny_llama, tmp_path):
  config, params = tiny_llama
  ckpt = tmp_path / "ckpt"
  ckpt.mkdir()
  _save_sharded(ckpt, config, params)
  loaded_config, loaded = load_hf_checkpoint(ckpt)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), loaded, params)

  # A missing shard names the file.
  broken = tmp_path / "broken"
  shutil.copytree(ckpt, broken)
  (broken / "model-00002-of-00002.safetensors").unlink()
  with pytest.raises(ModelFileError, match="model-00002-of-00002.safetensors"):
    load_hf_checkpoint(broken)

  # A config that disagrees with the weights names the tensor and the shapes.
  cfg = json.loads((ckpt / "config.json").read_text())
  wrong = tmp_path / "wrong"
  shutil.copytree(ckpt, wrong)
  (wrong / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 96}))
  with pytest.raises(ModelFileError, match=r"mlp\.(gate|up|down)_proj\.weight.*shape"):
    load_hf_checkpoint(wrong)

  # Fewer layers in the config than in the weights: the extra tensor is named.
  fewer = tmp_path / "fewer"
  shutil.copytree(ckpt, fewer)
  (fewer / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 1}))
  with pytest.raises(ModelFileError, match=r"model\.layers\.1\..*layer 1"):
    load_hf_checkpoint(fewer)


def test_missing_tensor_is_named(tiny_llama, tmp_path):
  from absolute_zero.models.hf_layout import params_from_hf_tensors

  config, params = tiny_llama
  tensors = _save_sharded(tmp_path, config, params)
  del tensors["model.layers.1.mlp.up_proj.weight"]
  with pytest.raises(ModelFileError, match=r"missing.*model\.layers\.1\.mlp\.up_proj"):
    params_from_hf_tensors(tensors, config)
  tensors["model.layers.0.self_attn.rotary.extra"] = np.zeros(3, np.float32)
  tensors["model.layers.1.mlp.up_proj.weight"] = np.zeros((128, 64), np.float32)
  with pytest.raises(ModelFileError, match=r"unexpected.*rotary\.extra"):
    params_from_hf_tensors(tensors, config)


def test_wrong_preset_name_lists_the_known_ones():
  with pytest.raises(ValueError, match="unknown model preset 'gemma4-1b'.*gemma3-270m"):
    get_config("gemma4-1b")
  with pytest.raises(ValueError, match="cannot interpret model source 'qwen-9000'"):
    load_model("qwen-9000")
  with pytest.raises(ValueError, match="no embedded weights"):
    load_model("qwen2.5-7b")


def test_tokenizer_that_does_not_fit_the_model_is_rejected(tiny_llama, tmp_path):
  """A tokenizer.json of 600 tokens beside a 512-row model: one clear error."""
  tokenizers = pytest.importorskip("tokenizers")
  from absolute_zero.policy_loading import load_policy

  config, params = tiny_llama
  ckpt = tmp_path / "ckpt"
  ckpt.mkdir()
  _save_sharded(ckpt, config, params)
  vocab = {f"t{i}": i for i in range(600)}
  tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="t0"))
  tok.save(str(ckpt / "tokenizer.json"))
  with pytest.raises(ValueError, match="600 tokens but the model's embedding has only 512"):
    load_policy(str(ckpt))
  vocab = {f"t{i}": i for i in range(500)}
  tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="t0")).save(
      str(ckpt / "tokenizer.json")
  )
  loaded_config, _, tokenizer = load_policy(str(ckpt))
  assert tokenizer.vocab_size == 500 and loaded_config.vocab_size == 512
