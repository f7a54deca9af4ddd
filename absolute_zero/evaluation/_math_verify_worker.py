"""Child interpreter for `math_verify_grader.math_verify_batch` (run as a script).

Reads a JSON list of [completion, [reference, ...]] from stdin and prints one JSON line per
decided item, `[index, correct, extracted]`, flushing each so a parent that kills it at its
deadline keeps what was decided. math-verify's expression extractor calls SymPy's
`parse_expr` (which uses `eval`) on model text, so it never runs in the caller's process;
memory is capped and math-verify's own per-call alarms bound the time.
"""

import json
import sys

MEMORY_BYTES = 2 << 30


def _gold(math_verify, reference):
  """A reference parsed as math-verify's users do: boxed, else as inline math."""
  for text in (f"\\boxed{{{reference}}}", f"${reference}$", reference):
    parsed = math_verify.parse(text, parsing_timeout=2)
    if parsed:
      return parsed
  return []


def main():
  timeout_s = int(float(sys.argv[1])) if len(sys.argv) > 1 else 3
  try:  # a huge power is computed in C, where the alarm cannot stop it: cap memory
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
  except (ImportError, ValueError, OSError):
    pass
  items = json.loads(sys.stdin.read())
  import logging

  logging.disable(logging.CRITICAL)  # math-verify logs every parse failure
  try:
    import math_verify
  except ImportError:
    print(json.dumps(["import_error"]), flush=True)
    return
  for index, (completion, references) in enumerate(items):
    correct, extracted = False, None
    try:
      pred = math_verify.parse(str(completion), parsing_timeout=max(1, timeout_s))
      if pred:
        extracted = str(pred[-1])
        for reference in references:
          gold = _gold(math_verify, str(reference))
          if gold and math_verify.verify(gold, pred, timeout_seconds=max(1, timeout_s)):
            correct = True
            break
    except BaseException:  # noqa: BLE001 - parse errors, timeouts, memory
      correct = False
    print(json.dumps([index, bool(correct), extracted]), flush=True)


if __name__ == "__main__":
  main()
