"""HuggingFace's `math-verify` as an optional second math grader.

`math_verify_batch(items)` grades each (completion, references) pair the way published
math-verify scores are computed: math-verify extracts the answer from the whole completion
(`parse`) and compares it with each reference (parsed from ``\\boxed{reference}``) by
`verify`. It runs in a child interpreter (`_math_verify_worker.py`): math-verify's
expression extractor hands model text to SymPy's `parse_expr`, which uses `eval`, and its
timeouts use SIGALRM, which only works on a main thread.

math-verify is an optional dependency: ``pip install 'absolute-zero[math_verify]'``
(pinned in setup.py). `require_math_verify()` raises `MathVerifyUnavailable` with that
instruction when it is missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from typing import Optional, Sequence

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_math_verify_worker.py")
ITEM_TIMEOUT_S = 3
INSTALL_HINT = (
    "math_grader='math_verify' needs the optional `math-verify` package: "
    "pip install 'absolute-zero[math_verify]' (or pip install math-verify==0.9.0)"
)


class MathVerifyUnavailable(ImportError):
  """The `math-verify` package is not installed."""


def math_verify_available() -> bool:
  """True when `math_verify` can be imported (without importing it)."""
  return importlib.util.find_spec("math_verify") is not None


def require_math_verify() -> None:
  """Raises MathVerifyUnavailable (an ImportError) with the install command if missing."""
  if not math_verify_available():
    raise MathVerifyUnavailable(INSTALL_HINT)


def math_verify_batch(
    items: Sequence[tuple[Optional[str], Sequence[str]]], *, item_timeout_s: int = ITEM_TIMEOUT_S
) -> list[tuple[bool, Optional[str]]]:
  """(correct, extracted answer or None) for each (completion, references) item.

  A None or empty completion is wrong. An item the child loses (killed at the batch
  deadline of 30 s + 4 x item_timeout_s per item, or crashed) is wrong with no extraction.
  Raises MathVerifyUnavailable when math-verify is not installed.
  """
  require_math_verify()
  results: list[tuple[bool, Optional[str]]] = [(False, None)] * len(items)
  todo = [i for i, (text, _) in enumerate(items) if text is not None and str(text).strip()]
  if not todo:
    return results
  payload = json.dumps([[str(items[i][0]), [str(r) for r in items[i][1]]] for i in todo])
  deadline = 30.0 + 4.0 * item_timeout_s * len(todo)
  env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
  try:
    proc = subprocess.run(
        [sys.executable, "-s", _WORKER, str(item_timeout_s)],
        input=payload,
        capture_output=True,
        text=True,
        timeout=deadline,
        env=env,
        cwd="/",
    )
    lines = proc.stdout.splitlines()
  except subprocess.TimeoutExpired as exc:
    out = exc.stdout or ""
    lines = (out.decode() if isinstance(out, bytes) else out).splitlines()
  for line in lines:
    try:
      row = json.loads(line)
    except ValueError:
      continue
    if row == ["import_error"]:
      raise MathVerifyUnavailable(INSTALL_HINT + f" (not importable by {sys.executable})")
    if (
        isinstance(row, list)
        and len(row) == 3
        and isinstance(row[0], int)
        and 0 <= row[0] < len(todo)
    ):
      extracted = row[2] if isinstance(row[2], str) else None
      results[todo[row[0]]] = (row[1] is True, extracted)
  return results
