"""Diversity and complexity of tasks, measured on model-written text without running it.

Programs are untrusted model output: they are only parsed (`ast.parse`), never compiled,
executed or evaluated, and every step is bounded (`MAX_PROGRAM_CHARS`, `MAX_AST_NODES`,
`MAX_AST_DEPTH`; the walks are iterative, and SyntaxError, ValueError, RecursionError and
MemoryError from the parser count as "not analysable"). Input and output literals go
through `sandbox.literals` (an AST walk with size caps, never `eval`).

Measures (docs/method.md, "Task diversity", gives the formulas):

* **Canonical program** (`analyse_program`): the AST with docstrings and other bare string
  statements dropped and every name the program binds (its functions, classes,
  parameters, assigned and loop variables, `as` names, exception names, match captures)
  renamed to `v0, v1, ...` in order of first appearance. Names it does not bind (builtins
  such as `len`, imported modules), attribute names and keyword-argument names stay. Two
  programs are the same program when their canonical ASTs are equal, so a copy with
  other names or other formatting or comments counts once. The renaming is one consistent
  map over the whole program, not per scope.
* **Program distance** (`program_distance`): the multiset Jaccard distance between the
  bigrams of the two programs' canonical pre-order token sequences (one token per AST
  node: its type, plus the canonical name, attribute or constant it holds):
  `d(A, B) = 1 - sum_g min(a_g, b_g) / sum_g max(a_g, b_g)`, `a_g` the count of bigram
  `g` in A. 0 for renamed copies, 1 for programs that share no bigram. Cheap (set
  operations on hashed bigrams) where a tree edit distance is quadratic or worse.
* **Complexity**: the AST node count (every node but the Load/Store/Del markers), and
  McCabe's cyclomatic complexity of the program as one routine: 1 + decision points
  (if/elif and conditional expressions, loops and their `else`, `except` handlers and
  `try`'s `else`, each extra `and`/`or` operand, each comprehension `for` and `if`,
  match cases but a final catch-all, `assert`). These are radon's rules
  (`radon.visitors.ComplexityVisitor`); radon scores each function on its own, so the
  numbers agree for a program whose decisions all lie in one function body.
* **Value types** (`value_type`, `argument_types`): the type of an output literal and of
  each argument of an input list, in the coarse vocabulary `VALUE_TYPES`.

`BufferIndex` keeps the canonical keys of every program in each buffer and the features
of the newest `NN_POOL` distinct ones, updated incrementally as the buffers grow, so a
step's novelty and nearest-neighbour distances cost O(batch x pool).
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import functools
import hashlib
from typing import Iterable, Sequence

from absolute_zero.sandbox import literals
from absolute_zero.tasks.buffers import TaskBuffers, normalize_program
from absolute_zero.tasks.types import InductionTask, TaskType, Triplet
from absolute_zero.sandbox.literals import parse_untrusted

# Bounds on what one program may cost to analyse (proposals are capped at 8,096 chars by
# the parser; these hold for anything else handed in). Over a bound: not analysable.
MAX_PROGRAM_CHARS = 20_000
MAX_AST_NODES = 10_000
MAX_AST_DEPTH = 120  # ast.dump (the canonical key) recurses once per level
# Nearest-neighbour distances compare against at most this many distinct programs per
# buffer (the newest), so a step's cost stays bounded however long the run.
NN_POOL = 1024
# Decision points at which the complexity score of the intrinsic reward saturates.
COMPLEXITY_SCALE = 10
VALUE_TYPES = ("int", "float", "bool", "str", "list", "tuple", "dict", "set", "none", "other")

_CONTEXTS = (ast.Load, ast.Store, ast.Del)
_MASK64 = (1 << 64) - 1


@dataclasses.dataclass(frozen=True)
class ProgramAnalysis:
  """What the diversity measures need of one program.

  Attributes:
    key: 16-byte digest of the canonical AST (equal keys: the same program).
    ast_nodes: AST node count (without Load/Store/Del markers), docstrings dropped.
    cyclomatic: McCabe cyclomatic complexity of the whole program (>= 1).
    features: the multiset of token bigrams as a set of 64-bit ints (the k-th copy of a
      bigram is its own item, so set intersection sizes are multiset ones).
  """

  key: bytes
  ast_nodes: int
  cyclomatic: int
  features: frozenset

  @property
  def complexity_score(self) -> float:
    """Decision points scaled to [0, 1]: min((cyclomatic - 1) / COMPLEXITY_SCALE, 1)."""
    return min((self.cyclomatic - 1) / COMPLEXITY_SCALE, 1.0)


# ------------------------------------------------------------------ programs


def _parse(source: str) -> ast.Module | None:
  if not isinstance(source, str) or len(source) > MAX_PROGRAM_CHARS:
    return None
  try:
    return parse_untrusted(source)
  except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
    return None


def _drop_bare_strings(tree: ast.AST) -> None:
  """Removes statements that are only a string constant (docstrings) from every body."""
  for node in ast.walk(tree):  # iterative
    for field in ("body", "orelse", "finalbody"):
      stmts = getattr(node, field, None)
      if isinstance(stmts, list) and stmts and isinstance(stmts[0], ast.stmt):
        kept = [
            s
            for s in stmts
            if not (
                isinstance(s, ast.Expr)
                and isinstance(s.value, ast.Constant)
                and isinstance(s.value.value, str)
            )
        ]
        if len(kept) != len(stmts):
          setattr(node, field, kept)


def _preorder(tree: ast.AST) -> list[tuple[ast.AST, int]] | None:
  """(node, depth) in pre-order without context markers; None past the size bounds."""
  out: list[tuple[ast.AST, int]] = []
  stack = [(tree, 0)]
  while stack:
    node, depth = stack.pop()
    if isinstance(node, _CONTEXTS):
      continue
    if depth > MAX_AST_DEPTH or len(out) >= MAX_AST_NODES:
      return None
    out.append((node, depth))
    children = list(ast.iter_child_nodes(node))
    stack.extend((child, depth + 1) for child in reversed(children))
  return out


def _bound_names(nodes: Iterable[ast.AST]) -> set[str]:
  """Names the program itself binds (renamed in the canonical form)."""
  bound: set[str] = set()
  for node in nodes:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
      bound.add(node.name)
    elif isinstance(node, ast.arg):
      bound.add(node.arg)
    elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
      bound.add(node.id)
    elif isinstance(node, ast.alias) and node.asname:
      bound.add(node.asname)
    elif isinstance(node, ast.ExceptHandler) and node.name:
      bound.add(node.name)
    elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
      bound.add(node.name)
    elif isinstance(node, ast.MatchMapping) and node.rest:
      bound.add(node.rest)
  return bound


def _rename(nodes: Sequence[ast.AST], bound: set[str]) -> None:
  """Renames bound names to v0, v1, ... in pre-order of first appearance, in place."""
  names: dict[str, str] = {}

  def canon(name):
    if name not in bound:
      return name
    if name not in names:
      names[name] = f"v{len(names)}"
    return names[name]

  for node in nodes:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
      node.name = canon(node.name)
    elif isinstance(node, ast.arg):
      node.arg = canon(node.arg)
    elif isinstance(node, ast.Name):
      node.id = canon(node.id)
    elif isinstance(node, ast.alias) and node.asname:
      node.asname = canon(node.asname)
    elif isinstance(node, ast.ExceptHandler) and node.name:
      node.name = canon(node.name)
    elif isinstance(node, (ast.Global, ast.Nonlocal)):
      node.names = [canon(n) for n in node.names]
    elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
      node.name = canon(node.name)
    elif isinstance(node, ast.MatchMapping) and node.rest:
      node.rest = canon(node.rest)


def _label(node: ast.AST) -> str:
  """The token of one node: its type, plus the (canonical) name or value it holds."""
  kind = type(node).__name__
  if isinstance(node, ast.Name):
    return f"{kind} {node.id}"
  if isinstance(node, ast.arg):
    return f"{kind} {node.arg}"
  if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
    return f"{kind} {node.name}"
  if isinstance(node, ast.Attribute):
    return f"{kind} .{node.attr}"
  if isinstance(node, ast.keyword):
    return f"{kind} {node.arg}="
  if isinstance(node, ast.alias):
    return f"{kind} {node.name} {node.asname or ''}".rstrip()
  if isinstance(node, ast.Constant):
    return f"{kind} {type(node.value).__name__} {repr(node.value)[:40]}"
  return kind


def _decisions(node: ast.AST) -> int:
  """Decision points of one node (radon's ComplexityVisitor rules)."""
  if isinstance(node, (ast.If, ast.IfExp, ast.Assert)):
    return 1
  if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
    return 1 + bool(node.orelse)
  if isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
    return len(node.handlers) + bool(node.orelse)
  if isinstance(node, ast.BoolOp):
    return len(node.values) - 1
  if isinstance(node, ast.comprehension):
    return 1 + len(node.ifs)
  if isinstance(node, ast.Match):
    catch_all = any(
        isinstance(c.pattern, ast.MatchAs) and c.pattern.pattern is None for c in node.cases
    )
    return max(0, len(node.cases) - catch_all)
  return 0


def _canonical_nodes(source: str) -> tuple[ast.Module, list[ast.AST]] | None:
  tree = _parse(source)
  if tree is None:
    return None
  _drop_bare_strings(tree)
  walked = _preorder(tree)
  if walked is None:
    return None
  nodes = [n for n, _ in walked]
  _rename(nodes, _bound_names(nodes))
  return tree, nodes


def canonical_tokens(source: str) -> list[str] | None:
  """The canonical pre-order token sequence of a program; None if not analysable.

  E.g. "def f(x):\\n    return x" -> ['Module', 'FunctionDef v0', 'arguments', 'arg v1',
  'Return', 'Name v1'].
  """
  parsed = _canonical_nodes(source)
  return None if parsed is None else [_label(n) for n in parsed[1]]


@functools.lru_cache(maxsize=1 << 16)
def _hash64(text: str) -> int:
  return int.from_bytes(
      hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=8).digest(), "little"
  )


