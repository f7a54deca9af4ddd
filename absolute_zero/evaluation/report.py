"""The evaluation report: a stable JSON layout, its check, and a printed table.

Layout (SCHEMA_VERSION 1; fields are only ever added, and a change of meaning bumps it):

  schema_version   int, 1
  created          ISO-8601 UTC time the report was written
  model            {"source": str, ...}: what was evaluated (e.g. kind, checkpoint step)
  config           {"benchmarks", "data_dir", "limit", "n_samples", "temperature", "top_p",
                    "batch_size", "max_new_tokens", "seed", "ks", "math_grader",
                    "prompt_version"}
  environment      {"python", "jax", "backend", "devices", "host"}
  timing           {"total_s", plus whatever the caller adds, e.g. "load_s"}
  benchmarks       {name: section}; a section is
      n              items evaluated
      num_samples    samples per item
      score          mean fraction of correct samples (= unbiased pass@1)
      pass_at_k      {"k": unbiased pass@k averaged over items}
      statuses       {status: count} over all samples ('correct', 'wrong', parse/run failures)
      finish_reasons {"eos"|"stop"|"length": count}
      timing         {"generate_s", "grade_s", "total_s", "s_per_item", "generated_tokens",
                      "tokens_per_s"}
      records        one per item, in data order: {"id", "prediction" (first sample's parsed
                     answer / extracted answer / HumanEval completion, or null), "correct"
                     (first sample), "status", "num_correct", "num_samples", "finish_reason",
                     "num_tokens"}, plus "samples" (per-sample prediction/correct/status/
                     finish_reason) when num_samples > 1 and "completions" (raw texts) when
                     asked for.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
from typing import Any

SCHEMA_VERSION = 1

_TOP_FIELDS = (
    "schema_version",
    "created",
    "model",
    "config",
    "environment",
    "timing",
    "benchmarks",
)
_SECTION_FIELDS = (
    "n",
    "num_samples",
    "score",
    "pass_at_k",
    "statuses",
    "finish_reasons",
    "timing",
    "records",
)
_RECORD_FIELDS = (
    "id",
    "prediction",
    "correct",
    "status",
    "num_correct",
    "num_samples",
    "finish_reason",
    "num_tokens",
)


def _environment() -> dict:
  env = {"python": platform.python_version(), "host": socket.gethostname()}
  try:
    import jax

    env.update(
        jax=jax.__version__, backend=jax.default_backend(), devices=[str(d) for d in jax.devices()]
    )
  except Exception:  # noqa: BLE001 - the report must still be written
    pass
  return env


def build_report(*, model: dict, config: dict, benchmarks: dict, total_s: float) -> dict:
  report = {
      "schema_version": SCHEMA_VERSION,
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "model": dict(model),
      "config": dict(config),
      "environment": _environment(),
      "timing": {"total_s": total_s},
      "benchmarks": benchmarks,
  }
  validate_report(report)
  return report


def validate_report(report: dict) -> None:
  """Raises ValueError naming the first field that does not follow the layout."""
  for field in _TOP_FIELDS:
    if field not in report:
      raise ValueError(f"report lacks {field!r}")
  if report["schema_version"] != SCHEMA_VERSION:
    raise ValueError(f"report schema_version {report['schema_version']} != {SCHEMA_VERSION}")
  for name, section in report["benchmarks"].items():
    for field in _SECTION_FIELDS:
      if field not in section:
        raise ValueError(f"benchmark {name!r} lacks {field!r}")
    if len(section["records"]) != section["n"]:
      raise ValueError(
          f"benchmark {name!r}: {len(section['records'])} records for n={section['n']}"
      )
    if not 0.0 <= section["score"] <= 1.0:
      raise ValueError(f"benchmark {name!r}: score {section['score']} outside [0, 1]")
    for record in section["records"]:
      for field in _RECORD_FIELDS:
        if field not in record:
          raise ValueError(f"benchmark {name!r}: a record lacks {field!r}")


def write_report(report: dict, path: str) -> None:
  """Writes the report as indented JSON (atomically: a temp file, then a rename)."""
  validate_report(report)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=1, ensure_ascii=False)
    f.write("\n")
  os.replace(tmp, path)


def format_table(report: dict) -> str:
  """A fixed-width table: benchmark, items, score (%), pass@k (%), seconds per item."""
  ks: list[str] = []
  for section in report["benchmarks"].values():
    for k in section["pass_at_k"]:
      if k != "1" and k not in ks:
        ks.append(k)
  header = ["benchmark", "n", "score %"] + [f"pass@{k} %" for k in ks] + ["s/item", "tok/s"]
  rows = [header]
  for name, section in report["benchmarks"].items():
    row = [name, str(section["n"]), f"{100 * section['score']:.1f}"]
    row += [
        f"{100 * section['pass_at_k'][k]:.1f}" if k in section["pass_at_k"] else "-" for k in ks
    ]
    row += [f"{section['timing']['s_per_item']:.2f}", f"{section['timing']['tokens_per_s']:.1f}"]
    rows.append(row)
  widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
  lines = [
      "  ".join(
          cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))
      )
      for row in rows
  ]
  lines.insert(1, "  ".join("-" * w for w in widths))
  source = report.get("model", {}).get("source", "?")
  return f"model: {source}\n" + "\n".join(lines)


def load_report(path: str) -> Any:
  with open(path, encoding="utf-8") as f:
    report = json.load(f)
  validate_report(report)
  return report
