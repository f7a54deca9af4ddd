"""Tokenizers behind one interface, built so their ids equal llama.cpp's / the checkpoint's.

Three back ends, one `Tokenizer` class:
  * SentencePiece for Gemma: a `ModelProto` rebuilt from a GGUF file's metadata (or a
    `tokenizer.model` file).
  * HF `tokenizers` byte-level BPE for a GGUF `gpt2` vocabulary (SmolLM2): vocab + merges,
    single-digit split then ByteLevel pre-tokenizer (llama.cpp's `smollm` pre-tokenizer).
  * HF `tokenizers` from a `tokenizer.json` (Qwen2.5, Llama 3).

Special (control / user-defined) tokens are split out of the text before the back end sees
it, the way llama.cpp does it (longest token first over the whole text). Control tokens are
parsed only where the caller trusts the text: `encode` treats a plain str as plain text by
default (`parse_special=False`: `<|im_end|>` inside a program stays the characters, never
the end-of-sequence id), and the chat templates return a `TemplateText` whose own markers
(`<start_of_turn>`, `<|im_start|>`, ...) are the only parts parsed as control tokens; message
contents (model output, buffer programs, benchmark data) are always plain text.

The reference for ids is llama.cpp; `tests/golden/tokenizer_*.json` hold its ids for 200+
strings (made by `scripts/make_tokenizer_goldens.py`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from absolute_zero.embedded_models import EMBEDDED_MODELS, embedded_gguf_path
from absolute_zero.gguf_file import GGUF_MAGIC, read_gguf_metadata

Message = Mapping[str, str]  # {"role": "user" | "assistant" | "system", "content": str}

# SentencePiece / GGUF token types (same numbering in both).
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = (
    1,
    2,
    3,
    4,
    5,
    6,
)

# Texts that end a turn in the chat formats we know (stop ids = eos + these, where present).
_END_OF_TURN_TEXTS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|endoftext|>")


@dataclasses.dataclass(frozen=True)
class GGUFVocab:
  """The tokenizer fields of a GGUF file."""

  model: str  # "llama" (SentencePiece) or "gpt2" (byte-level BPE)
  pre: str  # pre-tokenizer name, e.g. "default", "smollm"
  tokens: list[str]
  scores: np.ndarray | None  # [vocab] float32
  token_types: np.ndarray  # [vocab] int32
  merges: list[str] | None
  bos_id: int | None
  eos_id: int | None
  unk_id: int | None
  pad_id: int | None
  add_bos: bool
  chat_template: str | None


def read_gguf_vocab(path: str | os.PathLike) -> GGUFVocab:
  """Reads the `tokenizer.*` fields of a GGUF file into a `GGUFVocab`."""
  meta = read_gguf_metadata(path)
  if "tokenizer.ggml.tokens" not in meta or "tokenizer.ggml.model" not in meta:
    raise ValueError(
        f"{path}: GGUF file has no tokenizer (no tokenizer.ggml.tokens / tokenizer.ggml.model)"
    )
  tokens = meta["tokenizer.ggml.tokens"]
  n = len(tokens)
  types = meta.get("tokenizer.ggml.token_type")
  types = np.full(n, TOKEN_NORMAL, np.int32) if types is None else np.asarray(types, np.int32)

  def opt_id(key: str) -> int | None:
    return int(meta[key]) if key in meta else None

  return GGUFVocab(
      model=meta["tokenizer.ggml.model"],
      pre=meta.get("tokenizer.ggml.pre", "default"),
      tokens=tokens,
      scores=meta.get("tokenizer.ggml.scores"),
      token_types=types,
      merges=meta.get("tokenizer.ggml.merges"),
      bos_id=opt_id("tokenizer.ggml.bos_token_id"),
      eos_id=opt_id("tokenizer.ggml.eos_token_id"),
      unk_id=opt_id("tokenizer.ggml.unknown_token_id"),
      pad_id=opt_id("tokenizer.ggml.padding_token_id"),
      add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", False)),
      chat_template=meta.get("tokenizer.chat_template"),
  )


# --------------------------------------------------------------------------------------
# Special-token splitting (llama.cpp's tokenizer_st_partition)
# --------------------------------------------------------------------------------------


def split_special_tokens(text: str, specials: Sequence[tuple[str, int]]) -> list[str | int]:
  """Splits `text` into raw-text pieces (str) and special token ids (int).

  `specials` is (text, id) sorted longest text first. Like llama.cpp, each special token in
  turn (longest first) is cut out of every remaining raw-text piece, left to right.
  """
  pieces: list[str | int] = [text] if text else []
  for tok_text, tok_id in specials:
    out: list[str | int] = []
    for piece in pieces:
      if isinstance(piece, int) or tok_text not in piece:
        out.append(piece)
        continue
      parts = piece.split(tok_text)
      for k, part in enumerate(parts):
        if k:
          out.append(tok_id)
        if part:
          out.append(part)
    pieces = out
  return pieces


class SpecialTokenSplitter:
  """`split_special_tokens` with a fast pre-filter for large special vocabularies.

  Gemma has 6k+ control/user-defined tokens; testing each with `in` costs milliseconds per
  string. Tokens are indexed by their first two characters and only those whose prefix
  occurs in the text are tried (an exact pre-filter: a token can only occur where its
  prefix does).
  """

  def __init__(self, specials: Mapping[str, int]):
    ordered = sorted(((t, i) for t, i in specials.items() if t), key=lambda kv: -len(kv[0]))
    self._rank = {t: k for k, (t, _) in enumerate(ordered)}
    self._by_prefix: dict[str, list[tuple[str, int]]] = {}
    self._single: list[tuple[str, int]] = []
    for tok_text, tok_id in ordered:
      if len(tok_text) == 1:
        self._single.append((tok_text, tok_id))
      else:
        self._by_prefix.setdefault(tok_text[:2], []).append((tok_text, tok_id))

  def __call__(self, text: str) -> list[str | int]:
    if not text:
      return []
    bigrams = {text[k : k + 2] for k in range(len(text) - 1)}
    present = [
        kv for b in bigrams & self._by_prefix.keys() for kv in self._by_prefix[b] if kv[0] in text
    ]
    present += [kv for kv in self._single if kv[0] in text]
    present.sort(key=lambda kv: self._rank[kv[0]])
    return split_special_tokens(text, present)


# --------------------------------------------------------------------------------------
# Trusted markers vs untrusted text
# --------------------------------------------------------------------------------------

Segment = tuple[str, bool]  # (text, is_marker)


def _merge_segments(segments: Iterable[Segment]) -> tuple[Segment, ...]:
  """Drops empty segments and joins neighbours of the same kind (so plain text split over
  several segments encodes exactly like the joined text, e.g. Gemma's '\\n\\n' piece)."""
  out: list[Segment] = []
  for text, is_marker in segments:
    if not isinstance(text, str):
      raise TypeError(f"segment text must be str, got {type(text).__name__}")
    if not text:
      continue
    if out and out[-1][1] == bool(is_marker):
      out[-1] = (out[-1][0] + text, out[-1][1])
    else:
      out.append((text, bool(is_marker)))
  return tuple(out)


class TemplateText(str):
  """A str made of trusted template markers and untrusted plain text.

  `segments` is ((text, is_marker), ...) and its texts join to the str itself. A chat
  template marks only its own control-token texts (`<start_of_turn>`, `<|im_start|>`,
  ...); `Tokenizer.encode` parses special tokens inside marker segments only and encodes
  every other segment as plain text, so text from models, buffers and benchmark data can
  never become a control token.

  `+` with a str keeps the segments (the str joins as plain text). Every other str
  operation (slicing, `strip`, `format`, f-strings) returns a plain str, which `encode`
  treats as plain text throughout: markers can lose their meaning, text never gains one.
  """

  segments: tuple[Segment, ...]

  def __new__(cls, segments: Iterable[Segment]) -> "TemplateText":
    merged = _merge_segments(segments)
    obj = super().__new__(cls, "".join(text for text, _ in merged))
    obj.segments = merged
    return obj

  def __getnewargs__(self) -> tuple[tuple[Segment, ...]]:  # pickling / copying
    return (self.segments,)

  def __add__(self, other: str) -> "TemplateText":
    if not isinstance(other, str):
      return NotImplemented
    return TemplateText(self.segments + _segments_of(other))

  def __radd__(self, other: str) -> "TemplateText":
    if not isinstance(other, str):
      return NotImplemented
    return TemplateText(_segments_of(other) + self.segments)

  def __repr__(self) -> str:
    return f"TemplateText({self.segments!r})"


def _segments_of(text: str) -> tuple[Segment, ...]:
  return text.segments if isinstance(text, TemplateText) else ((str(text), False),)


# --------------------------------------------------------------------------------------
# Chat templates (hand-written renderers, no jinja)
# --------------------------------------------------------------------------------------


def _check_messages(messages: Sequence[Message]) -> None:
  if not messages:
    raise ValueError("chat template needs at least one message")
  for m in messages:
    if "role" not in m or "content" not in m:
      raise ValueError(f"each message needs 'role' and 'content' keys, got {dict(m)!r}")


def render_gemma_chat(
    messages: Sequence[Message], add_generation_prompt: bool = True
) -> TemplateText:
  """Gemma's turn format: `<start_of_turn>user\\n...<end_of_turn>\\n`; assistant is `model`.

  A leading system message is folded into the first user turn (Gemma has no system role).
  The BOS token is not part of the string: `encode(..., add_bos=True)` adds it. Only the
  turn markers are marker segments; roles and contents are plain text.
  """
  _check_messages(messages)
  messages = list(messages)
  system = None
  if messages[0]["role"] == "system":
    system, messages = messages[0]["content"], messages[1:]
  out: list[Segment] = []
  for k, m in enumerate(messages):
    role = {"assistant": "model", "model": "model", "user": "user"}.get(m["role"])
    if role is None:
      raise ValueError(
          f"Gemma chat has roles user/assistant (and a leading system), got {m['role']!r}"
      )
    content = m["content"]
    if k == 0 and system is not None:
      content = f"{system}\n\n{content}"
    out += [
        ("<start_of_turn>", True),
        (f"{role}\n{content.strip()}", False),
        ("<end_of_turn>", True),
        ("\n", False),
    ]
  if add_generation_prompt:
    out += [("<start_of_turn>", True), ("model\n", False)]
  return TemplateText(out)


def render_chatml(
    messages: Sequence[Message],
    add_generation_prompt: bool = True,
    default_system: str | None = None,
) -> TemplateText:
  """ChatML (SmolLM2, Qwen2.5): `<|im_start|>role\\ncontent<|im_end|>\\n` per message.

  `default_system` is inserted when the first message is not a system message (SmolLM2's
  and Qwen2.5's templates do this). Only `<|im_start|>`/`<|im_end|>` are marker segments.
  """
  _check_messages(messages)
  turns = list(messages)
  if default_system is not None and messages[0]["role"] != "system":
    turns.insert(0, {"role": "system", "content": default_system})
  out: list[Segment] = []
  for m in turns:
    out += [
        ("<|im_start|>", True),
        (f"{m['role']}\n{m['content']}", False),
        ("<|im_end|>", True),
        ("\n", False),
    ]
  if add_generation_prompt:
    out += [("<|im_start|>", True), ("assistant\n", False)]
  return TemplateText(out)


def render_llama3_chat(
    messages: Sequence[Message], add_generation_prompt: bool = True
) -> TemplateText:
  """Llama 3 header format (without Llama 3.1's tool/date system preamble); no BOS.
  Only the header and end-of-turn tokens are marker segments."""
  _check_messages(messages)
  out: list[Segment] = []
  for m in messages:
    out += [
        ("<|start_header_id|>", True),
        (m["role"], False),
        ("<|end_header_id|>", True),
        (f"\n\n{m['content'].strip()}", False),
        ("<|eot_id|>", True),
    ]
  if add_generation_prompt:
    out += [
        ("<|start_header_id|>", True),
        ("assistant", False),
        ("<|end_header_id|>", True),
        ("\n\n", False),
    ]
  return TemplateText(out)


# A literal default system message inside the template (no quotes/braces: not jinja code).
_CHATML_DEFAULT_SYSTEM = re.compile(r"<\|im_start\|>system(?:\n|\\n)([^'\"{}%]*?)<\|im_end\|>")


def chat_renderer_from_template(
    template: str | None, vocab: Iterable[str]
) -> Callable[..., TemplateText] | None:
  """Picks a hand-written renderer for a jinja chat template (or, without one, the vocabulary).

  Recognises ChatML (with the default system prompt the template inserts), Gemma turns and
  Llama 3 headers. Returns None when the model has no known chat format.
  """
  vocab = set(vocab)
  template = template if isinstance(template, str) else None  # some configs hold a list
  if (template and "<|im_start|>" in template) or (not template and "<|im_start|>" in vocab):
    match = _CHATML_DEFAULT_SYSTEM.search(template or "")
    default_system = match.group(1).replace("\\n", "\n") if match else None
    return functools.partial(render_chatml, default_system=default_system)
  if (template and "<start_of_turn>" in template) or (not template and "<start_of_turn>" in vocab):
    return render_gemma_chat
  if (template and "<|start_header_id|>" in template) or (
      not template and "<|start_header_id|>" in vocab
  ):
    return render_llama3_chat
  return None


# --------------------------------------------------------------------------------------
# The tokenizer
# --------------------------------------------------------------------------------------


class Tokenizer:
  """Text <-> ids for one model: encode/decode, special ids, chat template.

  Back ends plug in as two functions: `encode_plain(text) -> ids`, the back end's own
  encoding of plain text (it must never emit a control id: SentencePiece never does, HF
  `tokenizers` only with `encode_special_tokens`), and `decode_ids(ids, skip_special)`.
  """

  hf_tokenizer: Any = None  # the underlying `tokenizers.Tokenizer` for HF-backed ones

  def __init__(
      self,
      *,
      name: str,
      vocab_size: int,
      specials: Mapping[str, int],
      encode_plain: Callable[[str], list[int]],
      decode_ids: Callable[[Sequence[int], bool], str],
      bos_id: int | None,
      eos_id: int | None,
      pad_id: int | None,
      unk_id: int | None = None,
      add_bos: bool = False,
      parse_user_defined: Mapping[str, int] | None = None,
      chat_renderer: Callable[..., str] | None = None,
  ):
    self.name = name
    self.vocab_size = int(vocab_size)
    self.bos_id, self.eos_id, self.unk_id = bos_id, eos_id, unk_id
    self.pad_id = pad_id if pad_id is not None else eos_id
    self.add_bos_default = add_bos
    self.special_tokens = dict(specials)  # control + user-defined text -> id
    # User-defined pieces are split even when parse_special=False (as llama.cpp does).
    self._split_special = SpecialTokenSplitter(self.special_tokens)
    self._split_user_defined = SpecialTokenSplitter(parse_user_defined or {})
    self._encode_plain = encode_plain
    self._decode_ids = decode_ids
    self._chat_renderer = chat_renderer
    stop = [eos_id] + [self.special_tokens.get(t) for t in _END_OF_TURN_TEXTS]
    self.stop_ids = tuple(sorted({i for i in stop if i is not None}))

  def __repr__(self) -> str:
    return f"Tokenizer({self.name}, vocab_size={self.vocab_size}, bos={self.bos_id}, eos={self.eos_id})"

  def encode(
      self, text: str, add_bos: bool | None = None, parse_special: bool = False
  ) -> list[int]:
    """Token ids for `text` (a list of ints in [0, vocab_size)).

    `add_bos=None` follows the model's convention (Gemma: yes, SmolLM2/Qwen: no).
    A plain str is plain text unless `parse_special=True` (trusted text only): control
    tokens are then parsed, as llama.cpp's `tokenize(..., special=True)`. Without it,
    control-token texts stay characters; user-defined pieces (Gemma's '\\n\\n', HTML
    tags) are matched either way, as SentencePiece and llama.cpp do.
    A `TemplateText` (a chat template's output) ignores `parse_special`: its marker
    segments are parsed, its other segments are plain text.
    Raises TypeError for a non-str, ValueError for add_bos without a BOS token.
    """
    if not isinstance(text, str):
      raise TypeError(f"encode expects str, got {type(text).__name__}")
    add_bos = self.add_bos_default if add_bos is None else add_bos
    ids: list[int] = []
    if add_bos:
      if self.bos_id is None:
        raise ValueError(f"{self.name} has no BOS token; call encode(..., add_bos=False)")
      ids.append(self.bos_id)
    if isinstance(text, TemplateText):
      segments = text.segments
    else:
      segments = ((str(text), parse_special),)
    for segment, special in segments:
      split = self._split_special if special else self._split_user_defined
      for piece in split(segment):
        if isinstance(piece, int):
          ids.append(piece)
        else:
          ids.extend(self._encode_plain(piece))
    return ids

  def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
    """Text for `ids`; special tokens are written out unless `skip_special`."""
    ids = [int(i) for i in ids]
    bad = [i for i in ids if not 0 <= i < self.vocab_size]
    if bad:
      raise ValueError(f"token ids out of range [0, {self.vocab_size}) for {self.name}: {bad[:5]}")
    return self._decode_ids(ids, skip_special)

  @property
  def has_chat_template(self) -> bool:
    return self._chat_renderer is not None

  def apply_chat_template(
      self, messages: Sequence[Message], add_generation_prompt: bool = True
  ) -> TemplateText:
    """Renders `messages` in the model's chat format: a `TemplateText` (a str) whose
    markers alone `encode` parses as control tokens (the contents stay plain text); encode
    it with the default add_bos. Raises ValueError for models without a chat format."""
    if self._chat_renderer is None:
      raise ValueError(f"{self.name} has no chat template; use a plain completion prompt")
    return self._chat_renderer(messages, add_generation_prompt=add_generation_prompt)


# --------------------------------------------------------------------------------------
# Byte tables for decoding GGUF vocabularies
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _gpt2_unicode_to_byte() -> dict[str, int]:
  """GPT-2's byte <-> printable-character table (ByteLevel), inverted."""
  printable = (
      list(range(ord("!"), ord("~") + 1))
      + list(range(ord("¡"), ord("¬") + 1))
      + list(range(ord("®"), ord("ÿ") + 1))
  )
  chars, n = {}, 0
  for b in range(256):
    if b in printable:
      chars[chr(b)] = b
    else:
      chars[chr(256 + n)] = b
      n += 1
  return chars


def _bytes_decoder(
    id_bytes: list[bytes], special_ids: frozenset[int]
) -> Callable[[Sequence[int], bool], str]:
  def decode(ids: Sequence[int], skip_special: bool) -> str:
    if skip_special:
      ids = [i for i in ids if i not in special_ids]
    return b"".join(id_bytes[i] for i in ids).decode("utf-8", errors="replace")

  return decode


# --------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------


def _sentencepiece_proto_from_gguf(vocab: GGUFVocab):
  """A SentencePiece BPE `ModelProto` equal in behaviour to llama.cpp's SPM tokenizer,
  and its (piece, type) list.

  Pieces, scores and types are copied; `<unk>` becomes UNKNOWN; whitespace-only
  user-defined pieces (stored with real spaces in the GGUF) are respelled with '▁';
  byte fallback on; identity normaliser with no dummy prefix and no whitespace collapsing.
  """
  from sentencepiece import sentencepiece_model_pb2 as sp_pb2  # on use: Gemma paths only

  proto = sp_pb2.ModelProto()
  n = len(vocab.tokens)
  scores = vocab.scores if vocab.scores is not None else np.zeros(n, np.float32)
  types = vocab.token_types
  add_piece = proto.pieces.add
  pieces = []  # (piece, type) per id, as stored in the proto
  for i, (tok, score, typ) in enumerate(zip(vocab.tokens, scores.tolist(), types.tolist())):
    if i == vocab.unk_id:
      typ = TOKEN_UNKNOWN
    elif typ == TOKEN_USER_DEFINED and tok.strip(" ") == "":
      tok = tok.replace(" ", "\u2581")
    add_piece(piece=tok, score=score, type=typ)
    pieces.append((tok, typ))
  ts = proto.trainer_spec
  ts.model_type = sp_pb2.TrainerSpec.BPE
  ts.vocab_size = n
  ts.byte_fallback = True
  ts.unk_id = vocab.unk_id if vocab.unk_id is not None else -1
  ts.bos_id = vocab.bos_id if vocab.bos_id is not None else -1
  ts.eos_id = vocab.eos_id if vocab.eos_id is not None else -1
  ts.pad_id = vocab.pad_id if vocab.pad_id is not None else -1
  for attr, tid in (
      ("unk_piece", vocab.unk_id),
      ("bos_piece", vocab.bos_id),
      ("eos_piece", vocab.eos_id),
      ("pad_piece", vocab.pad_id),
  ):
    if tid is not None:
      setattr(ts, attr, pieces[tid][0])
  ns = proto.normalizer_spec
  ns.name = "identity"
  ns.add_dummy_prefix = False
  ns.remove_extra_whitespaces = False
  ns.escape_whitespaces = True
  return proto, pieces


def _sentencepiece_tokenizer(
    proto,
    name: str,
    add_bos: bool,
    chat_template: str | None,
    pieces: Sequence[tuple[str, int]] | None = None,
) -> Tokenizer:
  """Wraps a SentencePiece `ModelProto` (from a GGUF or a tokenizer.model file).

  `pieces` ((piece, type) per id, as in the proto) may be passed to skip reading them back.
  """
  import sentencepiece as spm  # on use: Gemma paths only

  sp = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
  if pieces is None:
    pieces = [(p.piece, p.type) for p in proto.pieces]
  specials: dict[str, int] = {}
  user_defined: dict[str, int] = {}
  id_bytes: list[bytes] = []
  for i, (piece, typ) in enumerate(pieces):
    text = piece.replace("\u2581", " ")
    if typ == TOKEN_BYTE and len(piece) == 6 and piece.startswith("<0x"):
      id_bytes.append(bytes([int(piece[3:5], 16)]))
      continue
    id_bytes.append(text.encode("utf-8"))
    if typ in (TOKEN_CONTROL, TOKEN_UNKNOWN):
      specials.setdefault(piece, i)
    elif typ == TOKEN_USER_DEFINED:
      specials.setdefault(text, i)
      user_defined.setdefault(text, i)
  control_ids = frozenset(
      i for i, (_, t) in enumerate(pieces) if t in (TOKEN_CONTROL, TOKEN_UNKNOWN)
  )

  def encode_plain(text: str) -> list[int]:
    return sp.encode(text, out_type=int)

  def opt(i: int) -> int | None:
    return i if i >= 0 else None

  return Tokenizer(
      name=name,
      vocab_size=len(pieces),
      specials=specials,
      parse_user_defined=user_defined,
      encode_plain=encode_plain,
      decode_ids=_bytes_decoder(id_bytes, control_ids),
      bos_id=opt(sp.bos_id()),
      eos_id=opt(sp.eos_id()),
      pad_id=opt(sp.pad_id()),
      unk_id=opt(sp.unk_id()),
      add_bos=add_bos,
      chat_renderer=chat_renderer_from_template(chat_template, specials),
  )


def _byte_level_bpe_from_gguf(vocab: GGUFVocab, name: str) -> Tokenizer:
  """HF `tokenizers` BPE from a GGUF `gpt2` vocabulary (SmolLM2's `smollm` pre-tokenizer:
  every digit alone, then GPT-2's ByteLevel split, no prefix space)."""
  # on use: the HF tokenizers library is needed by BPE paths only
  from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers

  if vocab.merges is None:
    raise ValueError(f"{name}: GGUF gpt2 vocabulary has no tokenizer.ggml.merges")
  if vocab.pre not in ("smollm", "gpt2", "default"):
    raise ValueError(
        f"{name}: GGUF pre-tokenizer {vocab.pre!r} is not supported (known: smollm, gpt2)"
    )
  token_to_id = {t: i for i, t in enumerate(vocab.tokens)}
  merges = [tuple(m.split(" ", 1)) for m in vocab.merges]
  hf = HFTokenizer(models.BPE(vocab=token_to_id, merges=merges))
  pre = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
  if vocab.pre == "smollm":
    pre.insert(0, pre_tokenizers.Digits(individual_digits=True))
  hf.pre_tokenizer = pre_tokenizers.Sequence(pre)
  hf.decoder = decoders.ByteLevel()

  u2b = _gpt2_unicode_to_byte()
  specials: dict[str, int] = {}
  user_defined: dict[str, int] = {}
  id_bytes: list[bytes] = []
  for i, (tok, typ) in enumerate(zip(vocab.tokens, vocab.token_types.tolist())):
    if typ in (TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNKNOWN):
      specials.setdefault(tok, i)
      if typ == TOKEN_USER_DEFINED:
        user_defined.setdefault(tok, i)
      id_bytes.append(tok.encode("utf-8"))
    else:
      id_bytes.append(
          bytes(u2b[c] for c in tok) if all(c in u2b for c in tok) else tok.encode("utf-8")
      )
  control_ids = frozenset(i for t, i in specials.items() if t not in user_defined)

  def encode_plain(text: str) -> list[int]:
    return hf.encode(text, add_special_tokens=False).ids

  tok = Tokenizer(
      name=name,
      vocab_size=len(vocab.tokens),
      specials=specials,
      parse_user_defined=user_defined,
      encode_plain=encode_plain,
      decode_ids=_bytes_decoder(id_bytes, control_ids),
      bos_id=vocab.bos_id,
      eos_id=vocab.eos_id,
      pad_id=vocab.pad_id,
      unk_id=vocab.unk_id,
      add_bos=vocab.add_bos,
      chat_renderer=chat_renderer_from_template(vocab.chat_template, specials),
  )
  tok.hf_tokenizer = hf  # the plain BPE, exposed for tests/inspection
  return tok


@functools.lru_cache(maxsize=4)
def _from_gguf_cached(path: str, mtime_ns: int) -> Tokenizer:
  vocab = read_gguf_vocab(path)
  name = Path(path).name
  if vocab.model == "llama":
    proto, pieces = _sentencepiece_proto_from_gguf(vocab)
    return _sentencepiece_tokenizer(proto, name, vocab.add_bos, vocab.chat_template, pieces)
  if vocab.model == "gpt2":
    return _byte_level_bpe_from_gguf(vocab, name)
  raise ValueError(
      f"{path}: GGUF tokenizer model {vocab.model!r} is not supported (supported: llama, gpt2)"
  )


def from_gguf(path: str | os.PathLike) -> Tokenizer:
  """The tokenizer stored in a GGUF file's metadata (cached per file in this process)."""
  path = Path(path).resolve()
  if not path.is_file():
    raise FileNotFoundError(f"GGUF file not found: {path}")
  return _from_gguf_cached(str(path), path.stat().st_mtime_ns)


def from_sentencepiece_model(path: str | os.PathLike, add_bos: bool = True) -> Tokenizer:
  """A tokenizer from a SentencePiece `tokenizer.model` file (e.g. a Gemma HF checkpoint)."""
  from sentencepiece import sentencepiece_model_pb2 as sp_pb2  # on use: Gemma paths only

  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"SentencePiece model not found: {path}")
  proto = sp_pb2.ModelProto()
  try:
    proto.ParseFromString(path.read_bytes())
  except Exception as e:  # protobuf raises DecodeError subclasses
    raise ValueError(f"{path}: not a SentencePiece model ({e})") from e
  if not proto.pieces:
    raise ValueError(f"{path}: not a SentencePiece model (no pieces)")
  return _sentencepiece_tokenizer(proto, path.name, add_bos, None)


