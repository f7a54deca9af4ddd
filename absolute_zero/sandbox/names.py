"""Scope-aware name resolution for the static ban check (docs/method.md, "Validating a proposal").

The ban is about *modules and names a program reaches*, not about spellings: a parameter,
local, loop or comprehension variable called `time` is not the `time` module. This module
binds every name of a program to the scope that owns it (Python's rules: function,
lambda and comprehension scopes; class bodies; `global`/`nonlocal`; walrus targets of a
comprehension bind in the enclosing function) and resolves expressions to the dotted
paths they may denote:

  * a name bound by `import m` / `import m as a` / `from m import n [as a]` -> `m` / `m.n`;
  * a global name that a `from m import *` may bind -> `m.name`;
  * a free name the builtins module defines -> the name itself (`eval`, `__import__`);
  * a name bound by `x = <expr>`, `(x := <expr>)` or a parameter default -> what the
    expression denotes (so `o = os` carries `os` into `o.path`);
  * `a.b`, `getattr(a, 'b')`, `a.__dict__['b']`, `vars(a)['b']`, `globals()['b']` ->
    `<a>.b` (also with `.get('b')`); `sys.modules['m']` -> `m`;
  * `<builtin function>.__self__` is the builtins module, whose attributes are the builtin
    names themselves (`len.__self__.exec` -> `exec`);
  * `__import__('m')`, `importlib.import_module('m')` -> `m`.

Any other binding (parameter without a module default, loop target, `with`/`except`
target, def/class name, assignment of a non-module value) denotes no module. Resolution is
conservative where Python's is dynamic: a global name is everything any of its bindings
may hold *and* the builtin of that name (a global rebinding can be skipped by control
flow), and a class-body name also falls back to the globals.

A free name that is neither bound in the program nor a builtin (e.g. `time` used without
an import) denotes nothing: at run time it raises NameError, it cannot reach the module.
This matches the reference AZR check, which looks at imports only. (An input expression
is evaluated among the program's globals; `Program(..., open_globals=True)` then lets a
free name denote itself.)

Limits: values passed through calls, returns, containers or attributes of other objects
are not followed (`def g(): return os` then `g().path`); the static check is a filter for
the method's ban, and the sandbox, not this check, is what confines a program.
"""

from __future__ import annotations

import ast
import builtins
import types
from typing import Iterable

BUILTINS_ROUTE = "<builtins>"  # the builtins module reached without naming it
_RUNTIME_GLOBALS = frozenset(dir(builtins)) | {"__builtins__", "__name__"}
_BUILTIN_FUNCTIONS = frozenset(
    n
    for n in dir(builtins)
    if isinstance(getattr(builtins, n), types.BuiltinFunctionType)
    and getattr(getattr(builtins, n), "__self__", None) is builtins
)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_DICT_READERS = ("get", "pop", "setdefault", "__getitem__")


class _Scope:
  """One Python scope: 'module', 'function' (also lambda), 'comprehension' or 'class'."""

  def __init__(self, kind: str, parent: _Scope | None):
    self.kind, self.parent = kind, parent
    self.bindings: dict[str, list[tuple]] = {}
    self.raw: list[tuple[str, tuple]] = []  # before global/nonlocal placement
    self.declared_global: set[str] = set()
    self.declared_nonlocal: set[str] = set()
    self.stars: list[str] = []  # modules of `from m import *`

  def module(self) -> _Scope:
    scope = self
    while scope.parent is not None:
      scope = scope.parent
    return scope

  def function_like(self) -> bool:
    return self.kind in ("function", "comprehension")