def bigram_features(tokens: Sequence[str]) -> frozenset:
  """The bigram multiset of a token sequence as a set of ints (k-th copy: own item)."""
  seen: collections.Counter = collections.Counter()
  items = set()
  for a, b in zip(tokens, tokens[1:]):
    bigram = f"{a}\x00{b}"
    k = seen[bigram]
    seen[bigram] += 1
    items.add((_hash64(bigram) + k * 0x9E3779B97F4A7C15) & _MASK64)
  return frozenset(items)


def analyse_program(source: str) -> ProgramAnalysis | None:
  """Canonical key, node count, cyclomatic complexity and distance features; None when
  the program does not parse or exceeds MAX_PROGRAM_CHARS, MAX_AST_NODES or MAX_AST_DEPTH.
  Never raises on any string."""
  parsed = _canonical_nodes(source)
  if parsed is None:
    return None
  tree, nodes = parsed
  try:
    dump = ast.dump(tree)  # depth is bounded by MAX_AST_DEPTH
  except (RecursionError, MemoryError):
    return None
  key = hashlib.blake2b(dump.encode("utf-8", "replace"), digest_size=16).digest()
  cyclomatic = 1 + sum(_decisions(n) for n in nodes)
  return ProgramAnalysis(
      key=key,
      ast_nodes=len(nodes),
      cyclomatic=cyclomatic,
      features=bigram_features([_label(n) for n in nodes]),
  )


