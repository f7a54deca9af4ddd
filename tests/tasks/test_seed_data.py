"""Seed datasets: reading JSONL, row shapes, sandbox validation, the shipped file, and
`SelfPlayRun.seed_from_dataset`.

Expected values are written by hand (outputs of the tiny programs below), and the rule
"a seed row is judged as a proposal is" is checked against the proposal path itself:
each program rendered as a model's proposal, parsed and validated by the validators.
"""

import json
import os

import pytest

from absolute_zero.sandbox import SandboxLimits, SandboxPool
from absolute_zero.tasks import parsers as P
from absolute_zero.tasks import seed_data as S
from absolute_zero.tasks.buffers import normalize_program
from absolute_zero.tasks.prompts import render_triplet_proposal
from absolute_zero.tasks.types import InductionTask, IOPair, TaskType, Triplet
from absolute_zero.tasks.validators import validate_triplet_proposals

D, A, I = TaskType.DEDUCTION, TaskType.ABDUCTION, TaskType.INDUCTION
GOOD = {"snippet": "def f(a, b):\n    return a * b + 1", "input": "3, 4", "output": "13"}
GOOD_INDUCTION = {
    "snippet": "def f(s):\n    return s[::-1]",
    "inputs": ["'ab'", "'xyz'", "''", "'q'"],
    "outputs": ["'ba'", "'zyx'", "''", "'q'"],
    "message": "Reverses the text.",
}


@pytest.fixture(scope="module")
def pool():
  with SandboxPool(num_workers=2, limits=SandboxLimits(timeout_s=1.0, cpu_s=1.0)) as p:
    yield p


def write(tmp_path, lines, name="seed.jsonl"):
  """Writes rows (dicts become JSON, strings are written as they are), one per line."""
  path = tmp_path / name
  path.write_text(
      "".join((json.dumps(x) if not isinstance(x, str) else x) + "\n" for x in lines),
      encoding="utf-8",
  )
  return str(path)


def load(tmp_path, pool, lines, **kwargs):
  return S.load_seed_dataset(write(tmp_path, lines), pool, **kwargs)


def rejections(data):
  return [(r.line, r.status) for r in data.report.rejected]


# ------------------------------------------------------------------------------ good rows


def test_good_rows_become_tasks_of_the_right_types(tmp_path, pool):
  rows = [
      GOOD,
      # The reference writes double-quoted outputs; the buffer keeps the sandbox's repr.
      {
          "snippet": "def f(s):\n    return s.upper()",
          "input": '"ab"',
          "output": '"AB"',
          "imports": [],
          "original_snippet": "x",
          "composite_functions": [],
      },
      {**GOOD, "input": "2, 5", "output": "11", "task_type": "code_i"},  # abduction only
      {**GOOD, "input": "0, 5", "output": "1", "task_type": "deduction"},
      GOOD_INDUCTION,
      # A single function with another name is renamed to f, as the proposal parser does.
      {"snippet": "def double(x):\n    return 2 * x", "input": "[1]", "output": "[1, 1]"},
  ]
  data = load(tmp_path, pool, rows)
  assert rejections(data) == []
  t1 = Triplet(GOOD["snippet"], "3, 4", "13")
  t2 = Triplet("def f(s):\n    return s.upper()", '"ab"', "'AB'")
  t3 = Triplet(GOOD["snippet"], "2, 5", "11")
  t4 = Triplet(GOOD["snippet"], "0, 5", "1")
  t6 = Triplet("def f(x):\n    return 2 * x", "[1]", "[1, 1]")
  assert data.entries[D] == [t1, t2, t4, t6]
  assert data.entries[A] == [t1, t2, t3, t6]
  assert data.entries[I] == [
      InductionTask(
          GOOD_INDUCTION["snippet"],
          (IOPair("'ab'", "'ba'"), IOPair("'xyz'", "'zyx'")),
          (IOPair("''", "''"), IOPair("'q'", "'q'")),
          "Reverses the text.",
      )
  ]
  assert data.report.rows_read == 6
  assert data.report.accepted == {D: 4, A: 4, I: 1}


def test_blank_lines_are_skipped_but_lines_keep_their_file_numbers(tmp_path, pool):
  data = load(tmp_path, pool, ["", GOOD, "   ", {"snippet": "x = 1", "input": "1", "output": "1"}])
  assert data.report.rows_read == 2
  assert rejections(data) == [(4, "no_function_f")]