class Program:
  """Scopes and bindings of one parsed program (ast.Module or ast.Expression).

  `open_globals`: the code runs in a namespace it does not define (an input expression
  evaluated among the program's globals), so a free name may be anything of that name
  and denotes itself. Raises RecursionError for pathologically nested trees.
  """

  def __init__(self, tree: ast.AST, *, open_globals: bool = False):
    self.tree, self.open_globals = tree, open_globals
    self.root = _Scope("module", None)
    self.scope_of: dict[int, _Scope] = {}
    self.scopes = [self.root]
    self._memo: dict[int, frozenset[str]] = {}
    self._active: set[int] = set()
    self._visit(tree, self.root)
    for scope in self.scopes:
      for name, binding in scope.raw:
        self._owner(scope, name).bindings.setdefault(name, []).append(binding)

  # ------------------------------------------------------------------------- binding

  def _new(self, kind: str, parent: _Scope) -> _Scope:
    scope = _Scope(kind, parent)
    self.scopes.append(scope)
    return scope

  def _owner(self, scope: _Scope, name: str) -> _Scope:
    """The scope a binding of `name` made in `scope` lands in."""
    if name in scope.declared_global:
      return self.root
    if name in scope.declared_nonlocal:
      outer = scope.parent
      while outer is not None and outer.kind != "module":
        if outer.function_like() and (
            name in outer.declared_nonlocal or any(n == name for n, _ in outer.raw)
        ):
          return self._owner(outer, name)
        outer = outer.parent
      return self.root
    return scope

  @staticmethod
  def _bind(scope: _Scope, name: str, binding: tuple = ("other",)) -> None:
    scope.raw.append((name, binding))

  def _visit_all(self, nodes: Iterable[ast.AST | None], scope: _Scope) -> None:
    for node in nodes:
      if node is not None:
        self._visit(node, scope)

  def _visit(self, node: ast.AST, scope: _Scope) -> None:
    self.scope_of[id(node)] = scope
    if isinstance(node, _FUNCTIONS):
      self._function(node, scope)
    elif isinstance(node, ast.ClassDef):
      self._visit_all(node.decorator_list + node.bases + node.keywords, scope)
      self._bind(scope, node.name)
      body = self._new("class", scope)
      self._visit_all(node.body, body)
    elif isinstance(node, _COMPREHENSIONS):
      self._comprehension(node, scope)
    elif isinstance(node, ast.Import):
      for alias in node.names:
        if alias.asname:
          self._bind(scope, alias.asname, ("import", alias.name))
        else:
          root = alias.name.split(".")[0]
          self._bind(scope, root, ("import", root))
    elif isinstance(node, ast.ImportFrom):
      module = "." * node.level + (node.module or "")
      for alias in node.names:
        if alias.name == "*":
          scope.stars.append(module)
        else:
          full = f"{module}.{alias.name}" if module else alias.name
          self._bind(scope, alias.asname or alias.name, ("import", full))
    elif isinstance(node, ast.Global):
      scope.declared_global.update(node.names)
    elif isinstance(node, ast.Nonlocal):
      scope.declared_nonlocal.update(node.names)
    elif isinstance(node, ast.NamedExpr):
      owner = scope
      while owner.kind == "comprehension":
        owner = owner.parent
      self.scope_of[id(node.target)] = scope
      self._bind(owner, node.target.id, ("value", node.value, scope))
      self._visit(node.value, scope)
    else:
      self._plain(node, scope)

  def _plain(self, node: ast.AST, scope: _Scope) -> None:
    if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
      self._bind(scope, node.id)
    elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
      targets = node.targets if isinstance(node, ast.Assign) else [node.target]
      for target in targets:
        self._bind_values(target, node.value, scope)
    elif isinstance(node, ast.ExceptHandler) and node.name:
      self._bind(scope, node.name)
    elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
      self._bind(scope, node.name)
    elif isinstance(node, ast.MatchMapping) and node.rest:
      self._bind(scope, node.rest)
    for child in ast.iter_child_nodes(node):
      self._visit(child, scope)

  def _bind_values(self, target: ast.AST, value: ast.AST, scope: _Scope) -> None:
    """`x = v` and `a, b = u, v` carry what the value denotes into the names."""
    if isinstance(target, ast.Name):
      self._bind(scope, target.id, ("value", value, scope))
    elif (
        isinstance(target, (ast.Tuple, ast.List))
        and isinstance(value, (ast.Tuple, ast.List))
        and len(target.elts) == len(value.elts)
        and not any(isinstance(e, ast.Starred) for e in target.elts + value.elts)
    ):
      for t, v in zip(target.elts, value.elts):
        self._bind_values(t, v, scope)

  def _function(self, node: ast.AST, scope: _Scope) -> None:
    args = node.args
    outer = list(args.defaults) + [d for d in args.kw_defaults if d is not None]
    if not isinstance(node, ast.Lambda):
      outer += node.decorator_list + [node.returns]
      outer += [a.annotation for a in self._arguments(args)]
      self._bind(scope, node.name)
    self._visit_all(outer, scope)
    inner = self._new("function", scope)
    positional = args.posonlyargs + args.args
    defaults = dict(zip(positional[len(positional) - len(args.defaults) :], args.defaults))
    defaults.update(zip(args.kwonlyargs, args.kw_defaults))
    for arg in self._arguments(args):
      self.scope_of[id(arg)] = inner
      default = defaults.get(arg)
      self._bind(inner, arg.arg, ("value", default, scope) if default else ("other",))
    body = node.body if isinstance(node.body, list) else [node.body]
    self._visit_all(body, inner)

  @staticmethod
  def _arguments(args: ast.arguments) -> list[ast.arg]:
    return [
        a
        for a in (args.posonlyargs + args.args + [args.vararg] + args.kwonlyargs + [args.kwarg])
        if a is not None
    ]

  def _comprehension(self, node: ast.AST, scope: _Scope) -> None:
    inner = self._new("comprehension", scope)
    for i, gen in enumerate(node.generators):
      self.scope_of[id(gen)] = inner
      self._visit(gen.iter, scope if i == 0 else inner)
      self._visit(gen.target, inner)
      self._visit_all(gen.ifs, inner)
    parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
    self._visit_all(parts, inner)

  # ------------------------------------------------------------------------- resolving

  def lookup(self, name: str, scope: _Scope) -> frozenset[str]:
    """Dotted paths a load of `name` in `scope` may denote (empty: none)."""
    if name in scope.declared_global:
      return self._global(name)
    if name in scope.declared_nonlocal:
      scope = self._owner(scope, name)
      return self._from_bindings(scope.bindings.get(name, []))
    if scope.kind == "module":
      return self._global(name)
    if name in scope.bindings:
      found = self._from_bindings(scope.bindings[name])
      if scope.kind == "class":  # class bodies look names up dynamically
        found |= self._global(name)
      return found
    outer = scope.parent
    while outer.kind == "class":
      outer = outer.parent
    return self.lookup(name, outer)

  def _global(self, name: str) -> frozenset[str]:
    found = set(self._from_bindings(self.root.bindings.get(name, [])))
    found.update(f"{m}.{name}" for m in self.root.stars)
    if name in _RUNTIME_GLOBALS or self.open_globals:
      found.add(name)
    return frozenset(found)

  def _from_bindings(self, bindings: list[tuple]) -> frozenset[str]:
    found: set[str] = set()
    for binding in bindings:
      if binding[0] == "import":
        found.add(binding[1])
        if binding[1] == "builtins":  # `import builtins`: its attributes are builtins
          found.add(BUILTINS_ROUTE)
        elif binding[1].startswith("builtins."):
          found.add(binding[1][len("builtins.") :])
      elif binding[0] == "value":
        found |= self.resolve(binding[1], binding[2])
    return frozenset(found)

  def resolve(self, node: ast.AST, scope: _Scope | None = None) -> frozenset[str]:
    """Dotted paths (module, module attribute or builtin name) `node` may evaluate to."""
    key = id(node)
    if key in self._memo:
      return self._memo[key]
    if key in self._active:
      return frozenset()  # a cycle of aliases adds nothing new
    if scope is None:
      scope = self.scope_of.get(key, self.root)
    self._active.add(key)
    try:
      found = self._resolve(node, scope)
    finally:
      self._active.discard(key)
    self._memo[key] = found
    return found

  def _resolve(self, node: ast.AST, scope: _Scope) -> frozenset[str]:
    if isinstance(node, ast.Name):
      return self.lookup(node.id, scope)
    if isinstance(node, ast.Attribute):
      return _extend(self.resolve(node.value, scope), node.attr)
    if isinstance(node, ast.NamedExpr):
      return self.resolve(node.value, scope)
    if isinstance(node, ast.Subscript):
      key = _constant_str(node.slice)
      return self._namespace_item(node.value, key, scope) if key is not None else frozenset()
    if isinstance(node, ast.Call):
      return self._call(node, scope)
    return frozenset()

  def _call(self, node: ast.Call, scope: _Scope) -> frozenset[str]:
    func = self.resolve(node.func, scope)
    first = _constant_str(node.args[0]) if node.args else None
    if func & {"__import__", "importlib.import_module", "importlib.__import__"} and first:
      return frozenset({first})
    if func & {"getattr", "setattr", "delattr", "hasattr"} and len(node.args) >= 2:
      attr = _constant_str(node.args[1])
      if attr is not None:
        return _extend(self.resolve(node.args[0], scope), attr)
    if isinstance(node.func, ast.Attribute) and node.func.attr in _DICT_READERS and first:
      return self._namespace_item(node.func.value, first, scope)
    return frozenset()

  def _namespace_item(self, mapping: ast.AST, key: str, scope: _Scope) -> frozenset[str]:
    """`<mapping>[key]` where mapping is a namespace (`m.__dict__`, vars(m), globals(),
    locals()) or `sys.modules`."""
    if isinstance(mapping, ast.Attribute) and mapping.attr == "__dict__":
      return _extend(self.resolve(mapping.value, scope), key)
    if "sys.modules" in self.resolve(mapping, scope):
      return frozenset({key})
    if isinstance(mapping, ast.Call) and not mapping.keywords:
      func = self.resolve(mapping.func, scope)
      if "vars" in func and len(mapping.args) == 1:
        return _extend(self.resolve(mapping.args[0], scope), key)
      if not mapping.args and func & {"globals", "vars"}:
        return self._global(key)
      if not mapping.args and "locals" in func:
        return self.lookup(key, scope)
    return frozenset()

  def namespace_base(self, node: ast.AST) -> frozenset[str]:
    """For `<x>.__dict__`: the module paths x may denote (builtin names excluded)."""
    return frozenset(p for p in self.resolve(node) if is_module_path(p))


def _extend(bases: frozenset[str], attr: str) -> frozenset[str]:
  out = set()
  for base in bases:
    if base == BUILTINS_ROUTE:
      out.add(attr)
    elif attr == "__self__" and base in _BUILTIN_FUNCTIONS:
      out.add(BUILTINS_ROUTE)
    else:
      out.add(f"{base}.{attr}")
  return frozenset(out)


def _constant_str(node: ast.AST | None) -> str | None:
  if isinstance(node, ast.Constant) and isinstance(node.value, str):
    return node.value
  return None


def is_builtin_name(path: str) -> bool:
  """Whether `path` is a name the builtins module defines (`exec`, `len`)."""
  return path in _RUNTIME_GLOBALS


def is_module_path(path: str) -> bool:
  """Whether a resolved path comes from an import or the builtins route, not a builtin."""
  return path == BUILTINS_ROUTE or path.split(".")[0] not in _RUNTIME_GLOBALS