def _token_text(value: Any) -> str | None:
  """tokenizer_config.json spells tokens as a str or {"content": str}."""
  if isinstance(value, dict):
    return value.get("content")
  return value if isinstance(value, str) else None


def from_tokenizer_json(
    path: str | os.PathLike, config_path: str | os.PathLike | None = None
) -> Tokenizer:
  """A tokenizer from a HF `tokenizer.json` (Qwen2.5, Llama 3).

  BOS/EOS/PAD and the chat template come from `tokenizer_config.json` next to it (or
  `config_path`); without it they are guessed from well-known token texts.
  """
  from tokenizers import Tokenizer as HFTokenizer  # on use: BPE paths only

  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"tokenizer.json not found: {path}")
  try:
    hf = HFTokenizer.from_file(str(path))
  except Exception as e:
    raise ValueError(f"{path}: cannot be read as a HF tokenizer.json ({e})") from e
  config_path = Path(config_path) if config_path else path.with_name("tokenizer_config.json")
  config = json.loads(config_path.read_text()) if config_path.is_file() else {}

  vocab = hf.get_vocab(with_added_tokens=True)
  added = hf.get_added_tokens_decoder()  # id -> AddedToken
  specials = {t.content: i for i, t in added.items()}
  special_ids = frozenset(i for i, t in added.items() if t.special)

  def find(key: str, candidates: Sequence[str]) -> int | None:
    if key in config:
      text = _token_text(config[key])
      return vocab.get(text) if text is not None else None
    return next((vocab[c] for c in candidates if c in vocab), None)

  bos_id = find("bos_token", ("<|begin_of_text|>", "<bos>", "<s>"))
  eos_id = find("eos_token", ("<|end_of_text|>", "<|endoftext|>", "<eos>", "</s>"))
  pad_id = find("pad_token", ("<|finetune_right_pad_id|>", "<pad>", "<|endoftext|>"))
  add_bos = bool(config.get("add_bos_token", bos_id is not None)) and bos_id is not None

  # A copy that leaves special added tokens as text (`<|im_end|>` -> '<', '|', ...): the
  # Tokenizer decides where control tokens are parsed; the back end must not re-parse them.
  plain_hf = HFTokenizer.from_str(hf.to_str())
  plain_hf.encode_special_tokens = True

  def encode_plain(text: str) -> list[int]:
    return plain_hf.encode(text, add_special_tokens=False).ids

  def decode_ids(ids: Sequence[int], skip_special: bool) -> str:
    return hf.decode(list(ids), skip_special_tokens=skip_special)

  tok = Tokenizer(
      name=str(path),
      vocab_size=hf.get_vocab_size(with_added_tokens=True),
      specials=specials,
      parse_user_defined={t.content: i for i, t in added.items() if not t.special},
      encode_plain=encode_plain,
      decode_ids=decode_ids,
      bos_id=bos_id,
      eos_id=eos_id,
      pad_id=pad_id,
      add_bos=add_bos,
      chat_renderer=chat_renderer_from_template(config.get("chat_template"), specials),
  )
  tok.hf_tokenizer = hf
  return tok