# ------------------------------------------------------------------------------ malformed

MALFORMED = [
    ("{not json", "bad_json"),
    ('{"snippet": "def f(x):\\n    return x", "input": "1"', "bad_json"),  # truncated
    ("[1, 2]", "not_an_object"),
    ('"just a string"', "not_an_object"),
    ({"input": "1", "output": "1"}, "missing_field"),
    ({"snippet": "def f(x):\n    return x", "output": "1"}, "missing_field"),
    ({"snippet": "def f(x):\n    return x", "input": "1"}, "missing_field"),
    (
        {"snippet": "def f(x):\n    return x", "inputs": ["1", "2"], "outputs": ["1", "2"]},
        "missing_field",
    ),
    ({"snippet": "def f(x):\n    return x", "input": 1, "output": "1"}, "wrong_type"),
    ({"snippet": "def f(x):\n    return x", "input": "1", "output": 1}, "wrong_type"),
    ({"snippet": ["def f(x):", "    return x"], "input": "1", "output": "1"}, "wrong_type"),
    ({**GOOD_INDUCTION, "inputs": "'ab'"}, "wrong_type"),
    ({**GOOD_INDUCTION, "outputs": ["'ba'", 3, "''", "'q'"]}, "wrong_type"),
    ({**GOOD_INDUCTION, "outputs": ["'ba'"]}, "wrong_type"),  # lengths differ
    ({**GOOD_INDUCTION, "message": None}, "wrong_type"),
    ({**GOOD, "task_type": "code_e"}, "bad_task_type"),
    ({**GOOD, "task_type": 2}, "bad_task_type"),
    ({**GOOD, "task_type": "induction"}, "missing_field"),  # induction needs inputs...
    ({**GOOD_INDUCTION, "task_type": "deduction"}, "missing_field"),  # ...a triplet input
]


@pytest.mark.parametrize(
    "row,status", MALFORMED, ids=[s + str(i) for i, (_, s) in enumerate(MALFORMED)]
)
def test_malformed_rows_are_reported_with_their_line_and_skipped(tmp_path, pool, row, status):
  data = load(tmp_path, pool, [GOOD, row, GOOD_INDUCTION])
  assert rejections(data) == [(2, status)]
  assert data.report.rejected[0].reason
  assert data.report.accepted == {D: 1, A: 1, I: 1}
  assert data.report.rows_read == 3
  assert "rejected 1 (" + status + ": lines 2)" in data.report.summary()


def test_many_rejections_are_grouped_by_status_with_sorted_lines(tmp_path, pool):
  lines = [GOOD, "{", {"input": "1"}, "{", {**GOOD, "output": "0"}, "nope"]
  data = load(tmp_path, pool, lines)
  assert data.report.rejected_by_status() == {
      "bad_json": [2, 4, 6],
      "missing_field": [3],
      "output_mismatch": [5],
  }


# ------------------------------------------------------------------------------ file errors


def test_file_level_errors_name_the_file_and_line(tmp_path, pool):
  missing = str(tmp_path / "nope.jsonl")
  with pytest.raises(S.SeedDataError, match=f"{missing}: no such file"):
    S.load_seed_dataset(missing, pool)
  with pytest.raises(S.SeedDataError, match="not a regular file"):
    S.load_seed_dataset(str(tmp_path), pool)
  with pytest.raises(S.SeedDataError, match="empty"):
    S.load_seed_dataset(write(tmp_path, ["", "  "], "blank.jsonl"), pool)
  csv = write(tmp_path, ["snippet,input,output", "x,1,1"], "rows.csv")
  with pytest.raises(S.SeedDataError, match=f"{csv}: not JSONL .*line 1: not JSON"):
    S.load_seed_dataset(csv, pool)
  pretty = write(tmp_path, [json.dumps([GOOD], indent=1)], "pretty.json")
  with pytest.raises(S.SeedDataError, match="not JSONL .*line 1"):
    S.load_seed_dataset(pretty, pool)
  array = write(tmp_path, [json.dumps([GOOD, GOOD])], "array.json")  # one line, not objects
  with pytest.raises(S.SeedDataError, match="not JSONL .*line 1: a JSON list"):
    S.load_seed_dataset(array, pool)
  binary = tmp_path / "bin.jsonl"
  binary.write_bytes(json.dumps(GOOD).encode() + b"\n\xff\xfe\x00\n")
  with pytest.raises(S.SeedDataError, match="line 2 is not UTF-8"):
    S.load_seed_dataset(str(binary), pool)


