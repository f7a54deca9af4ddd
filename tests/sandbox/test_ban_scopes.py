"""The static ban check resolves names by scope (issue 16, class 1).

Generated matrices: every banned module or dotted name x every way to reach it must be
rejected, naming that entry; every way to bind its top-level name to something else
(parameter, local, loop/comprehension variable, ...) must pass. Expected verdicts follow
from Python's scoping rules, not from running the checker on examples.
"""

import itertools

import pytest

from absolute_zero.tasks.validators import (
    BANNED_MODULES,
    BANNED_NAMES,
    DYNAMIC_ACCESS_NAMES,
    REFERENCE_BANNED,
    check_input_expression,
    check_program,
)

# Module-like entries (the builtin names such as `exec` get their own matrix below).
_BUILTIN_ENTRIES = (
    "__import__",
    "exec",
    "eval",
    "compile",
    "globals",
    "locals",
    "vars",
    "breakpoint",
    "__loader__",
    "__spec__",
)
TARGETS = tuple(
    dict.fromkeys(
        BANNED_MODULES
        + BANNED_NAMES
        + tuple(
            e
            for e in DYNAMIC_ACCESS_NAMES
            if e not in _BUILTIN_ENTRIES and e not in ("__builtins__", "os.exec")
        )
    )
)


def _parts(target):
  root, _, rest = target.partition(".")
  return root, rest


def _use(name, rest):
  """An expression using `name` as the module would: `name.rest` or `name.attr`."""
  return f"{name}.{rest}" if rest else f"{name}.upper()"


def _reach_forms(target):
  """Programs that reach `target`, each as (form name, source)."""
  root, rest = _parts(target)
  first = rest.split(".")[0] if rest else None
  use = _use(root, rest)
  forms = {
      "import": f"import {target}\ndef f(x):\n    return x\n",
      "import_as": f"import {target} as q\ndef f(x):\n    return q\n",
      "import_root_as_then_use": f"import {root} as q\ndef f(x):\n    return {_use('q', rest)}\n",
      "local_import": f"def f(x):\n    import {root}\n    return {use}\n",
      "local_import_as": f"def f(x):\n    import {root} as q\n    return {_use('q', rest)}\n",
      "dunder_import": f"def f(x):\n    return __import__({target!r})\n",
      "dunder_import_root": f"def f(x):\n    return {_use(f'__import__({root!r})', rest)}\n",
      "importlib": (
          "import importlib\n" f"def f(x):\n    return importlib.import_module({target!r})\n"
      ),
      "importlib_from": (
          "from importlib import import_module as im\n" f"def f(x):\n    return im({target!r})\n"
      ),
      "builtins_self_import": f"def f(x):\n    return len.__self__.__import__({target!r})\n",
      "builtins_dict_import": (
          f"def f(x):\n    return len.__self__.__dict__['__import__']" f"({target!r})\n"
      ),
      "global_from_helper": (
          f"import string\ndef f(x):\n    def g():\n        global q\n"
          f"        import {root} as q\n    g()\n"
          f"    return {_use('q', rest)}\n"
      ),
      "wildcard_then_use": (f"from {target} import *\ndef f(x):\n    return x\n"),
      "sys_modules": (
          f"import sys\ndef f(x):\n    return sys.modules[{root!r}]"
          f"{'.' + rest if rest else ''}\n"
      ),
  }
  if rest:
    parent, _, last = target.rpartition(".")
    forms.update(
        {
            "from_import": f"from {parent} import {last}\ndef f(x):\n    return {last}\n",
            "from_import_as": f"from {parent} import {last} as q\ndef f(x):\n    return q\n",
            "attribute": f"import {root}\ndef f(x):\n    return {use}\n",
            "attribute_store": f"import {root}\ndef f(x):\n    {use} = x\n    return x\n",
            "wildcard_name": f"from {root} import *\ndef f(x):\n    return {rest}\n",
            "wildcard_call": f"from {root} import *\ndef f(x):\n    return {first}.__class__\n",
            "getattr_const": f"import {root}\ndef f(x):\n    return getattr({root}, {first!r})\n",
            "hasattr_const": f"import {root}\ndef f(x):\n    return hasattr({root}, {first!r})\n",
            "dunder_dict": f"import {root}\ndef f(x):\n    return {root}.__dict__[{first!r}]\n",
            "dunder_dict_get": (
                f"import {root}\n" f"def f(x):\n    return {root}.__dict__.get({first!r})\n"
            ),
            "vars_subscript": f"import {root}\ndef f(x):\n    return vars({root})[{first!r}]\n",
            "globals_subscript": (
                f"import {root}\ndef f(x):\n    return globals()[{root!r}]" f".{rest}\n"
            ),
            "alias_assign": f"import {root}\ndef f(x):\n    o = {root}\n    return o.{rest}\n",
            "alias_tuple_assign": (
                f"import {root}\ndef f(x):\n    o, p = {root}, x\n" f"    return o.{rest}\n"
            ),
            "alias_walrus": f"import {root}\ndef f(x):\n    return (o := {root}).{rest}\n",
            "alias_default": f"import {root}\ndef f(x, o={root}):\n    return o.{rest}\n",
            "alias_global": f"import {root}\nM = {root}\ndef f(x):\n    return M.{rest}\n",
            "class_body": f"import {root}\nclass C:\n    v = {use}\ndef f(x):\n    return C.v\n",
            "lambda_body": f"import {root}\ndef f(x):\n    return (lambda: {use})()\n",
            "comprehension_body": f"import {root}\ndef f(x):\n    return [{use} for _ in x]\n",
            "nested_closure": (
                f"def f(x):\n    import {root}\n    def g():\n"
                f"        return {use}\n    return g()\n"
            ),
        }
    )
  return forms


