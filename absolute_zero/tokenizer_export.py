"""Tokenizer files for a Hugging Face export: `tokenizer.json` and `tokenizer_config.json`.

`write_hf_tokenizer(source, directory)` writes what `transformers.AutoTokenizer` loads, for
every tokenizer source `absolute_zero.tokenizers.load_tokenizer` reads, so that the HF
tokenizer gives the ids ours gives:
  * a `tokenizer.json` (Qwen2.5, Llama 3 checkpoints): copied with its
    `tokenizer_config.json`, `special_tokens_map.json` and chat template files;
  * SentencePiece BPE (a GGUF `llama` vocabulary such as Gemma 3's, or a `tokenizer.model`):
    a `tokenizer.json` built with the `tokenizers` library (BPE with byte fallback, merges
    ranked by the merged piece's score, user-defined and control pieces as added tokens),
    plus the `tokenizer.model` itself for SentencePiece users;
  * a GGUF `gpt2` vocabulary (SmolLM2): byte-level BPE from its vocab and merges, with its
    pre-tokenizer (`smollm`: digits split one by one first).

Why the SentencePiece conversion is ours and not transformers' converter: transformers is
not a dependency (only a test reference), and its GGUF conversion of Gemma's vocabulary
splits runs of 32+ spaces differently from SentencePiece / llama.cpp
(tests/test_tokenizers.py, test_transformers_tokenizers_diverge_only_in_known_ways).
Added tokens are matched leftmost-longest by `tokenizers` and longest-first by our
tokenizer (llama.cpp's rule); the two agree on every string of the tokenizer test set
(tests/golden/tokenizer_strings.json), which tests/models/test_export.py checks.

The chat template comes from the source (GGUF metadata or `tokenizer_config.json`); a Gemma
vocabulary without one gets the Jinja form of `tokenizers.render_gemma_chat`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from absolute_zero import tokenizers as tk

# Files a tokenizer.json source may have beside it, copied as they are.
_COMPANIONS = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "added_tokens.json",
)

# The Jinja form of `render_gemma_chat` (Gemma 3's own template without images): a leading
# system message joins the first user turn, 'assistant' is written 'model', contents are
# trimmed; BOS is part of the template, as in Gemma's checkpoints.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + ((first_user_prefix if loop.first else '')"
    " + message['content']) | trim + '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def write_hf_tokenizer(
    source: str | os.PathLike,
    directory: str | os.PathLike,
    *,
    model_max_length: int | None = None,
    tokenizer_class: str | None = None,
) -> list[str]:
  """Writes the HF tokenizer files of `source` into `directory`; returns their names.

  Args:
    source: a tokenizer source as for `load_tokenizer` (embedded model name, .gguf,
      tokenizer.json, tokenizer.model or a directory holding one).
    directory: an existing directory; files of the same names are replaced.
    model_max_length: written to a generated `tokenizer_config.json`.
    tokenizer_class: the `tokenizer_class` of a generated `tokenizer_config.json`
      (default `PreTrainedTokenizerFast`, which loads `tokenizer.json` as it is).

  Raises:
    FileNotFoundError / ValueError: as `load_tokenizer` for a bad source; ValueError for a
      SentencePiece model this conversion does not cover (not BPE, or a normaliser other
      than identity).
  """
  kind, path = tk.resolve_tokenizer_source(source)
  directory = Path(directory)
  tokenizer = tk.load_tokenizer(source)
  if kind == "tokenizer.json":
    written = _copy_tokenizer_json(path, directory)
    if "tokenizer_config.json" in written:
      return written
    hf_json = None
    chat_template = None
  elif kind == "tokenizer.model":
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2  # on use: Gemma only

    proto = sp_pb2.ModelProto()
    proto.ParseFromString(path.read_bytes())
    hf_json = _sentencepiece_tokenizer_json(proto, tokenizer)
    (directory / "tokenizer.model").write_bytes(proto.SerializeToString())
    written = ["tokenizer.model"]
    chat_template = None
  else:
    vocab = tk.read_gguf_vocab(path)
    chat_template = vocab.chat_template
    if vocab.model == "llama":
      proto, _ = tk._sentencepiece_proto_from_gguf(vocab)
      hf_json = _sentencepiece_tokenizer_json(proto, tokenizer)
      (directory / "tokenizer.model").write_bytes(proto.SerializeToString())
      written = ["tokenizer.model"]
    else:
      hf_json = _byte_level_tokenizer_json(vocab, tokenizer)
      written = []
  if hf_json is not None:
    hf_json.save(str(directory / "tokenizer.json"))
    written.append("tokenizer.json")
  if (
      chat_template is None
      and tokenizer.has_chat_template
      and "<start_of_turn>" in tokenizer.special_tokens
  ):
    chat_template = GEMMA_CHAT_TEMPLATE
  config = tokenizer_config(
      tokenizer,
      tokenizer_class=tokenizer_class,
      model_max_length=model_max_length,
      chat_template=chat_template,
  )
  (directory / "tokenizer_config.json").write_text(
      json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
  )
  return written + ["tokenizer_config.json"]


def tokenizer_config(
    tokenizer: tk.Tokenizer,
    *,
    tokenizer_class: str | None = None,
    model_max_length: int | None = None,
    chat_template: str | None = None,
) -> dict[str, Any]:
  """A `tokenizer_config.json` dict: class, special tokens, BOS rule, chat template."""
  text = _id_to_text(tokenizer)
  config: dict[str, Any] = {"tokenizer_class": tokenizer_class or "PreTrainedTokenizerFast"}
  for key, token_id in (
      ("bos_token", tokenizer.bos_id),
      ("eos_token", tokenizer.eos_id),
      ("pad_token", tokenizer.pad_id),
      ("unk_token", tokenizer.unk_id),
  ):
    config[key] = text.get(token_id) if token_id is not None else None
  # Some tokenizer classes (transformers 5's GemmaTokenizer) add a default '<mask>' token
  # unless the config names the mask token: name it, or say there is none.
  config["mask_token"] = "<mask>" if "<mask>" in tokenizer.special_tokens else None
  config.update(
      add_bos_token=bool(tokenizer.add_bos_default),
      add_eos_token=False,
      clean_up_tokenization_spaces=False,
  )
  if model_max_length:
    config["model_max_length"] = int(model_max_length)
  if chat_template:
    config["chat_template"] = chat_template
  return config


# ------------------------------------------------------------------ sources


def _copy_tokenizer_json(path: Path, directory: Path) -> list[str]:
  written = []
  target = directory / "tokenizer.json"
  if path.resolve() != target.resolve():
    shutil.copyfile(path, target)
  written.append("tokenizer.json")
  for name in _COMPANIONS:
    companion = path.with_name(name)
    if companion.is_file():
      if companion.resolve() != (directory / name).resolve():
        shutil.copyfile(companion, directory / name)
      written.append(name)
  return written


def _id_to_text(tokenizer: tk.Tokenizer) -> dict[int, str]:
  """Special-token texts by id (the ids a config names are special tokens)."""
  return {i: t for t, i in sorted(tokenizer.special_tokens.items(), key=lambda kv: -len(kv[0]))}


def _bos_post_processor(tokenizer: tk.Tokenizer):
  """Prepends BOS when the model's convention is to (Gemma), as `encode` does."""
  from tokenizers import processors  # on use: the HF tokenizers library

  if not tokenizer.add_bos_default or tokenizer.bos_id is None:
    return None
  bos = _id_to_text(tokenizer)[tokenizer.bos_id]
  return processors.TemplateProcessing(
      single=f"{bos} $A:0", pair=f"{bos} $A:0 {bos} $B:1", special_tokens=[(bos, tokenizer.bos_id)]
  )


