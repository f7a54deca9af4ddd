"""Program diversity and complexity measures against values computed by hand.

Every expected number below was worked out on paper from the definitions in
absolute_zero/tasks/diversity.py (token sequences written out, bigrams counted), not by
calling the code under test.
"""

from __future__ import annotations

import pytest

from absolute_zero.tasks import diversity as div
from absolute_zero.tasks.buffers import TaskBuffers
from absolute_zero.tasks.types import TaskType, Triplet, ZERO_TRIPLET

IDENTITY = "def f(x):\n    return x"
PLUS_ONE = "def f(y):\n    return y + 1"
BRANCH = "def f(x):\n    if x:\n        return 1\n    return 0"


# ------------------------------------------------------------------ canonical programs


def test_canonical_tokens_by_hand():
  assert div.canonical_tokens(IDENTITY) == [
      "Module",
      "FunctionDef v0",
      "arguments",
      "arg v1",
      "Return",
      "Name v1",
  ]
  assert div.canonical_tokens(PLUS_ONE) == [
      "Module",
      "FunctionDef v0",
      "arguments",
      "arg v1",
      "Return",
      "BinOp",
      "Name v1",
      "Add",
      "Constant int 1",
  ]
  assert div.canonical_tokens(BRANCH) == [
      "Module",
      "FunctionDef v0",
      "arguments",
      "arg v1",
      "If",
      "Name v1",
      "Return",
      "Constant int 1",
      "Return",
      "Constant int 0",
  ]


RENAMED_COPIES = [
    # Other names, formatting, comments and a docstring: one program.
    (IDENTITY, 'def f(value):\n    """Identity."""\n    # keep it\n    return (value)\n'),
    (
        "def f(xs):\n    out = []\n    for x in xs:\n        out.append(x * 2)\n    return out",
        "def f(items):\n    res=[]\n    for it in items:\n        res.append(it*2)\n    return res",
    ),
    (
        "def f(s):\n    def g(c):\n        return c.upper()\n    return ''.join(g(c) for c in s)",
        "def f(t):\n    def h(ch):\n        return ch.upper()\n    return ''.join(h(ch) for ch in t)",
    ),
    (
        "def f(a, b=2):\n    try:\n        return a // b\n    except ZeroDivisionError as e:\n"
        "        return str(e)",
        "def f(p, q=2):\n    try:\n        return p // q\n    except ZeroDivisionError as err:\n"
        "        return str(err)",
    ),
    (
        "def f(d):\n    return sorted(d, key=lambda k: d[k])",
        "def f(m):\n    return sorted(m, key=lambda z: m[z])",
    ),
]

DIFFERENT = [
    ("def f(a, b):\n    return a - b", "def f(a, b):\n    return b - a"),  # order
    ("def f(x):\n    return x + 1", "def f(x):\n    return x + 2"),  # a constant
    ("def f(x):\n    return len(x)", "def f(x):\n    return sum(x)"),  # builtins keep names
    ("def f(x):\n    return x.upper()", "def f(x):\n    return x.lower()"),  # attributes
    (IDENTITY, PLUS_ONE),
]


@pytest.mark.parametrize("first,second", RENAMED_COPIES)
def test_renamed_copies_are_one_program(first, second):
  assert first != second
  a, b = div.analyse_program(first), div.analyse_program(second)
  assert a.key == b.key
  assert div.program_distance(first, second) == 0.0
  assert (a.ast_nodes, a.cyclomatic) == (b.ast_nodes, b.cyclomatic)


@pytest.mark.parametrize("first,second", DIFFERENT)
def test_different_programs_are_different(first, second):
  assert div.program_key(first) != div.program_key(second)


def test_program_distance_by_hand():
  # IDENTITY's 5 bigrams: (Module, FunctionDef v0), (FunctionDef v0, arguments),
  # (arguments, arg v1), (arg v1, Return), (Return, Name v1).
  # PLUS_ONE's 8 share the first four; union 5 + 8 - 4 = 9.
  assert div.program_distance(IDENTITY, PLUS_ONE) == pytest.approx(1 - 4 / 9)
  # BRANCH's 9 bigrams share the first three with IDENTITY; union 5 + 9 - 3 = 11.
  assert div.program_distance(IDENTITY, BRANCH) == pytest.approx(1 - 3 / 11)
  # PLUS_ONE vs BRANCH: the first three again (arg v1 is followed by Return vs If);
  # union 8 + 9 - 3 = 14.
  assert div.program_distance(PLUS_ONE, BRANCH) == pytest.approx(1 - 3 / 14)
  assert div.program_distance(IDENTITY, "def f(:") is None