def _value_forms(target):
  """Programs that carry the module holding `target` where no resolver follows it."""
  root, rest = _parts(target)
  first = rest.split(".")[0]
  return {
      "list_element": f"import {root}\ndef f(x):\n    return [{root}][0].{rest}\n",
      "returned": (
          f"import {root}\ndef f(x):\n    def g():\n        return {root}\n"
          f"    return g().{rest}\n"
      ),
      "passed": (
          f"import operator\nimport {root}\n"
          f"def f(x):\n    return operator.attrgetter({first!r})({root})\n"
      ),
      "attribute_target": (
          f"import {root}\nclass C:\n    pass\ndef f(x):\n    c = C()\n"
          f"    c.m = {root}\n    return c.m.{rest}\n"
      ),
      "dict_value": f"import {root}\ndef f(x):\n    return {{'m': {root}}}['m'].{rest}\n",
      "builtins_route": "def f(x):\n    return [len.__self__][0].exec('1')\n",
  }


REACH = [(t, form, src) for t in TARGETS for form, src in _reach_forms(t).items()]
VALUE_USES = [(t, form, src) for t in TARGETS if "." in t for form, src in _value_forms(t).items()]


@pytest.mark.parametrize("target,form,source", REACH, ids=[f"{t}-{f}" for t, f, _ in REACH])
def test_every_way_to_reach_a_banned_entry_is_rejected(target, form, source):
  reason = check_program(source)
  assert reason is not None and reason.startswith("banned: "), (form, source, reason)
  if target in REFERENCE_BANNED:
    # With the reference list alone (no dynamic-access names) the entry itself is named.
    assert check_program(source, REFERENCE_BANNED) == f"banned: {target}", (form, source)


@pytest.mark.parametrize(
    "target,form,source", VALUE_USES, ids=[f"{t}-{f}" for t, f, _ in VALUE_USES]
)
def test_modules_holding_banned_entries_are_not_passed_around(target, form, source):
  root = "builtins module" if form == "builtins_route" else _parts(target)[0]
  assert check_program(source) == f"banned: {root} as a value", (form, source)


