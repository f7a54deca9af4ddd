"""Seed datasets: tasks read from a JSONL file, validated in the sandbox like proposals.

Absolute Zero starts from one zero triplet and lets the model propose every other task
(spec §3). A seed dataset departs from that on purpose, for models too small to propose
valid programs (docs/seed_datasets.md): its rows enter the buffers at step 0 after the
same checks a proposal passes.

Format: one JSON object per line, with the field names of the reference's seed files
(LeapLabTHU/Absolute-Zero-Reasoner ``data/*_seed_io.jsonl`` and ``*_code_f_seed_io.jsonl``):

* triplet row: ``snippet`` (program defining ``f``), ``input`` (the argument list as Python
  literals, e.g. ``"[1, 2], 'ab'"``), ``output`` (``repr`` of ``f(*input)``);
* induction row: ``snippet``, ``inputs`` and ``outputs`` (lists of such strings, same
  length) and ``message`` (the hint shown to the solver).

Assignment of rows to task types: a row with an ``inputs`` field is an induction row and
goes to the induction buffer; any other row is a triplet row and serves deduction and
abduction alike (the reference adds its seed file to both its input and output datasets).
An optional ``task_type`` field (``deduction``/``abduction``/``induction`` or the
reference's ``code_o``/``code_i``/``code_f``) narrows a row to that one buffer. Other fields
(the reference's ``imports``, ``original_snippet``, ``composite_functions``) are ignored:
its ``snippet`` already holds the imports.

Validation, per row (rows that fail are counted, reported with their line and skipped):

1. the row's shape: a JSON object with the fields above, as strings (``bad_json``,
   ``not_an_object``, ``missing_field``, ``wrong_type``, ``bad_task_type``);
2. the proposal parser's checks (``parsers.parse_program``: size cap, syntax, one top-level
   function ``f``; literal and message size caps), statuses as ``parsers.FailureKind``;
3. the sandbox, through ``validators.validate_triplet_proposals`` and
   ``validators.validate_induction_proposals``, the calls ``selfplay.phases.propose`` makes:
   banned modules, two runs that must agree (determinism), time/memory/output caps;
   statuses as ``validators.validate_proposals``. Induction inputs that fail are dropped as for a proposal
   (listed in ``SeedReport.dropped_inputs``) and the row needs ``min_pairs`` usable ones;
4. the recorded output(s) must equal what the sandbox computed, as values
   (``sandbox.literals.literals_equal``, the deduction grader's equality):
   ``output_mismatch``. The buffers store the sandbox's ``repr``, as for proposals;
5. a row that repeats an accepted task (``buffers.dedup_key``) is a ``duplicate``.

The induction proposer's count of inputs (``ParseConfig.num_inputs``) is a rule of its
answer format, not of a task, so seed rows may hold any number of pairs (at least
``ValidatorConfig.min_pairs``).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import pathlib
from typing import Any, Optional, Sequence, Union

from absolute_zero.sandbox.literals import literals_equal
from absolute_zero.tasks import validators
from absolute_zero.tasks.buffers import dedup_key
from absolute_zero.tasks.parsers import (
    ParseConfig,
    ParsedInductionProposal,
    ParsedTripletProposal,
    ParseFailure,
    _literal_field,
    parse_program,
)
from absolute_zero.tasks.types import InductionTask, TaskType, Triplet

# Written by the absolute-zero authors for this project (MIT, like the project); it holds
# no benchmark program (CRUXEval, HumanEval, MBPP, ...).
DEFAULT_SEED_DATASET = str(
    pathlib.Path(__file__).resolve().parent.parent / "data" / "seed_tasks.jsonl"
)

TRIPLET_TYPES = (TaskType.DEDUCTION, TaskType.ABDUCTION)
_TRIPLET_FIELDS = ("snippet", "input", "output")
_INDUCTION_FIELDS = ("snippet", "inputs", "outputs", "message")


class SeedDataError(ValueError):
  """The file cannot serve as a seed dataset at all (missing, not JSONL, no usable row)."""


@dataclasses.dataclass(frozen=True)
class SeedRow:
  """One well-shaped row: ``task_types`` it serves, and its fields as text."""

  line: int  # 1-based line in the file
  task_types: tuple[TaskType, ...]
  program: str
  input: Optional[str] = None  # triplet rows
  output: Optional[str] = None
  inputs: tuple[str, ...] = ()  # induction rows
  outputs: tuple[str, ...] = ()
  message: str = ""

  @property
  def is_induction(self) -> bool:
    return self.task_types == (TaskType.INDUCTION,)


@dataclasses.dataclass(frozen=True)
class Rejection:
  """Why the row on ``line`` was skipped: a status word and a readable reason."""

  line: int
  status: str
  reason: str


@dataclasses.dataclass
class SeedReport:
  """What loading a seed file did. ``accepted`` counts tasks per buffer, so a triplet row
  that serves deduction and abduction counts once in each."""

  path: str
  rows_read: int = 0
  accepted: dict[TaskType, int] = dataclasses.field(
      default_factory=lambda: {t: 0 for t in TaskType}
  )
  rejected: list[Rejection] = dataclasses.field(default_factory=list)
  dropped_inputs: list[tuple[int, str, str]] = dataclasses.field(default_factory=list)

  def rejected_by_status(self) -> dict[str, list[int]]:
    """status -> sorted line numbers of the rows rejected for it."""
    out: dict[str, list[int]] = collections.defaultdict(list)
    for r in self.rejected:
      out[r.status].append(r.line)
    return {k: sorted(v) for k, v in sorted(out.items())}

  def summary(self) -> str:
    """One line: rows, accepted per type, rejections per status with their lines."""
    accepted = ", ".join(f"{t.value} {n}" for t, n in self.accepted.items())
    text = f"seed dataset {self.path}: {self.rows_read} rows; accepted {accepted}"
    if self.rejected:
      parts = [
          f"{status}: lines {', '.join(map(str, lines[:10]))}" + (" ..." if len(lines) > 10 else "")
          for status, lines in self.rejected_by_status().items()
      ]
      text += f"; rejected {len(self.rejected)} ({'; '.join(parts)})"
    if self.dropped_inputs:
      text += f"; {len(self.dropped_inputs)} induction inputs dropped"
    return text


@dataclasses.dataclass
class SeedData:
  """Accepted tasks per buffer (``Triplet`` or ``InductionTask``), in file order."""

  entries: dict[TaskType, list]
  report: SeedReport


# ------------------------------------------------------------------------------ reading


def read_jsonl(path: Union[str, os.PathLike]) -> tuple[list[tuple[int, Any]], list[Rejection]]:
  """(line, decoded JSON value) of every non-blank line, and the lines that are not JSON.

  Raises:
    SeedDataError: the file is missing, not a regular file, unreadable, not UTF-8 (names
      the line), holds no non-blank line, or no line of it is a JSON object (not JSONL;
      names the file and the first bad line).
  """
  name = os.fspath(path)
  if not os.path.exists(name):
    raise SeedDataError(f"seed dataset {name}: no such file")
  if not os.path.isfile(name):
    raise SeedDataError(f"seed dataset {name}: not a regular file")
  rows: list[tuple[int, Any]] = []
  bad: list[Rejection] = []
  try:
    with open(name, "rb") as handle:
      for number, raw in enumerate(handle, start=1):
        try:
          text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
          raise SeedDataError(
              f"seed dataset {name}: line {number} is not UTF-8 text "
              f"({err.reason}); expected JSONL"
          ) from None
        if not text.strip():
          continue
        try:
          rows.append((number, json.loads(text)))
        except json.JSONDecodeError as err:
          bad.append(Rejection(number, "bad_json", f"not JSON: {err.msg} at column {err.colno}"))
  except OSError as err:
    raise SeedDataError(f"seed dataset {name}: cannot read ({err.strerror or err})") from None
  if not rows and not bad:
    raise SeedDataError(
        f"seed dataset {name}: the file is empty; expected one JSON object " "per line"
    )
  if not any(isinstance(value, dict) for _, value in rows):
    first = (
        bad[0]
        if bad
        else Rejection(
            rows[0][0], "not_an_object", f"a JSON {type(rows[0][1]).__name__}, not an object"
        )
    )
    raise SeedDataError(
        f"seed dataset {name}: not JSONL (one JSON object per line): line "
        f"{first.line}: {first.reason}"
    )
  return rows, bad


def _wrong_type(field: str, value: Any, want: str) -> str:
  return f"field {field!r} must be {want}, got {type(value).__name__}"


def parse_row(line: int, value: Any) -> Union[SeedRow, Rejection]:
  """A decoded JSON line as a ``SeedRow``, or why its shape is wrong (module docstring)."""
  if not isinstance(value, dict):
    return Rejection(line, "not_an_object", f"a JSON {type(value).__name__}, not an object")
  task_types: Optional[tuple[TaskType, ...]] = None
  if "task_type" in value:
    name = value["task_type"]
    if not isinstance(name, str):
      return Rejection(line, "bad_task_type", _wrong_type("task_type", name, "a string"))
    try:
      task_types = (TaskType.from_name(name.strip()),)
    except ValueError as err:
      return Rejection(line, "bad_task_type", str(err))
  induction = task_types == (TaskType.INDUCTION,) if task_types is not None else "inputs" in value
  fields = _INDUCTION_FIELDS if induction else _TRIPLET_FIELDS
  missing = [f for f in fields if f not in value]
  if missing:
    kind = "induction" if induction else "triplet"
    return Rejection(
        line,
        "missing_field",
        f"{kind} row lacks {', '.join(map(repr, missing))} (needs " f"{', '.join(fields)})",
    )
  for field in ("snippet", "message") if induction else fields:
    if not isinstance(value[field], str):
      return Rejection(line, "wrong_type", _wrong_type(field, value[field], "a string"))
  if not induction:
    return SeedRow(
        line,
        task_types or TRIPLET_TYPES,
        value["snippet"],
        input=value["input"],
        output=value["output"],
    )
  for field in ("inputs", "outputs"):
    items = value[field]
    if not (isinstance(items, list) and all(isinstance(x, str) for x in items)):
      return Rejection(
          line, "wrong_type", f"field {field!r} must be a list of strings (Python literals)"
      )
  if len(value["inputs"]) != len(value["outputs"]):
    return Rejection(
        line, "wrong_type", f"{len(value['inputs'])} inputs but " f"{len(value['outputs'])} outputs"
    )
  return SeedRow(
      line,
      (TaskType.INDUCTION,),
      value["snippet"],
      inputs=tuple(value["inputs"]),
      outputs=tuple(value["outputs"]),
      message=value["message"],
  )


# ------------------------------------------------------------------------------ checking


def _parse_checks(row: SeedRow, config: ParseConfig) -> Union[SeedRow, Rejection]:
  """The proposal parser's content checks; returns the row with its program as the parser
  would pass it on (a single function renamed to ``f``)."""

  def failed(failure: ParseFailure) -> Rejection:
    return Rejection(row.line, failure.kind.value, failure.detail)

  program = parse_program(
      row.program, config, reject_multiple_functions=config.reject_multiple_functions
  )
  if isinstance(program, ParseFailure):
    return failed(program)
  literals = [row.input] if not row.is_induction else list(row.inputs)
  checked = []
  for literal in literals:
    out = _literal_field(literal, "input", config)
    if isinstance(out, ParseFailure):
      return failed(out)
    checked.append(out)
  if not row.is_induction:
    return dataclasses.replace(row, program=program, input=checked[0])
  message = row.message.strip()
  if not message:
    return Rejection(row.line, "empty_block", "message is empty")
  if len(message) > config.max_message_chars:
    return Rejection(
        row.line, "field_too_long", f"message has {len(message)} chars > {config.max_message_chars}"
    )
  return dataclasses.replace(row, program=program, inputs=tuple(checked), message=message)


def _short(text: str, limit: int = 80) -> str:
  return text if len(text) <= limit else text[: limit - 3] + "..."


def _mismatch(recorded: str, computed: str) -> str:
  """'recorded X, the sandbox computed Y', with where they part when both are long."""
  text = f"recorded {_short(recorded)}, the sandbox computed {_short(computed)}"
  if max(len(recorded), len(computed)) > 80:
    at = next(
        (i for i, (a, b) in enumerate(zip(recorded, computed)) if a != b),
        min(len(recorded), len(computed)),
    )
    text += f" ({len(recorded)} vs {len(computed)} chars, first difference at char {at})"
  return text


def _check_triplets(pool: Any, rows: Sequence[SeedRow]) -> list[Union[Triplet, Rejection]]:
  results = validators.validate_triplet_proposals(
      pool, [ParsedTripletProposal(r.program, r.input) for r in rows]
  )
  out: list[Union[Triplet, Rejection]] = []
  for row, res in zip(rows, results):
    if not res.valid:
      out.append(Rejection(row.line, res.status, res.reason))
    elif not _equal(row.output, res.triplet.output):
      out.append(Rejection(row.line, "output_mismatch", _mismatch(row.output, res.triplet.output)))
    else:
      out.append(res.triplet)
  return out


def _equal(recorded: str, computed: str) -> bool:
  return literals_equal(computed, recorded)


def _check_induction(
    pool: Any, rows: Sequence[SeedRow], config: validators.ValidatorConfig, report: SeedReport
) -> list[Union[InductionTask, Rejection]]:
  results = validators.validate_induction_proposals(
      pool, [(r.program, ParsedInductionProposal(r.inputs, r.message)) for r in rows], config
  )
  out: list[Union[InductionTask, Rejection]] = []
  for row, res in zip(rows, results):
    report.dropped_inputs.extend((row.line, literal, why) for literal, why in res.dropped)
    if not res.valid:
      failures = [why for _, why in res.dropped if why != "duplicate input"]
      status, reason = res.status, res.reason
      if failures and res.status == "too_few_valid_inputs":
        # No usable pair because the inputs failed: name the sandbox's verdict (e.g. a
        # banned program fails every input), not only the count.
        status = failures[0].split(":", 1)[0]
        reason = f"{res.reason}; first failure: {failures[0]}"
      out.append(Rejection(row.line, status, reason))
      continue
    recorded: dict[str, str] = {}  # the first of repeated inputs, as the validator keeps
    for literal, output in zip(row.inputs, row.outputs):
      recorded.setdefault(literal.strip(), output)
    wrong = [
        (p.input, recorded[p.input.strip()], p.output)
        for p in res.task.shown + res.task.held_out
        if not _equal(recorded[p.input.strip()], p.output)
    ]
    if wrong:
      literal, want, got = wrong[0]
      out.append(
          Rejection(
              row.line,
              "output_mismatch",
              f"{len(wrong)} of {len(recorded)} outputs differ; input {_short(literal)}: "
              + _mismatch(want, got),
          )
      )
    else:
      out.append(res.task)
  return out


def load_seed_dataset(
    path: Union[str, os.PathLike],
    pool: Any,
    *,
    parse_config: ParseConfig = ParseConfig(),
    validator_config: validators.ValidatorConfig = validators.ValidatorConfig(),
    require_any: bool = True,
) -> SeedData:
  """Reads, checks and validates a seed file (module docstring); one sandbox batch per kind.

  Args:
    path: the JSONL file.
    pool: a ``SandboxPool`` (or anything with its ``run_batch``).
    parse_config, validator_config: the run's, so the rules match its proposals.
    require_any: raise when rows were read but none was accepted.

  Returns:
    ``SeedData``: accepted ``Triplet``s under DEDUCTION/ABDUCTION and ``InductionTask``s
    under INDUCTION (file order), and the ``SeedReport``.

  Raises:
    SeedDataError: see ``read_jsonl``; with ``require_any``, also when no row passed (the
      message lists the rejections by status and line).
  """
  values, bad = read_jsonl(path)
  report = SeedReport(path=os.fspath(path), rows_read=len(values) + len(bad))
  rejected = list(bad)
  triplet_rows, induction_rows = [], []
  for line, value in values:
    row = parse_row(line, value)
    if isinstance(row, SeedRow):
      row = _parse_checks(row, parse_config)
    if isinstance(row, Rejection):
      rejected.append(row)
    else:
      (induction_rows if row.is_induction else triplet_rows).append(row)

  checked: list[tuple[SeedRow, Union[Triplet, InductionTask, Rejection]]] = []
  if triplet_rows:
    checked += zip(triplet_rows, _check_triplets(pool, triplet_rows))
  if induction_rows:
    checked += zip(induction_rows, _check_induction(pool, induction_rows, validator_config, report))
  checked.sort(key=lambda pair: pair[0].line)

  entries: dict[TaskType, list] = {t: [] for t in TaskType}
  first_line: dict[tuple, int] = {}
  for row, result in checked:
    if isinstance(result, Rejection):
      rejected.append(result)
      continue
    key = (row.task_types, dedup_key(result))
    if key in first_line:
      rejected.append(Rejection(row.line, "duplicate", f"the same task as line {first_line[key]}"))
      continue
    first_line[key] = row.line
    for task_type in row.task_types:
      entries[task_type].append(result)
      report.accepted[task_type] += 1
  report.rejected = sorted(rejected, key=lambda r: r.line)
  if require_any and report.rows_read and not any(report.accepted.values()):
    raise SeedDataError(f"no row passed validation: {report.summary()}")
  return SeedData(entries=entries, report=report)