def test_a_file_with_no_usable_row_is_an_error_unless_asked_otherwise(tmp_path, pool):
  # Field names of another format (ours: program/input/output) match no row.
  path = write(
      tmp_path,
      [
          {"program": "def f(x):\n    return x", "input": "1", "output": "1"},
          {**GOOD, "output": "12"},
      ],
  )
  with pytest.raises(
      S.SeedDataError, match=r"no row passed.*missing_field: lines 1.*" r"output_mismatch: lines 2"
  ):
    S.load_seed_dataset(path, pool)
  data = S.load_seed_dataset(path, pool, require_any=False)
  assert rejections(data) == [(1, "missing_field"), (2, "output_mismatch")]
  assert data.entries == {D: [], A: [], I: []}


def test_byte_order_mark_is_accepted(tmp_path, pool):
  path = tmp_path / "bom.jsonl"
  path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
  assert S.load_seed_dataset(str(path), pool).report.accepted == {D: 1, A: 1, I: 0}


# ------------------------------------------------------------------------------ sandbox

INVALID_TRIPLETS = [
    ("import random\ndef f(x):\n    return random.random() + x", "1", "0.5", "banned"),
    ("from os import path\ndef f(x):\n    return x", "1", "1", "banned"),
    ("def f(x):\n    return hash(str(x)) % 1000003", "'salt'", "1", "nondeterministic"),
    ("def f(x):\n    return [id(object())]", "1", "[1]", "nondeterministic"),
    ("def f(x):\n    return 1 // (x - x)", "3", "0", "error"),
    ("def f(x):\n    raise ValueError('no')", "3", "0", "error"),
    ("def f(x):\n    while True:\n        x += 1", "0", "0", "timeout"),
    ("def f(x):\n    return 'x' * 9000", "0", "''", "output_too_large"),
    ("def f(x):\n    return x +", "1", "1", "syntax_error"),
    ("x = 3", "1", "1", "no_function_f"),
    ("def f(x):\n    return g(x)\ndef g(y):\n    return y", "1", "1", "multiple_functions"),
    ("def f(x):\n    return x", "", "1", "empty_block"),
    ("def f(x):\n    return x", "print(1)", "1", "error"),  # not a literal input
    ("def f(x):\n    return x * 2", "21", "41", "output_mismatch"),
    ("def f(x):\n    return [x]", "'a'", "['a', 'a']", "output_mismatch"),
    ("def f(x):\n    return str(x)", "7", "7", "output_mismatch"),  # '7' is not 7
]


def test_invalid_rows_are_rejected_by_the_sandbox_with_their_reasons(tmp_path, pool):
  rows = [{"snippet": p, "input": i, "output": o} for p, i, o, _ in INVALID_TRIPLETS]
  data = load(tmp_path, pool, [GOOD] + rows)
  assert rejections(data) == [(k + 2, s) for k, (*_, s) in enumerate(INVALID_TRIPLETS)]
  reasons = [r.reason for r in data.report.rejected]
  assert "random" in reasons[0] and "os.path" in reasons[1]
  assert "ZeroDivisionError" in reasons[4] and "ValueError: no" in reasons[5]
  assert "recorded 7, the sandbox computed '7'" in data.report.rejected[-1].reason
  assert data.entries[D] == data.entries[A] == [Triplet(GOOD["snippet"], "3, 4", "13")]


def test_seed_rows_get_the_verdict_the_proposal_path_gives(tmp_path, pool):
  """Same rules as proposals: the proposal path's status for each (program, input), from a
  rendered model answer, equals the seed loader's (with the sandbox's own output recorded,
  so only validity decides)."""
  cases = [(p, i) for p, i, _, s in INVALID_TRIPLETS if s != "output_mismatch"]
  cases += [
      (GOOD["snippet"], "3, 4"),
      ("def g(x):\n    return -x", "5"),
      ("import math\ndef f(x):\n    return math.floor(x)", "2.5"),
  ]
  parsed = [P.parse_triplet_proposal(render_triplet_proposal(p, i)) for p, i in cases]
  proposal = validate_triplet_proposals(pool, parsed)
  rows = [
      {"snippet": p, "input": i, "output": r.triplet.output if r.valid else "0"}
      for (p, i), r in zip(cases, proposal)
  ]
  data = load(tmp_path, pool, rows, require_any=False)
  seed_status = {r.line: r.status for r in data.report.rejected}
  assert [seed_status.get(k + 1, "ok") for k in range(len(cases))] == [r.status for r in proposal]
  assert data.entries[D] == [r.triplet for r in proposal if r.valid]
  assert len(data.entries[D]) == 3


