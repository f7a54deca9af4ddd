"""Produce golden logits for the embedded GGUF models with transformers (PyTorch, float32).

Run once (needs the test extras: torch==2.13.0, transformers, accelerate):
    python scripts/make_logit_goldens.py
Writes tests/golden/logits_{gemma3-270m,smollm2-135m}.npz. For each of three prompts of
real Python source (about 220, 330 and 650 tokens; the last is longer than Gemma 3's
512-token sliding window) it stores the token ids, the reference argmax at every
position, and reference logits at 16 vocabulary ids per position (the reference top-8
plus 8 random ids), so CI can check parity without torch and without storing
[tokens, 262144] arrays. transformers loads the same GGUF file with `gguf_file=`.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np

from absolute_zero.embedded_models import gemma3_270m_gguf_path, smollm2_135m_gguf_path
from absolute_zero.tokenizers import load_tokenizer

OUT = Path(__file__).resolve().parents[1] / "tests" / "golden"
PROMPT_TOKENS = (220, 330, 650)
CHECK_TOP, CHECK_RANDOM = 8, 8


def prompt_texts() -> list[str]:
  import heapq
  import json.decoder
  import textwrap

  return [inspect.getsource(m) for m in (textwrap, json.decoder, heapq)]


def make(name: str, path: Path) -> None:
  import torch
  import transformers

  tokenizer = load_tokenizer(path)
  model = transformers.AutoModelForCausalLM.from_pretrained(
      str(path.parent), gguf_file=path.name, dtype=torch.float32
  ).eval()
  rng = np.random.default_rng(0)
  arrays = {}
  for i, (text, n) in enumerate(zip(prompt_texts(), PROMPT_TOKENS)):
    ids = np.asarray(tokenizer.encode(text)[:n], np.int64)
    assert len(ids) == n, (name, i, len(ids))
    with torch.no_grad():
      logits = model(torch.from_numpy(ids[None])).logits[0].numpy()  # [n, vocab]
    top = np.argsort(-logits, axis=-1)[:, :CHECK_TOP]
    rand = rng.integers(0, logits.shape[-1], (n, CHECK_RANDOM))
    check = np.concatenate([top, rand], axis=1)
    arrays[f"ids_{i}"] = ids.astype(np.int32)
    arrays[f"top1_{i}"] = logits.argmax(-1).astype(np.int32)
    arrays[f"check_ids_{i}"] = check.astype(np.int32)
    arrays[f"check_logits_{i}"] = np.take_along_axis(logits, check, axis=1)
    arrays[f"scale_{i}"] = np.float32(np.abs(logits).max())
  OUT.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(OUT / f"logits_{name}.npz", **arrays)
  meta = {
      "model": name,
      "file": path.name,
      "transformers": transformers.__version__,
      "torch": torch.__version__,
      "prompt_tokens": PROMPT_TOKENS,
  }
  print(json.dumps(meta))


if __name__ == "__main__":
  make("smollm2-135m", smollm2_135m_gguf_path())
  make("gemma3-270m", gemma3_270m_gguf_path())