def fallback_key(source: str) -> bytes:
  """The key of a program that cannot be analysed: its text as the buffers compare it."""
  return (
      b"text:"
      + hashlib.blake2b(
          normalize_program(str(source)).encode("utf-8", "replace"), digest_size=16
      ).digest()
  )


def program_key(source: str) -> bytes:
  """`analyse_program(source).key`, or `fallback_key` when it cannot be analysed."""
  analysis = analyse_program(source)
  return fallback_key(source) if analysis is None else analysis.key


def feature_distance(a: frozenset, b: frozenset) -> float:
  """Multiset Jaccard distance of two feature sets: 1 - |a & b| / |a | b| (0 if both empty)."""
  if not a and not b:
    return 0.0
  common = len(a & b)
  return 1.0 - common / (len(a) + len(b) - common)


def program_distance(first: str, second: str) -> float | None:
  """Distance of two programs' canonical token bigrams (module docstring); None if either
  cannot be analysed."""
  a, b = analyse_program(first), analyse_program(second)
  if a is None or b is None:
    return None
  return feature_distance(a.features, b.features)


def nearest_distance(features: frozenset, pool: Iterable[frozenset]) -> float:
  """Smallest `feature_distance` from `features` to any member of `pool`; 1.0 for an
  empty pool. Exact: a candidate is skipped only when its size alone bounds its
  similarity below the best so far (|a & b| / |a | b| <= min(|a|,|b|) / max(|a|,|b|))."""
  best = 0.0  # similarity 1 - distance
  n = len(features)
  for other in pool:
    m = len(other)
    if max(n, m) and min(n, m) <= best * max(n, m):
      continue
    similarity = 1.0 - feature_distance(features, other)
    if similarity > best:
      best = similarity
      if best >= 1.0:
        break
  return 1.0 - best