def _shadow_forms(name, rest):
  """Programs that bind `name` to something other than the module, then use it."""
  use = _use(name, rest)
  return {
      "parameter": f"def f({name}):\n    return {use}\n",
      "parameter_default": f"def f(x, {name}=None):\n    return {use}\n",
      "kwonly_parameter": f"def f(x, *, {name}=1):\n    return {use}\n",
      "star_parameters": f"def f(*{name}, **kw):\n    return {name}\n",
      "kwargs_parameter": f"def f(x, **{name}):\n    return {name}.get('a')\n",
      "local": f"def f(x):\n    {name} = x\n    return {use}\n",
      "augmented_local": f"def f(x):\n    {name} = x\n    {name} += x\n    return {use}\n",
      "annotated_local": f"def f(x):\n    {name}: str = x\n    return {use}\n",
      "tuple_local": f"def f(x):\n    {name}, y = x, 1\n    return {use}\n",
      "loop_variable": f"def f(xs):\n    out = []\n    for {name} in xs:\n"
      f"        out.append({use})\n    return out\n",
      "loop_tuple": f"def f(xs):\n    for i, {name} in enumerate(xs):\n        return {use}\n",
      "list_comprehension": f"def f(xs):\n    return [{use} for {name} in xs]\n",
      "set_comprehension": f"def f(xs):\n    return {{{use} for {name} in xs}}\n",
      "dict_comprehension": f"def f(xs):\n    return {{{name}: {use} for {name} in xs}}\n",
      "generator": f"def f(xs):\n    return list({use} for {name} in xs)\n",
      "nested_comprehension": (
          f"def f(xss):\n    return [{use} for xs in xss " f"for {name} in xs]\n"
      ),
      "lambda_arg": f"def f(x):\n    g = lambda {name}: {use}\n    return g(x)\n",
      "with_target": f"def f(x):\n    with x as {name}:\n        return {use}\n",
      "except_target": (
          f"def f(x):\n    try:\n        return x\n"
          f"    except Exception as {name}:\n        return {name}.args\n"
      ),
      "walrus": f"def f(x):\n    if ({name} := x):\n        return {use}\n",
      "nested_def": f"def f(x):\n    def {name}():\n        return x\n    return {name}()\n",
      "nested_class": f"def f(x):\n    class {name}:\n        pass\n    return {name}\n",
      "class_attribute": (
          f"class C:\n    {name} = 'abc'\n    v = {use}\n    def m(self):\n"
          f"        return self.{name}\ndef f(x):\n    return C().m()\n"
      ),
      "global_assignment": f"{name} = 'abc'\ndef f(x):\n    return {use}\n",
      "global_declared": (f"def f(x):\n    global {name}\n    {name} = x\n    return {use}\n"),
      "nonlocal": (
          f"def f(x):\n    {name} = x\n    def g():\n        nonlocal {name}\n"
          f"        return {use}\n    return g()\n"
      ),
      "closure": (
          f"def f(x):\n    {name} = x\n    def g():\n        return {use}\n" "    return g()\n"
      ),
      "match_capture": (
          f"def f(x):\n    match x:\n        case {name}:\n" f"            return {use}\n"
      ),
      "for_else_global": f"for {name} in 'ab':\n    pass\ndef f(x):\n    return {use}\n",
      "other_module_as_name": f"import string as {name}\ndef f(x):\n    return {name}.digits\n",
      "other_attr_as_name": (
          f"from collections import Counter as {name}\n" f"def f(x):\n    return {name}(x)\n"
      ),
  }


SHADOW = [(t, form, src) for t in TARGETS for form, src in _shadow_forms(*_parts(t)).items()]


@pytest.mark.parametrize("target,form,source", SHADOW, ids=[f"{t}-{f}" for t, f, _ in SHADOW])
def test_every_way_to_shadow_a_banned_name_passes(target, form, source):
  compile(source, "<shadow>", "exec")  # the generated program is valid Python
  assert check_program(source) is None, (form, source, check_program(source))