def test_multiset_counts_repeated_bigrams():
  # 'return 1' twice vs once: bigrams of the second are a sub-multiset of the first.
  once = "def f(x):\n    return 1"
  twice = "def f(x):\n    if x:\n        return 1\n    return 1"
  # once: M-F, F-args, args-arg, arg-Return, Return-C1 (5).
  # twice: M-F, F-args, args-arg, arg-If, If-Name, Name-Return, Return-C1, C1-Return,
  # Return-C1 (9, Return-C1 twice). Common: 4 (Return-C1 once); union 5 + 9 - 4 = 10.
  assert div.program_distance(once, twice) == pytest.approx(1 - 4 / 10)
  f = div.bigram_features(["a", "b", "a", "b"])  # a-b twice, b-a once
  assert len(f) == 3
  assert div.feature_distance(f, div.bigram_features(["a", "b"])) == pytest.approx(1 - 1 / 3)
  assert div.feature_distance(frozenset(), frozenset()) == 0.0


def test_ast_node_count_and_cyclomatic_by_hand():
  a = div.analyse_program(IDENTITY)
  # Module, FunctionDef, arguments, arg, Return, Name (Load markers not counted).
  assert (a.ast_nodes, a.cyclomatic, a.complexity_score) == (6, 1, 0.0)
  b = div.analyse_program(BRANCH)
  assert (b.ast_nodes, b.cyclomatic) == (10, 2)
  assert b.complexity_score == pytest.approx(0.1)
  program = "\n".join(
      [
          "def f(xs, t):",
          "    total = 0",
          "    for x in xs:",  # +1
          "        if x > t and x % 2 == 0:",  # +1 (if) +1 (and)
          "            total += x",
          "        elif x < 0 or x == t:",  # +1 (elif) +1 (or)
          "            total -= 1",
          "    try:",
          "        y = [a for a in xs if a if a > 1]",  # +1 (for) +2 (ifs)
          "    except ValueError:",  # +1
          "        pass",
          "    except TypeError:",  # +1
          "        pass",
          "    else:",  # +1
          "        pass",
          "    while total > 100:",  # +1
          "        total //= 2",
          "    else:",  # +1
          "        total += 1",
          "    assert total is not None",  # +1
          "    match t:",
          "        case 1:",  # +1
          "            pass",
          "        case [a, *rest]:",  # +1
          "            pass",
          "        case _:",  # catch-all: +0
          "            pass",
          "    return total if total else -1",  # +1
      ]
  )
  assert div.analyse_program(program).cyclomatic == 1 + 17
  assert div.analyse_program(program).complexity_score == 1.0  # 17 decisions >= 10