# ------------------------------------------------------------------ literals and messages


def _type_name(value) -> str:
  if value is None:
    return "none"
  t = type(value)
  if t is bool:
    return "bool"
  if t in (set, frozenset):
    return "set"
  name = t.__name__
  return name if name in VALUE_TYPES else "other"


def value_type(text: str) -> str:
  """The `VALUE_TYPES` name of an output literal ('other' when it is not a literal)."""
  try:
    return _type_name(literals.parse_literal(text))
  except literals.LiteralError:
    return "other"


def argument_types(text: str) -> list[str]:
  """The `VALUE_TYPES` name of each argument of an input argument list, positional then
  keyword (['other'] when the text is not an argument list of literals)."""
  try:
    args, kwargs = literals.parse_arguments(text)
  except literals.LiteralError:
    return ["other"]
  return [_type_name(v) for v in (*args, *kwargs.values())]


def normalize_message(message: str) -> str:
  """An induction message as compared for distinctness: whitespace runs collapsed,
  case folded."""
  return " ".join(str(message).split()).casefold()


def type_shares(names: Sequence[str]) -> dict[str, float]:
  """{type: share of `names`} over all of VALUE_TYPES (zeros included); {} if empty."""
  if not names:
    return {}
  counts = collections.Counter(names)
  return {t: counts[t] / len(names) for t in VALUE_TYPES}


def task_io(task: Triplet | InductionTask) -> tuple[list[str], list[str]]:
  """(argument types, output types) of a triplet or of all pairs of an induction task."""
  if isinstance(task, Triplet):
    return argument_types(task.input), [value_type(task.output)]
  pairs = task.shown + task.held_out
  return (
      [t for p in pairs for t in argument_types(p.input)],
      [value_type(p.output) for p in pairs],
  )


# ------------------------------------------------------------------ buffers


class _TypeIndex:
  """Keys of all programs of one buffer, features of the newest NN_POOL distinct ones."""

  def __init__(self):
    self.keys: set[bytes] = set()
    self.pool: collections.OrderedDict[bytes, frozenset] = collections.OrderedDict()
    self.seen = 0  # buffer entries processed
    self.last = None  # the last entry processed (identity: detects a reloaded buffer)

  def add(self, program: str) -> None:
    analysis = analyse_program(program)
    key = fallback_key(program) if analysis is None else analysis.key
    if key in self.keys:
      return
    self.keys.add(key)
    if analysis is not None:
      self.pool[key] = analysis.features
      if len(self.pool) > NN_POOL:
        self.pool.popitem(last=False)


class BufferIndex:
  """Canonical program keys of the task buffers, kept in step with them.

  `sync(buffers)` analyses the entries added since the last call (the buffers only
  grow); a buffer that was replaced (a restored checkpoint) is re-read whole. Programs
  repeat across entries (one program, many inputs); each distinct one is analysed once.
  """

  def __init__(self):
    self._types = {t: _TypeIndex() for t in TaskType}

  def sync(self, buffers: TaskBuffers) -> None:
    for task_type, index in self._types.items():
      entries = buffers[task_type].entries
      if index.seen and (len(entries) < index.seen or entries[index.seen - 1] is not index.last):
        index = self._types[task_type] = _TypeIndex()
      for entry in entries[index.seen :]:
        index.add(entry.program)
      index.seen = len(entries)
      index.last = entries[-1] if entries else None

  def distinct_programs(self, task_type: TaskType) -> int:
    """Distinct canonical programs in that buffer (as of the last sync)."""
    return len(self._types[task_type].keys)

  def contains(self, task_type: TaskType, key: bytes) -> bool:
    return key in self._types[task_type].keys

  def nearest_distance(self, task_type: TaskType, features: frozenset) -> float:
    """`nearest_distance` to that buffer's pool (1.0 when it holds no program)."""
    return nearest_distance(features, self._types[task_type].pool.values())