# Builtin entries: reached as free names or through the builtins module, shadowed by binding.
BUILTIN_REACH = [
    ("free", "def f(x):\n    return {n}\n"),
    ("free_in_lambda", "def f(x):\n    return (lambda: {n})()\n"),
    ("self_route", "def f(x):\n    return len.__self__.{n}\n"),
    ("print_self_route", "def f(x):\n    b = print.__self__\n    return b.{n}\n"),
    ("getattr_self_route", "def f(x):\n    return getattr(len.__self__, {n!r})\n"),
    ("dict_self_route", "def f(x):\n    return len.__self__.__dict__[{n!r}]\n"),
    ("global_rebinding_may_be_skipped", "if 0:\n    {n} = len\ndef f(x):\n    return {n}\n"),
]
BUILTIN_SHADOW = [
    ("parameter", "def f({n}):\n    return {n}(1)\n"),
    ("local", "def f(x):\n    {n} = len\n    return {n}(x)\n"),
    ("comprehension", "def f(xs):\n    return [{n} for {n} in xs]\n"),
    ("lambda_arg", "def f(x):\n    return (lambda {n}: {n})(x)\n"),
]


@pytest.mark.parametrize("name", _BUILTIN_ENTRIES)
def test_banned_builtins_by_binding(name):
  for form, template in BUILTIN_REACH:
    source = template.format(n=name)
    assert check_program(source) == f"banned: {name}", (form, source)
  # `import builtins` is itself banned; without that entry its attributes still resolve.
  source = f"import builtins\ndef f(x):\n    return builtins.{name}\n"
  assert check_program(source) == "banned: builtins"
  assert check_program(source, REFERENCE_BANNED + (name,)) == f"banned: {name}"
  for form, template in BUILTIN_SHADOW:
    source = template.format(n=name)
    assert check_program(source) is None, (form, source, check_program(source))


def test_builtins_reached_by_name_are_banned_in_any_scope():
  local = "def f(x):\n    __builtins__ = x\n    return 1\n"
  assert check_program(local) == "banned: __builtins__"
  assert check_program("__builtins__ = {}\ndef f(x):\n    return x\n") == "banned: __builtins__"


@pytest.mark.parametrize(
    "source,reason",
    [
        ("def f(times):\n    return [time.upper() for time in times]\n", None),
        ("from os import *\ndef f(x):\n    return environ.get('HOME', x)\n", "banned: os.environ"),
        ("from sys import *\ndef f(x):\n    exit(1)\n", "banned: sys.exit"),
        (
            "def f(x):\n    return [v for k, v in len.__self__.__dict__.items()]\n",
            "banned: __dict__ of a module",
        ),
        ("import os\ndef f(x):\n    return os.__dict__[x]\n", "banned: __dict__ of a module"),
        ("def f(getattr):\n    return getattr(1, 2)\n", None),  # not the builtin getattr
        ("def f(x):\n    return getattr(x, 'a' + 'b')\n", "banned: getattr with a computed"),
        (
            "import functools\ndef f(x):\n    return functools.reduce(getattr, ['a'], x)\n",
            "banned: getattr as a value",
        ),
        ("import math\ndef f(x):\n    return [math][0].pi\n", None),  # math holds nothing banned
        ("import sys\ndef f(x):\n    return sys.maxsize\n", None),
        ("def f(x):\n    return x.__dict__[x]\n", None),  # an ordinary object's __dict__
        ("def f(x):\n    len.__self__.repr = lambda o: '42'\n    return 'wrong'\n", None),
    ],
)
def test_issue_examples(source, reason):
  got = check_program(source)
  assert got == reason if reason is None else got.startswith(reason), got


def test_free_module_name_without_import_reaches_nothing():
  # Reference behaviour (imports only): `time` never imported is a NameError at run time.
  assert check_program("def f(x):\n    return time.time() + x\n") is None
  assert check_program("def f(x):\n    return os.path.join(x)\n") is None


@pytest.mark.parametrize(
    "name,form",
    list(
        itertools.product(
            ("type", "object", "sys", "os", "random", "eval"),
            ("lambda {n}: {n}", "[{n} for {n} in 'a']"),
        )
    ),
)
def test_input_expressions_resolve_by_scope(name, form):
  assert check_input_expression(form.format(n=name)) is None
  # An input is evaluated among the program's globals: a free name may be its import.
  assert check_input_expression(f"{name}, 1").startswith("banned")


def test_matrix_sizes():
  assert len(TARGETS) >= 30
  assert len(REACH) >= 30 * 13 and len(SHADOW) >= 30 * 30 and len(VALUE_USES) >= 6 * 6