# --------------------------------------------------------------------------------------
# Factory and checks
# --------------------------------------------------------------------------------------


def resolve_tokenizer_source(source: str | os.PathLike) -> tuple[str, Path]:
  """('gguf' | 'tokenizer.json' | 'tokenizer.model', file) for a tokenizer source.

  `source` is as for `load_tokenizer`. An embedded model name resolves to its GGUF file
  (assembled into the cache on first use). Raises FileNotFoundError for a missing path or
  a directory holding no tokenizer, ValueError for a file of unknown kind.
  """
  if isinstance(source, str) and source in EMBEDDED_MODELS:
    return "gguf", Path(embedded_gguf_path(source))  # finds / assembles the GGUF
  path = Path(source)
  if path.is_dir():
    for fname in ("tokenizer.json", "tokenizer.model"):
      if (path / fname).is_file():
        return fname, path / fname
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
      return "gguf", ggufs[0]
    raise FileNotFoundError(
        f"no tokenizer in directory {path}: expected tokenizer.json, tokenizer.model or exactly one "
        f"*.gguf file (found {len(ggufs)} .gguf files)"
    )
  if not path.exists():
    raise FileNotFoundError(
        f"tokenizer source not found: {path} (give a .gguf, tokenizer.json, "
        f"tokenizer.model, a directory, or one of {list(EMBEDDED_MODELS)})"
    )
  with open(path, "rb") as f:
    magic = f.read(4)
  if magic == GGUF_MAGIC:
    return "gguf", path
  if path.suffix == ".json":
    return "tokenizer.json", path
  if path.suffix == ".model":
    return "tokenizer.model", path
  raise ValueError(
      f"{path}: unknown tokenizer file (expected a GGUF file, tokenizer.json or tokenizer.model)"
  )