def test_invalid_induction_rows(tmp_path, pool):
  program = GOOD_INDUCTION["snippet"]
  rows = [
      {**GOOD_INDUCTION, "snippet": "import random\n" + program},  # every input banned
      {**GOOD_INDUCTION, "outputs": ["'ba'", "'zyx'", "''", "'r'"]},  # last pair wrong
      {**GOOD_INDUCTION, "inputs": ["'ab'"], "outputs": ["'ba'"]},  # one pair < min_pairs
      {**GOOD_INDUCTION, "message": "  "},
      {**GOOD_INDUCTION, "snippet": "def f(s):\n    return s[::-1] +"},
      {
          **GOOD_INDUCTION,
          "snippet": "def f(x):\n    return 10 // x",
          "inputs": ["0", "0"],
          "outputs": ["0", "0"],
      },  # every input raises
  ]
  data = load(tmp_path, pool, [GOOD] + rows)
  assert rejections(data) == [
      (2, "banned"),
      (3, "output_mismatch"),
      (4, "too_few_valid_inputs"),
      (5, "empty_block"),
      (6, "syntax_error"),
      (7, "error"),
  ]
  mismatch = data.report.rejected[1].reason
  assert "input 'q'" in mismatch and "recorded 'r', the sandbox computed 'q'" in mismatch
  assert data.entries[I] == []


def test_induction_inputs_that_fail_are_dropped_as_for_a_proposal(tmp_path, pool):
  row = {
      "snippet": "def f(x):\n    return 12 // x",
      "inputs": ["1", "0", "4", "1", "6"],
      "outputs": ["12", "0", "3", "12", "2"],
      "message": "Twelve divided by x.",
  }
  data = load(tmp_path, pool, [row])
  task = data.entries[I][0]
  assert task.shown == (IOPair("1", "12"),)
  assert task.held_out == (IOPair("4", "3"), IOPair("6", "2"))
  dropped = data.report.dropped_inputs
  assert [(line, literal) for line, literal, _ in dropped] == [(1, "0"), (1, "1")]
  assert "ZeroDivisionError" in dropped[0][2] and dropped[1][2] == "duplicate input"
  assert "2 induction inputs dropped" in data.report.summary()


def test_repeated_tasks_are_reported_as_duplicates(tmp_path, pool):
  data = load(
      tmp_path,
      pool,
      [
          GOOD,
          {**GOOD, "snippet": GOOD["snippet"] + "\n\n"},
          GOOD_INDUCTION,
          GOOD_INDUCTION,
          {**GOOD, "input": "4, 3"},
      ],
  )
  assert rejections(data) == [(2, "duplicate"), (4, "duplicate")]
  assert "line 1" in data.report.rejected[0].reason
  assert data.report.accepted == {D: 2, A: 2, I: 1}


# ------------------------------------------------------------------------------ shipped file


def _shipped_rows():
  with open(S.DEFAULT_SEED_DATASET, encoding="utf-8") as handle:
    return [json.loads(line) for line in handle if line.strip()]


def test_the_shipped_seed_file_loads_with_every_row_accepted(pool):
  rows = _shipped_rows()
  data = S.load_seed_dataset(S.DEFAULT_SEED_DATASET, pool)
  assert data.report.rejected == [] and data.report.dropped_inputs == []
  n_induction = sum("inputs" in r for r in rows)
  assert data.report.rows_read == len(rows)
  assert 24 <= len(rows) <= 80 and 3 <= n_induction <= 10
  assert data.report.accepted == {
      D: len(rows) - n_induction,
      A: len(rows) - n_induction,
      I: n_induction,
  }


def test_the_shipped_seed_file_is_short_and_varied():
  rows = _shipped_rows()
  for row in rows:
    assert len(row["snippet"].splitlines()) <= 7, row["snippet"]
    for literal in [row.get("input", "")] + row.get("inputs", []):
      assert len(literal) <= 60, literal
  outputs = [r["output"] for r in rows if "output" in r]
  kinds = {type(__import__("ast").literal_eval(o)).__name__ for o in outputs}
  assert {"int", "str", "list", "dict", "tuple", "bool"} <= kinds
  assert len({normalize_program(r["snippet"]) for r in rows}) == len(rows)