def test_hostile_programs_are_not_analysed_and_never_raise():
  hostile = [
      "def f(:",  # syntax error
      "x = 1\x00",  # null byte: ValueError from the parser
      "x = " + "-" * 100_000 + "1",  # the parser's own recursion guard (MemoryError)
      "x = " + "[" * 150 + "]" * 150,  # parses, deeper than MAX_AST_DEPTH
      "x = " + "-" * 200 + "1",  # deeper than MAX_AST_DEPTH
      "x = 1\n" * (div.MAX_PROGRAM_CHARS // 6 + 1),  # longer than MAX_PROGRAM_CHARS
      "x = [" + "-1," * 4_000 + "]",  # more nodes than MAX_AST_NODES, under the char cap
      None,
  ]
  assert len(hostile[5]) > div.MAX_PROGRAM_CHARS and len(hostile[6]) < div.MAX_PROGRAM_CHARS
  for source in hostile:
    assert div.analyse_program(source) is None
    assert div.canonical_tokens(source) is None
  # Unanalysable programs still have a key: their text as the buffers compare it.
  assert div.program_key("def f(:") == div.program_key("def f(:  \n\n")
  assert div.program_key("def f(:") != div.program_key("def g(:")


def test_nearest_distance_skips_by_size_without_changing_the_answer():
  pool = [div.analyse_program(p).features for p in (PLUS_ONE, BRANCH)]
  target = div.analyse_program(IDENTITY).features
  assert div.nearest_distance(target, pool) == pytest.approx(1 - 4 / 9)
  assert div.nearest_distance(target, []) == 1.0
  assert div.nearest_distance(target, pool + [target]) == 0.0


# ------------------------------------------------------------------ literals, messages


def test_value_types():
  assert div.argument_types("[1, 2], 'ab', k={1: 2}") == ["list", "str", "dict"]
  assert div.argument_types("True, None, 1.5, (1,), {1}, frozenset({2})") == [
      "bool",
      "none",
      "float",
      "tuple",
      "set",
      "set",
  ]
  assert div.argument_types("1j, b'x'") == ["other", "other"]
  assert div.argument_types("__import__('os')") == ["other"]  # never evaluated
  assert div.value_type("<object at 0x1>") == "other"
  assert div.value_type("-3") == "int"
  assert div.value_type("[" * 500 + "]" * 500) == "other"  # too deep: not a literal
  assert div.type_shares(["int", "int", "str", "other"]) == {
      **{t: 0.0 for t in div.VALUE_TYPES},
      "int": 0.5,
      "str": 0.25,
      "other": 0.25,
  }
  assert div.type_shares([]) == {}


def test_messages_compare_after_whitespace_and_case():
  assert div.normalize_message("  Reverse\tthe  STRING\n") == "reverse the string"


# ------------------------------------------------------------------ buffer index


def _buffers(*programs) -> TaskBuffers:
  buffers = TaskBuffers.seeded()
  buffers[TaskType.DEDUCTION].add([Triplet(p, str(i), "0") for i, p in enumerate(programs)], step=1)
  return buffers


def test_buffer_index_counts_distinct_programs_incrementally():
  buffers = _buffers("def f(value):\n    return value", PLUS_ONE)
  index = div.BufferIndex()
  index.sync(buffers)
  # ZERO_TRIPLET and its renamed copy are one program; PLUS_ONE is another.
  assert index.distinct_programs(TaskType.DEDUCTION) == 2
  assert index.distinct_programs(TaskType.ABDUCTION) == 1
  assert index.distinct_programs(TaskType.INDUCTION) == 0
  assert index.contains(TaskType.DEDUCTION, div.program_key(IDENTITY))
  buffers[TaskType.DEDUCTION].add([Triplet(BRANCH, "1", "1"), Triplet(PLUS_ONE, "7", "8")], step=2)
  index.sync(buffers)
  assert index.distinct_programs(TaskType.DEDUCTION) == 3
  target = div.analyse_program(IDENTITY).features
  assert index.nearest_distance(TaskType.DEDUCTION, target) == 0.0
  assert index.nearest_distance(TaskType.INDUCTION, target) == 1.0  # empty buffer


def test_buffer_index_rereads_a_replaced_buffer():
  index = div.BufferIndex()
  index.sync(_buffers(PLUS_ONE, BRANCH))
  assert index.distinct_programs(TaskType.DEDUCTION) == 3
  other = _buffers()  # a restored checkpoint: other entries, fewer of them
  index.sync(other)
  assert index.distinct_programs(TaskType.DEDUCTION) == 1
  same_size = _buffers("def f(q):\n    return q * q", "def f(q):\n    return -q")
  index.sync(_buffers(PLUS_ONE, BRANCH))
  index.sync(same_size)  # same length, different entries
  assert not index.contains(TaskType.DEDUCTION, div.program_key(PLUS_ONE))
  assert index.distinct_programs(TaskType.DEDUCTION) == 3


def test_buffer_index_pool_keeps_the_newest(monkeypatch):
  monkeypatch.setattr(div, "NN_POOL", 2)
  index = div.BufferIndex()
  index.sync(_buffers(PLUS_ONE, BRANCH))  # IDENTITY (the zero triplet) is the oldest
  target = div.analyse_program(IDENTITY).features
  assert index.distinct_programs(TaskType.DEDUCTION) == 3  # keys are all kept
  assert index.nearest_distance(TaskType.DEDUCTION, target) == pytest.approx(1 - 4 / 9)
  assert index.contains(TaskType.DEDUCTION, div.program_key(ZERO_TRIPLET.program))