def load_tokenizer(source: str | os.PathLike) -> Tokenizer:
  """The right tokenizer for `source`.

  `source` is a GGUF file, a `tokenizer.json`, a `tokenizer.model`, a directory holding one
  of those (tokenizer.json preferred), or an embedded model name (`gemma3-270m`,
  `smollm2-135m`).
  """
  kind, path = resolve_tokenizer_source(source)
  builders = {
      "gguf": from_gguf,
      "tokenizer.json": from_tokenizer_json,
      "tokenizer.model": from_sentencepiece_model,
  }
  return builders[kind](path)


def check_tokenizer_matches_model(
    tokenizer: Tokenizer, model_vocab_size: int, max_padding: int = 1024
) -> None:
  """Raises ValueError unless `tokenizer` fits a model with `model_vocab_size` embedding rows.

  Models often pad their embedding table past the tokenizer's vocabulary for hardware
  efficiency (Qwen2.5: 151,665 tokenizer entries, 151,936 rows); the extra rows are never
  indexed, so a tokenizer up to `max_padding` entries smaller is accepted. A tokenizer
  larger than the table would index past it, and a much smaller one (e.g. Llama 3's
  128,256 for a Qwen model) means the wrong tokenizer: both raise.
  """
  n_tok, n_model = tokenizer.vocab_size, int(model_vocab_size)
  if n_tok > n_model:
    raise ValueError(
        f"tokenizer {tokenizer.name} has {n_tok} tokens but the model's embedding has only {n_model} rows: "
        f"ids >= {n_model} would index past the table (wrong tokenizer for this model?)"
    )
  if n_model - n_tok > max_padding:
    raise ValueError(
        f"tokenizer {tokenizer.name} has {n_tok} tokens but the model's embedding has {n_model} rows: "
        f"{n_model - n_tok} unused rows is more than padding (max_padding={max_padding}); "
        f"wrong tokenizer for this model?"
    )