def _sentencepiece_tokenizer_json(proto, tokenizer: tk.Tokenizer):
  """A `tokenizers.Tokenizer` equal in ids to SentencePiece BPE model `proto`.

  SentencePiece BPE merges, at each step, the adjacent pair whose concatenation is the
  highest-scored piece; HF BPE merges the pair of lowest rank. Ranking every split of every
  normal piece by (-score of the piece, its id, the left part's id) gives the same order.
  User-defined pieces (Gemma's whitespace runs and newline runs, HTML tags) and control
  pieces become added tokens, matched before BPE as SentencePiece matches them.
  """
  from sentencepiece import sentencepiece_model_pb2 as sp_pb2  # on use: Gemma only
  from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

  if proto.trainer_spec.model_type != sp_pb2.TrainerSpec.BPE:
    raise ValueError(
        "only SentencePiece BPE models can be written as tokenizer.json "
        f"(this one is model type {proto.trainer_spec.model_type})"
    )
  ns = proto.normalizer_spec
  if (
      ns.name not in ("identity", "")
      or ns.remove_extra_whitespaces
      or ns.add_dummy_prefix
      or not ns.escape_whitespaces
  ):
    raise ValueError(
        f"this SentencePiece model's normaliser (name {ns.name!r}, add_dummy_prefix="
        f"{ns.add_dummy_prefix}, remove_extra_whitespaces={ns.remove_extra_whitespaces}) is "
        "not covered: only the identity normaliser with escaped whitespace and no dummy "
        "prefix (Gemma's) can be written as tokenizer.json"
    )
  pieces = [(p.piece, p.type, p.score) for p in proto.pieces]
  vocab: dict[str, int] = {}
  for i, (piece, _, _) in enumerate(pieces):
    vocab.setdefault(piece, i)
  normal = {piece: i for i, (piece, typ, _) in enumerate(pieces) if typ == tk.TOKEN_NORMAL}
  ranked = []
  for piece, i in normal.items():
    for k in range(1, len(piece)):
      left, right = piece[:k], piece[k:]
      if left in normal and right in normal:
        ranked.append((-pieces[i][2], i, normal[left], left, right))
  ranked.sort()
  unk = next((p for p, typ, _ in pieces if typ == tk.TOKEN_UNKNOWN), None)
  hf = Tokenizer(
      models.BPE(
          vocab=vocab,
          merges=[(l, r) for *_, l, r in ranked],
          unk_token=unk,
          fuse_unk=True,
          byte_fallback=bool(proto.trainer_spec.byte_fallback),
      )
  )
  hf.normalizer = normalizers.Replace(" ", "\u2581")
  hf.decoder = decoders.Sequence(
      [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
  )
  added = []
  for piece, typ, _ in pieces:
    if typ in (tk.TOKEN_CONTROL, tk.TOKEN_UNKNOWN):
      added.append(AddedToken(piece, special=True, normalized=False))
    elif typ == tk.TOKEN_USER_DEFINED:  # '▁' runs are matched in the normalised text
      added.append(AddedToken(piece, special=False, normalized="\u2581" in piece))
  hf.add_tokens(added)
  post = _bos_post_processor(tokenizer)
  if post is not None:
    hf.post_processor = post
  return hf


def _byte_level_tokenizer_json(vocab: tk.GGUFVocab, tokenizer: tk.Tokenizer):
  """A `tokenizers.Tokenizer` from a GGUF `gpt2` vocabulary (as `tokenizers` builds ours)."""
  # on use: the HF tokenizers library
  from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

  if vocab.merges is None:
    raise ValueError("GGUF gpt2 vocabulary has no tokenizer.ggml.merges")
  hf = Tokenizer(
      models.BPE(
          vocab={t: i for i, t in enumerate(vocab.tokens)},
          merges=[tuple(m.split(" ", 1)) for m in vocab.merges],
      )
  )
  pre = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
  if vocab.pre == "smollm":
    pre.insert(0, pre_tokenizers.Digits(individual_digits=True))
  hf.pre_tokenizer = pre_tokenizers.Sequence(pre)
  hf.decoder = decoders.ByteLevel()
  special_types = (tk.TOKEN_CONTROL, tk.TOKEN_UNKNOWN, tk.TOKEN_USER_DEFINED)
  hf.add_tokens(
      [
          AddedToken(t, special=typ != tk.TOKEN_USER_DEFINED, normalized=False)
          for t, typ in zip(vocab.tokens, vocab.token_types.tolist())
          if typ in special_types
      ]
  )
  post = _bos_post_processor(tokenizer)
  if post is not None:
    hf.post_processor = post
  return hf
