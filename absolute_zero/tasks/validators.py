"""What makes a proposal valid (docs/method.md, "Validating a proposal"), in one place.

The method's rules, applied to whole batches with one sandbox call each (the sandbox,
``absolute_zero.sandbox``, only runs untrusted Python; the rules live here):

* static check (``check_program``): size, syntax, the banned modules and names (the
  reference list ``REFERENCE_BANNED`` plus ``DYNAMIC_ACCESS_NAMES``, resolved by scope)
  and escape attributes, and one top-level function ``f``. The parser
  (``parsers.parse_program``) has already checked a model's program for form (it decides
  the format reward); this check applies to any program, parsed or not;
* inputs are literals (``check_input_expression`` admits a checked expression where a
  benchmark needs one);
* run twice (``validate_proposals``): two interpreters with different string-hash seeds
  and address layouts must return the same value; the output is kept as its ``repr``;
* assembly (``validate_triplet_proposals``, ``validate_induction_proposals``): a parsed
  proposal becomes a triplet or an induction task, or a rejection with its reason: the
  parse failure kind, or the status (``error``, ``timeout``, ``memory``, ``banned``,
  ``nondeterministic``, ``output_too_large``) and its reason.

Verdicts are computed here, in the owner, on plain data: outputs are ``repr`` strings
produced in the child and parsed as literals without executing code; expected values
never enter the sandbox. Outputs are compared as values (``literals.same_literal``), as
text only when they are not literals.

Induction: the ``N`` proposed inputs run through the buffer program. Inputs that fail
are dropped (recorded in ``dropped``), repeated inputs are dropped, and the proposal is
valid if at least ``min_pairs`` remain; the first half (``len // 2``) is shown to the
solver and the rest is held out, as in the reference. The reference instead rejects the
whole proposal if any input fails: ``require_all_inputs=True``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence, Union

from absolute_zero.sandbox import names
from absolute_zero.sandbox.job_types import Job, JobResult
from absolute_zero.sandbox.literals import LiteralError, canonical_call, parse_untrusted, same_literal
from absolute_zero.sandbox.pool import SandboxPool
from absolute_zero.tasks.parsers import ParsedInductionProposal, ParsedTripletProposal, ParseFailure
from absolute_zero.tasks.types import InductionTask, IOPair, Triplet

# The reference list (docs/method.md, "Validating a proposal"), matched on full dotted names: `import os` is
# fine, but `from os import path`, `import os.path` and `os.path.join(...)` all hit `os.path`.
BANNED_MODULES = (
    "logging",
    "random",
    "multiprocessing",
    "pebble",
    "subprocess",
    "threading",
    "datetime",
    "time",
    "hashlib",
    "hmac",
    "bcrypt",
    "calendar",
)
BANNED_NAMES = ("os.sys", "os.path", "sys.exit", "os.environ")
REFERENCE_BANNED = BANNED_MODULES + BANNED_NAMES

# Beyond the reference: the ways to reach a banned module or run code that the static check
# cannot see (`__import__('ran' + 'dom')`, `exec(...)`, `getattr(builtins, ...)`, frame and
# subclass walking). A proposal using them is rejected as banned.
DYNAMIC_ACCESS_NAMES = (
    "__import__",
    "exec",
    "eval",
    "compile",
    "globals",
    "locals",
    "vars",
    "breakpoint",
    "__builtins__",
    "__loader__",
    "__spec__",
    "importlib",
    "builtins",
    "ctypes",
    "gc",
    "inspect",
    "sys.modules",
    "sys._getframe",
    "os.system",
    "os.fork",
    "os.kill",
    "os.popen",
    "os.exec",
    "signal",
    "socket",
    "_thread",
    "concurrent",
    "asyncio",
)
ESCAPE_ATTRIBUTES = frozenset(
    {
        "__subclasses__",
        "__globals__",
        "__builtins__",
        "__code__",
        "__closure__",
        "__bases__",
        "__base__",
        "__mro__",
        "__import__",
        "__loader__",
        "__spec__",
        "__reduce__",
        "__reduce_ex__",
        "__getattribute__",
        "f_globals",
        "f_locals",
        "f_back",
        "f_builtins",
        "gi_frame",
        "ag_frame",
        "cr_frame",
        "tb_frame",
        "tb_next",
        "co_code",
    }
)
_ATTRIBUTE_FUNCTIONS = frozenset({"getattr", "setattr", "delattr", "hasattr"})
# Rebinding the module's builtins changes what every later function sees: never allowed.
_NAMES_BANNED_IN_ANY_SCOPE = frozenset({"__builtins__"})

MAX_PROGRAM_CHARS = 8096  # reference: content of 5,600-8,096 characters
MAX_INPUT_CHARS = 8096
MAX_OUTPUT_CHARS = 8096


@dataclass(frozen=True)
class Validation:
  """Verdict on one proposed (program, input): valid triplets get `output`."""

  valid: bool
  status: str  # 'ok' or the JobResult status that rejected it ('banned', ...)
  output: str | None  # repr of f(*inputs) when valid
  reason: str  # empty when valid


# ----------------------------------------------------------------------------- static check


def _prefixes(name: str) -> Iterable[str]:
  parts = name.split(".")
  return (".".join(parts[:i]) for i in range(1, len(parts) + 1))


def _hits(name: str, banned: frozenset[str]) -> str | None:
  """The banned entry that `name` is or lies under (`os.path.join` -> `os.path`)."""
  for prefix in _prefixes(name):
    if prefix in banned:
      return prefix
  # `os.exec` bans the family `os.execv`, `os.execl`, ...
  for entry in banned:
    if entry.startswith("os.exec") and name.startswith("os.exec"):
      return entry
  return None


def find_banned(
    tree: ast.AST, banned: Sequence[str], *, program: names.Program | None = None
) -> str | None:
  """First banned module or dotted name the program imports or reaches, else None.

  Imports are checked on their full dotted names; every other name, attribute chain,
  constant-string `getattr`, namespace subscript (`m.__dict__['x']`, `vars(m)['x']`,
  `globals()['x']`) and `__import__('m')` is checked on what it *resolves to* by scope
  (see `names.Program`): a parameter or local called `time` is not the module, while
  `from os import *` makes a global `environ` mean `os.environ`. A free name that the
  program never binds and that is not a builtin reaches nothing (NameError at run time),
  as in the reference check, which reads imports only.

  A module with banned entries under it (`os`, `sys`, the builtins module reached as
  `len.__self__`) may only be used where the resolver follows it: `m.attr`,
  `getattr(m, 'attr')`, `m.__dict__['attr']`, `vars(m)['attr']`, or bound to a name
  (`o = m`, a parameter default). Passed, stored or returned anywhere else
  (`[os][0].path`, `g(os)`) it is rejected as `<m> as a value`.

  Raises RecursionError on pathologically nested trees.
  """
  banned_set = frozenset(banned)
  program = program or names.Program(tree)
  for node in ast.walk(tree):
    for path in _paths_reached(node, program):
      hit = _hits(path, banned_set)
      if hit:
        return hit
  return _module_as_value(tree, program, banned_set)


def _module_as_value(tree: ast.AST, program: names.Program, banned: frozenset[str]) -> str | None:
  parents = {
      id(child): parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)
  }
  for node in ast.walk(tree):
    if not isinstance(node, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)):
      continue
    if isinstance(node, (ast.Name, ast.Attribute)) and not isinstance(node.ctx, ast.Load):
      continue
    holders = [p for p in program.resolve(node) if _holds_banned(p, banned)]
    if holders and not _followed_use(node, parents, program):
      shown = sorted(holders)[0].replace(names.BUILTINS_ROUTE, "builtins module")
      return f"{shown} as a value"
  return None


def _holds_banned(path: str, banned: frozenset[str]) -> bool:
  """Whether a banned entry lies under the module `path` (`os` holds `os.path`)."""
  if path == names.BUILTINS_ROUTE:
    return any(names.is_builtin_name(entry) for entry in banned)
  return any(entry.startswith(path + ".") for entry in banned)


def _followed_use(node: ast.AST, parents: dict[int, ast.AST], program: names.Program) -> bool:
  """Whether `node` sits where `names.Program` follows the value it holds."""
  parent = parents.get(id(node))
  if isinstance(parent, ast.Attribute) or isinstance(parent, ast.Expr):
    return True
  if isinstance(parent, ast.Assign):
    return parent.value is node and all(isinstance(t, ast.Name) for t in parent.targets)
  if isinstance(parent, (ast.AnnAssign, ast.NamedExpr)):
    return parent.value is node and isinstance(parent.target, ast.Name)
  if isinstance(parent, ast.arguments):
    return True  # a parameter default: the parameter is followed
  if isinstance(parent, (ast.Tuple, ast.List)):
    outer = parents.get(id(parent))
    return (
        isinstance(outer, ast.Assign)
        and outer.value is parent
        and all(
            isinstance(t, (ast.Tuple, ast.List))
            and len(t.elts) == len(parent.elts)
            and all(isinstance(e, ast.Name) for e in t.elts)
            for t in outer.targets
        )
    )
  if isinstance(parent, ast.Call) and parent.args and parent.args[0] is node:
    func = program.resolve(parent.func)
    if func & _ATTRIBUTE_FUNCTIONS and len(parent.args) >= 2:
      return isinstance(parent.args[1], ast.Constant)
    if "vars" in func and len(parent.args) == 1:
      outer = parents.get(id(parent))
      return isinstance(outer, ast.Subscript) and isinstance(outer.slice, ast.Constant)
  return False


def _paths_reached(node: ast.AST, program: names.Program) -> Iterable[str]:
  if isinstance(node, ast.Import):
    return [alias.name for alias in node.names]
  if isinstance(node, ast.ImportFrom):
    module = "." * node.level + (node.module or "")
    paths = [module] if node.module else []
    return paths + [f"{module}.{a.name}" if module else a.name for a in node.names if a.name != "*"]
  if isinstance(node, ast.Name):
    if node.id in _NAMES_BANNED_IN_ANY_SCOPE:
      return [node.id]
    return program.resolve(node) if isinstance(node.ctx, ast.Load) else ()
  if isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
    return program.resolve(node)
  return ()


def check_program(
    source: str,
    banned: Sequence[str] = REFERENCE_BANNED + DYNAMIC_ACCESS_NAMES,
    *,
    max_chars: int = MAX_PROGRAM_CHARS,
    block_escapes: bool = True,
    reject_multiple_functions: bool = True,
) -> str | None:
  """Static validity of a proposed program: None if OK, else the reason.

  Checks size, syntax (with the reference's text fallback for banned words when it does
  not parse), banned modules and names on the AST resolved by scope (`find_banned`),
  escape attributes, and that the program defines exactly one top-level function, named
  `f`. Never raises.
  """
  if not isinstance(source, str):
    return f"program must be str, got {type(source).__name__}"
  if len(source) > max_chars:
    return f"program longer than {max_chars} characters"
  try:
    tree = parse_untrusted(source)
  except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
    for entry in banned:
      if re.search(rf"\b{re.escape(entry)}\b", source):
        return f"banned: {entry}"
    return f"syntax error: {exc}"
  try:
    program = names.Program(tree)
    hit = find_banned(tree, banned, program=program)
    if hit is None and block_escapes:
      hit = _find_escape(tree, program)
  except RecursionError:
    return "program nested too deeply"
  if hit:
    return f"banned: {hit}"
  functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
  if not any(n.name == "f" and isinstance(n, ast.FunctionDef) for n in functions):
    return "no top-level function f"
  if reject_multiple_functions and len(functions) > 1:
    return "more than one top-level function"
  return None


def _find_escape(tree: ast.AST, program: names.Program | None = None) -> str | None:
  """Attribute access that walks to frames, globals or other modules: an escape
  attribute, a builtin `getattr`-family call with a computed name or such a function
  passed as a value (`reduce(getattr, names, x)`), or a module's `__dict__` used other
  than as `m.__dict__['constant']`."""
  program = program or names.Program(tree)
  constant_reads, called = set(), set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Call):
      called.add(id(node.func))
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
      constant_reads.add(id(node.value))
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ):
      constant_reads.add(id(node.func.value))
  for node in ast.walk(tree):
    if isinstance(node, ast.Attribute) and node.attr in ESCAPE_ATTRIBUTES:
      return node.attr
    if (
        isinstance(node, (ast.Name, ast.Attribute))
        and isinstance(node.ctx, ast.Load)
        and id(node) not in called
        and program.resolve(node) & _ATTRIBUTE_FUNCTIONS
    ):
      return f"{sorted(program.resolve(node) & _ATTRIBUTE_FUNCTIONS)[0]} as a value"
    if (
        isinstance(node, ast.Attribute)
        and node.attr == "__dict__"
        and id(node) not in constant_reads
        and program.namespace_base(node.value)
    ):
      return "__dict__ of a module"
    if (
        isinstance(node, ast.Call)
        and len(node.args) >= 2
        and program.resolve(node.func) & _ATTRIBUTE_FUNCTIONS
    ):
      name = node.args[1]
      if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
        return f"{sorted(program.resolve(node.func))[0]} with a computed attribute name"
      if name.value in ESCAPE_ATTRIBUTES:
        return name.value
  return None


def _is_banned_reason(reason: str) -> bool:
  return reason.startswith("banned:")


# ----------------------------------------------------------------------------- running


def _input_error(message: str) -> JobResult:
  return JobResult("error", None, "InputError", message, 0.0)


# Names an input *expression* may not use (on top of the banned and dynamic-access lists):
# whatever could build an object with a forged __repr__/__eq__ or reach outside the call.
EXPRESSION_BANNED = (
    "type",
    "object",
    "super",
    "setattr",
    "delattr",
    "classmethod",
    "staticmethod",
    "property",
    "open",
    "input",
    "exit",
    "quit",
    "help",
    "memoryview",
    "sys",
    "os",
)


def check_input_expression(text: str) -> str | None:
  """None if `text` is an acceptable argument-list *expression* (e.g. CRUXEval's
  `lambda x: x + 1`), else the reason. Literals never need this check."""
  try:
    tree = parse_untrusted(f"f({text.strip()}\n)", "eval")
  except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
    return f"input does not parse: {exc}"
  call = tree.body
  if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "f"):
    return "input is not an argument list"
  try:
    for node in ast.walk(tree):
      if isinstance(node, (ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)):
        return f"banned: {type(node).__name__} in input"
    # Evaluated among the program's globals: a free name may be whatever it imported.
    program = names.Program(tree, open_globals=True)
    hit = find_banned(
        tree, REFERENCE_BANNED + DYNAMIC_ACCESS_NAMES + EXPRESSION_BANNED, program=program
    ) or _find_escape(tree, program)
  except RecursionError:
    return "input nested too deeply"
  return f"banned: {hit}" if hit else None


def _call_for(input_text: str, allow_expressions: bool) -> str:
  """Source of the call `f(...)` on the input: rebuilt from parsed literals, or (when
  allowed) the checked expression itself."""
  if not isinstance(input_text, str):
    raise LiteralError(f"input must be str, got {type(input_text).__name__}")
  if len(input_text) > MAX_INPUT_CHARS:
    raise LiteralError(f"input longer than {MAX_INPUT_CHARS} characters")
  try:
    return canonical_call("f", input_text)
  except LiteralError as exc:
    if not allow_expressions:
      raise
    reason = check_input_expression(input_text)
    if reason is not None:
      raise LiteralError(reason) from exc
    return f"f({input_text.strip()}\n)"


def run_calls(
    pool: SandboxPool,
    specs: Sequence[tuple[str, str]],
    variants: Sequence[int | None],
    allow_expressions: bool = False,
) -> list[JobResult]:
  """Runs f(*input) for every (program, input) once per variant, in one batch."""
  results: list[JobResult | None] = [None] * (len(specs) * len(variants))
  jobs, where = [], []
  for i, (program, input_literal) in enumerate(specs):
    try:
      call = _call_for(input_literal, allow_expressions)
    except LiteralError as exc:
      for k in range(len(variants)):
        results[i * len(variants) + k] = _input_error(f"bad input: {exc}")
      continue
    if not isinstance(program, str):
      for k in range(len(variants)):
        results[i * len(variants) + k] = _input_error("program must be str")
      continue
    for k, variant in enumerate(variants):
      jobs.append(Job(program, call, variant))
      where.append(i * len(variants) + k)
  for index, result in zip(where, pool.run_batch(jobs)):
    results[index] = result
  return results  # type: ignore[return-value]


def execute(
    pool: SandboxPool,
    programs_and_inputs: Sequence[tuple[str, str]],
    *,
    allow_expressions: bool = True,
) -> list[JobResult]:
  """`repr(f(*inputs))` for each (program source, input such as "[1, 2], 'ab'").

  Inputs that are not literals (CRUXEval has a few lambdas) run as checked expressions
  unless `allow_expressions` is False.
  """
  return run_calls(pool, list(programs_and_inputs), [None], allow_expressions)


def validate_proposals(
    pool: SandboxPool,
    programs_and_inputs: Sequence[tuple[str, str]],
    *,
    banned: Sequence[str] = REFERENCE_BANNED + DYNAMIC_ACCESS_NAMES,
    max_output_chars: int = MAX_OUTPUT_CHARS,
    allow_expressions: bool = False,
) -> list[Validation]:
  """Validity of proposed (program, input) pairs (docs/method.md, "Validating a proposal").

  Static check first; then the program runs twice, in two interpreters with different
  string-hash seeds and address layouts, and must return the same value both times
  (`literals.same_literal`: a set or dict printed in another order is the same value; a
  list whose order changed, or a non-literal repr whose text changed, is not). The output
  kept is the first run's repr.
  """
  items = list(programs_and_inputs)
  verdicts: list[Validation | None] = [None] * len(items)
  to_run, run_index = [], []
  for i, (program, input_literal) in enumerate(items):
    reason = check_program(program, banned)
    if reason is not None:
      status = "banned" if _is_banned_reason(reason) else "error"
      verdicts[i] = Validation(False, status, None, reason)
    else:
      to_run.append((program, input_literal))
      run_index.append(i)
  results = run_calls(pool, to_run, [0, 1], allow_expressions)
  for j, i in enumerate(run_index):
    first, second = results[2 * j], results[2 * j + 1]
    verdicts[i] = _judge_two_runs(first, second, max_output_chars)
  return verdicts  # type: ignore[return-value]


def _judge_two_runs(first: JobResult, second: JobResult, max_output_chars: int) -> Validation:
  for r in (first, second):
    if r.status != "ok":
      return Validation(False, r.status, None, f"{r.error_type}: {r.error_message}")
  if not same_literal(first.output, second.output):
    return Validation(
        False,
        "nondeterministic",
        None,
        "two runs with different hash seeds returned different values",
    )
  if first.output is None or len(first.output) > max_output_chars:
    return Validation(
        False, "output_too_large", None, f"output longer than {max_output_chars} characters"
    )
  return Validation(True, "ok", first.output, "")


# ----------------------------------------------------------------------------- proposals -> tasks


@dataclass(frozen=True)
class ValidatorConfig:
  min_pairs: int = 2  # induction: at least one shown and one held-out pair
  require_all_inputs: bool = False  # reference: any failing input rejects the proposal
  dedup_inputs: bool = True  # induction: repeated inputs add nothing

  def __post_init__(self) -> None:
    if self.min_pairs < 2:
      raise ValueError(f"min_pairs must be >= 2 (one shown, one held out), got {self.min_pairs}")


@dataclass(frozen=True)
class ProposalResult:
  """Outcome of one deduction/abduction proposal."""

  triplet: Optional[Triplet]
  well_formed: bool  # the parser accepted it (format rule)
  status: str  # 'ok', a parse failure kind, or a sandbox status
  reason: str = ""

  @property
  def valid(self) -> bool:
    return self.triplet is not None


@dataclass(frozen=True)
class InductionProposalResult:
  """Outcome of one induction proposal; ``dropped`` lists (input, why) left out."""

  task: Optional[InductionTask]
  well_formed: bool
  status: str
  reason: str = ""
  dropped: tuple[tuple[str, str], ...] = field(default=())

  @property
  def valid(self) -> bool:
    return self.task is not None


def _parse_rejection(failure: ParseFailure) -> tuple[bool, str, str]:
  return (not failure.broken_format, failure.kind.value, failure.detail)


def validate_triplet_proposals(
    pool: Any, parsed: Sequence[Union[ParsedTripletProposal, ParseFailure]]
) -> list[ProposalResult]:
  """Run every parsed proposal in the sandbox (one batch); valid ones become triplets."""
  jobs = [(p.program, p.input) for p in parsed if isinstance(p, ParsedTripletProposal)]
  validations = iter(validate_proposals(pool, jobs) if jobs else [])
  results = []
  for item in parsed:
    if isinstance(item, ParseFailure):
      well_formed, status, reason = _parse_rejection(item)
      results.append(ProposalResult(None, well_formed, status, reason))
      continue
    if not isinstance(item, ParsedTripletProposal):
      raise TypeError(f"expected ParsedTripletProposal or ParseFailure, got {type(item).__name__}")
    v = next(validations)
    if v.valid:
      results.append(ProposalResult(Triplet(item.program, item.input, v.output), True, "ok"))
    else:
      results.append(ProposalResult(None, True, v.status, v.reason))
  return results


def build_induction_task(
    program: str,
    proposal: ParsedInductionProposal,
    validations: Sequence[Any],
    config: ValidatorConfig = ValidatorConfig(),
) -> InductionProposalResult:
  """Pure: combine one proposal's per-input sandbox validations into a task or a rejection.

  ``validations[i]`` (with ``.valid``, ``.status``, ``.output``, ``.reason``) belongs to
  ``proposal.inputs[i]``.
  """
  if len(validations) != len(proposal.inputs):
    raise ValueError(f"{len(validations)} validations for {len(proposal.inputs)} inputs")
  pairs: list[IOPair] = []
  dropped: list[tuple[str, str]] = []
  seen: set[str] = set()
  for literal, v in zip(proposal.inputs, validations):
    if not v.valid:
      dropped.append((literal, f"{v.status}: {v.reason}" if v.reason else v.status))
      continue
    key = literal.strip()
    if config.dedup_inputs and key in seen:
      dropped.append((literal, "duplicate input"))
      continue
    seen.add(key)
    pairs.append(IOPair(literal, v.output))
  failed = [d for d in dropped if d[1] != "duplicate input"]
  if config.require_all_inputs and failed:
    return InductionProposalResult(
        None,
        True,
        "input_failed",
        f"{len(failed)} of {len(proposal.inputs)} inputs failed",
        tuple(dropped),
    )
  if len(pairs) < config.min_pairs:
    return InductionProposalResult(
        None,
        True,
        "too_few_valid_inputs",
        f"{len(pairs)} usable inputs < {config.min_pairs}",
        tuple(dropped),
    )
  half = len(pairs) // 2
  task = InductionTask(program, tuple(pairs[:half]), tuple(pairs[half:]), proposal.message)
  return InductionProposalResult(task, True, "ok", "", tuple(dropped))


def validate_induction_proposals(
    pool: Any,
    items: Sequence[tuple[str, Union[ParsedInductionProposal, ParseFailure]]],
    config: ValidatorConfig = ValidatorConfig(),
) -> list[InductionProposalResult]:
  """``items[i] = (buffer program shown to the proposer, its parsed proposal)``.

  All inputs of all proposals run in one sandbox batch."""
  jobs = []
  for program, item in items:
    if isinstance(item, ParsedInductionProposal):
      jobs.extend((program, literal) for literal in item.inputs)
    elif not isinstance(item, ParseFailure):
      raise TypeError(
          f"expected ParsedInductionProposal or ParseFailure, got {type(item).__name__}"
      )
  validations = validate_proposals(pool, jobs) if jobs else []
  results, at = [], 0
  for program, item in items:
    if isinstance(item, ParseFailure):
      well_formed, status, reason = _parse_rejection(item)
      results.append(InductionProposalResult(None, well_formed, status, reason))
      continue
    n = len(item.inputs)
    results.append(build_induction_task(program, item, validations[at : at + n], config))
    at += n
  return results