def _body(program: str) -> str:
  """A program without its def line and blank lines: benchmark copies under other names
  and parameter lists still match."""
  lines = [ln.strip() for ln in normalize_program(program).splitlines() if ln.strip()]
  return "\n".join(ln for ln in lines if not ln.startswith(("def ", "import ", "from ")))


def test_the_shipped_seed_file_holds_no_cruxeval_or_humaneval_program():
  from absolute_zero.evaluation import data as bench

  ours = {_body(r["snippet"]) for r in _shipped_rows()}
  theirs = set()
  try:
    theirs |= {_body(item.code) for item in bench.load_cruxeval(bench.default_data_dir())}
  except bench.DataNotFoundError:
    pass
  try:
    theirs |= {_body(item.canonical_solution) for item in bench.load_humaneval()}
  except bench.DataNotFoundError:
    pass
  if not theirs:
    pytest.skip("no benchmark data here to compare with")
  assert not ours & theirs


# ------------------------------------------------------------------------------ the run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, pool):
  """A SelfPlayRun on a tiny random model (seeding from a file generates nothing)."""
  pytest.importorskip("tokenizers")
  import jax

  from absolute_zero import learner
  from absolute_zero.models import get_config, init_params
  from absolute_zero.selfplay.selfplay_config import SelfPlayConfig
  from absolute_zero.selfplay.run import SelfPlayRun
  from absolute_zero.tokenizers import from_tokenizer_json
  from tests.selfplay import teaching

  path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
  teaching.train_bpe(["def f(x):\n    return x", "<answer>1</answer>"] * 4, path, vocab_size=300)
  model_config = get_config("tiny-llama").replace(vocab_size=320, rope_scaling=None, num_layers=1)
  config = SelfPlayConfig(task_types=(D, A), batch_size=2, max_seed_rounds=1)
  lines = []
  run = SelfPlayRun(
      model_config,
      init_params(model_config, jax.random.key(0)),
      from_tokenizer_json(path),
      config,
      learner.LearnerConfig(learning_rate=1e-5),
      pool=pool,
      log=lines.append,
  )
  return run, lines


def test_seed_from_dataset_fills_the_buffers_at_step_zero(tiny_run, tmp_path):
  run, lines = tiny_run
  path = write(
      tmp_path,
      [
          GOOD,
          {**GOOD, "output": "0"},
          GOOD_INDUCTION,
          {
              "snippet": "def f(x):\n    return x",
              "input": "'Hello World'",
              "output": "'Hello World'",
          },
      ],
  )  # the zero triplet again
  before = run.buffers.sizes()
  metrics = run.seed_from_dataset(path)
  assert before == {"deduction": 1, "abduction": 1, "induction": 0}
  assert metrics["seed_data/rows"] == 4 and metrics["seed_data/rejected"] == 1
  # The zero-triplet row is accepted but already in the buffers: the buffer dedups it.
  assert {k: metrics[f"seed_data/added/{k}"] for k in before} == {
      "deduction": 1,
      "abduction": 1,
      "induction": 1,
  }
  assert metrics["buffer/deduction"] == len(run.buffers[D]) == 2
  assert run.buffers[D].entries[1] == Triplet(GOOD["snippet"], "3, 4", "13")
  assert run.buffers[A].steps == (0, 0) and run.buffers[I].steps == (0,)
  assert len(lines) == 1 and "output_mismatch: lines 2" in lines[0]
  assert run.step == 0


def test_seed_from_dataset_then_seed_buffers_proposes_only_what_is_missing(tiny_run):
  run, _ = tiny_run
  run.seed_from_dataset(S.DEFAULT_SEED_DATASET)
  # batch 2 x factor 4 = 8 per buffer; the shipped file already holds more.
  metrics = run.seed_buffers()
  assert metrics["seed/rounds"] == 0 and metrics["seed/proposals"] == 0
  assert min(len(run.buffers[D]), len(run.buffers[A])) >= 8


def test_seed_from_dataset_raises_for_an_unusable_file(tiny_run, tmp_path):
  run, _ = tiny_run
  with pytest.raises(S.SeedDataError, match="no such file"):
    run.seed_from_dataset(str(tmp_path / "missing.jsonl"))
