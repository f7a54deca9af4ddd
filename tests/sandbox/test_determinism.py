"""Determinism is judged on values, not on repr text (issue 16, class 2).

A set, frozenset or dict built in hash order prints differently under two string-hash
seeds but is the same value: valid. Anything whose value follows the order (a list or
string made from a set, a dict whose last write wins, hash(), id()) is not. Matrix: those
builders x the containers they are nested in; each case also checks that the two runs
really printed different texts, so the test cannot pass by seeds that happen to agree.
"""

import pytest

from absolute_zero.sandbox import Job
from absolute_zero.sandbox.literals import same_literal
from absolute_zero.tasks.validators import validate_proposals

WORDS = [f"{c}{w}" for c in "abcdef" for w in ("ox", "ant", "elk", "yak", "emu")]  # 30
INPUT = repr(WORDS)
ISSUE_WORDS = repr(
    [
        "apple",
        "banana",
        "cherry",
        "date",
        "elder",
        "fig",
        "grape",
        "honeydew",
        "kiwi",
        "lemon",
        "mango",
        "nectarine",
    ]
)

SAME_VALUE = {  # built in hash order, same value in every run
    "set": "set(words)",
    "frozenset": "frozenset(words)",
    "set_comprehension": "{w.upper() for w in words}",
    "dict_hash_order": "{w: len(w) for w in set(words)}",
    "dict_fromkeys": "dict.fromkeys(frozenset(words), 0)",
    "set_of_frozensets": "{frozenset(words[i:i + 3]) for i in range(0, len(words), 3)}",
    "dict_of_sets": "{c: {w for w in set(words) if w[0] == c} for c in set('abc')}",
}
ORDER_DEPENDENT = {  # their value follows the hash order (or the address layout)
    "list_of_set": "list(set(words))",
    "tuple_of_frozenset": "tuple(frozenset(words))",
    "keys_of_hash_order_dict": "list({w: len(w) for w in set(words)})",
    "joined_set": "''.join(set(words))",
    "str_of_set": "str(set(words))",
    "last_write_wins": "{w[0]: w for w in set(words)}",
    "hashes": "[hash(w) % 1000 for w in words]",
    "ids": "id(words) % 1000003",
}
NESTINGS = ("X", "(X, 1)", "[X, X]", "{'k': X}", "[(0, X)]", "{'a': [X], 'b': (X,)}", "((X,),)")


def _program(builder: str, nesting: str) -> str:
  return f"def f(words):\n    return {nesting.replace('X', builder)}\n"


CASES = [(name, n, True) for name in SAME_VALUE for n in NESTINGS] + [
    (name, n, False) for name in ORDER_DEPENDENT for n in NESTINGS
]


def _builder(name):
  return SAME_VALUE.get(name) or ORDER_DEPENDENT[name]


@pytest.fixture(scope="module")
def runs(pool):
  programs = [_program(_builder(name), n) for name, n, _ in CASES]
  seeds = pool.run_batch([Job("def f():\n    return hash('abc')\n", "f()", v) for v in (0, 1)])
  raw = pool.run_batch([Job(p, f"f({INPUT})", v) for p in programs for v in (0, 1)])
  verdicts = validate_proposals(pool, [(p, INPUT) for p in programs])
  return seeds, raw, verdicts


def test_the_two_variants_use_different_hash_seeds(runs):
  seeds, _, _ = runs
  assert all(r.status == "ok" for r in seeds), seeds
  assert seeds[0].output != seeds[1].output


def test_values_are_compared_not_texts(runs):
  _, raw, verdicts = runs
  wrong = []
  for i, ((name, nesting, same), verdict) in enumerate(zip(CASES, verdicts)):
    first, second = raw[2 * i], raw[2 * i + 1]
    assert first.status == second.status == "ok", (name, nesting, first, second)
    # The texts differ between seeds, so a text comparison would reject every case.
    assert first.output != second.output, (name, nesting, first.output)
    expected = ("ok", True) if same else ("nondeterministic", False)
    if (verdict.status, verdict.valid) != expected:
      wrong.append((name, nesting, verdict))
    if same and verdict.valid and verdict.output not in (first.output, second.output):
      wrong.append((name, nesting, "output is not a run's repr", verdict.output))
  assert not wrong, (f"{len(wrong)} of {len(CASES)}", wrong[:5])


def test_issue_example_set_of_twelve_words(pool):
  program = "def f(words):\n    return set(words)\n"
  texts = [r.output for r in pool.run_batch([Job(program, f"f({ISSUE_WORDS})", v) for v in (0, 1)])]
  assert texts[0] != texts[1]
  verdict = validate_proposals(pool, [(program, ISSUE_WORDS)])[0]
  assert verdict.valid and verdict.output in texts, verdict
  assert eval(verdict.output) == set(eval(ISSUE_WORDS))  # our own literal text


@pytest.mark.parametrize(
    "first,second,same",
    [
        ("{'a', 'b'}", "{'b', 'a'}", True),
        ("frozenset({1, 2})", "frozenset({2, 1})", True),
        ("{'a': 1, 'b': {2, 3}}", "{'b': {3, 2}, 'a': 1}", True),
        ("({'x', 'y'}, [1])", "({'y', 'x'}, [1])", True),
        ("nan", "nan", True),
        ("[nan]", "[nan]", True),
        ("<object object at 0x1>", "<object object at 0x1>", True),
        ("[1, 2]", "[2, 1]", False),
        ("('a', 'b')", "('b', 'a')", False),
        ("'ab'", "'ba'", False),
        ("1", "1.0", False),
        ("{1: 'a'}", "{True: 'a'}", False),
        ("{1}", "{1.0}", False),
        ("0.0", "-0.0", False),
        ("{'a': [1, 2]}", "{'a': [2, 1]}", False),
        ("<object object at 0x1>", "<object object at 0x2>", False),
        ("[1]", None, False),
    ],
)
def test_same_literal(first, second, same):
  assert same_literal(first, second) is same
  if second is not None:
    assert same_literal(second, first) is same


def test_matrix_size():
  assert len(CASES) == (len(SAME_VALUE) + len(ORDER_DEPENDENT)) * len(NESTINGS) == 105
