"""The command-line boundary shared by the entry points (azr, evaluate, plot_run).

Bad input gets one line on stderr that names the flag or file and the fix, exit status 2,
no traceback and no help dump:
  * a flag that does not parse (`--steps=abc`, an unknown flag) — `run()` parses flags;
  * stray positional arguments;
  * anything an entry point rejects by raising `InputError` (or calling `fail`).
Paths are normalised here once (`path_flag`), so the library only ever sees absolute
local paths or checked remote URLs.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterator, NoReturn, Sequence

from absl import app, flags
from absl import logging as absl_logging

from absolute_zero import paths

FLAGS = flags.FLAGS


class InputError(ValueError):
  """Bad user input: reported as one line, exit status 2."""


def fail(prog: str, message: object) -> NoReturn:
  """Prints '<prog>: error: <message>' (one line) to stderr and exits with status 2."""
  text = " ".join(str(message).split()) or "bad input"
  print(f"{prog}: error: {text}", file=sys.stderr, flush=True)
  sys.exit(2)


def _flags_parser(prog: str) -> Callable[[list[str]], list[str]]:

  def parse(argv: list[str]) -> list[str]:
    try:
      rest = FLAGS(argv)
    except flags.Error as e:
      fail(prog, f"{e} (see --helpfull)")
    if len(rest) > 1:
      fail(
          prog,
          f"unexpected positional arguments {rest[1:]}: every option is a flag "
          "(--name=value); see --helpfull",
      )
    return rest

  return parse


def _drop_closed_loop_callbacks() -> None:
  """Installs a `sys.unraisablehook` that drops TensorStore's late callbacks.

  When an Orbax restore fails (e.g. a truncated checkpoint file), reads still in flight
  finish after Orbax has closed its asyncio loop and each reports an unraisable
  `RuntimeError('Event loop is closed')` with a traceback; the restore's own error says
  what went wrong, so those are dropped. Every other unraisable exception is printed.
  """
  default = sys.unraisablehook

  def hook(unraisable) -> None:
    exc = unraisable.exc_value
    if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
      return
    default(unraisable)

  sys.unraisablehook = hook


def run(main: Callable[[list[str]], None], prog: str) -> None:
  """`absl.app.run` with one-line flag errors and `InputError` -> exit 2."""

  def guarded(argv: list[str]) -> None:
    try:
      main(argv)
    except InputError as e:
      fail(prog, e)

  _drop_closed_loop_callbacks()
  app.run(guarded, flags_parser=_flags_parser(prog))


def path_flag(name: str, *, must_exist: bool = False, kind: str | None = None) -> str | None:
  """The value of flag `--name` as an absolute path (or checked URL); None if unset.

  Args:
    name: the flag name without dashes.
    must_exist: local paths must exist.
    kind: 'file' or 'dir' to check what an existing local path is.

  Raises:
    InputError: the path is empty, of an unsupported scheme, needs a missing extra, or
      does not exist / is not of `kind` when that is asked for.
  """
  value = FLAGS[name].value
  if value is None:
    return None
  return resolve(value, f"--{name}", must_exist=must_exist, kind=kind)


def resolve(value: str, flag: str, *, must_exist: bool = False, kind: str | None = None) -> str:
  """`paths.resolve_path` with the existence checks of `path_flag`; raises InputError."""
  try:
    path = paths.resolve_path(value, flag)
  except paths.PathError as e:
    raise InputError(str(e)) from None
  if paths.is_remote(path):
    return path
  if (must_exist or kind) and not os.path.exists(path):
    if must_exist:
      raise InputError(f"{flag}={value}: no such file or directory ({path})")
    return path
  if kind == "dir" and os.path.exists(path) and not os.path.isdir(path):
    raise InputError(f"{flag}={value}: not a directory ({path})")
  if kind == "file" and os.path.isdir(path):
    raise InputError(f"{flag}={value}: is a directory, expected a file ({path})")
  return path


COMPILATION_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"


def default_compilation_cache() -> str:
  """$JAX_COMPILATION_CACHE_DIR if set, else $XDG_CACHE_HOME (or ~/.cache)/absolute_zero/jax."""
  if os.environ.get(COMPILATION_CACHE_ENV):
    return os.environ[COMPILATION_CACHE_ENV]
  root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(root, "absolute_zero", "jax")


def use_compilation_cache(value: str | None, flag: str = "--compilation_cache") -> str | None:
  """Turns JAX's persistent compilation cache on (before anything compiles).

  `value` None: `default_compilation_cache()`; '' (empty): off; else a directory (relative
  to the working directory, ~ expanded). A rerun of the same configuration then loads its
  compiled programs instead of compiling them again. JAX's own threshold applies: only
  programs that took >= jax_persistent_cache_min_compile_time_secs (1 s) to compile are
  stored. Returns the absolute directory, or None when off. Raises InputError when the
  directory cannot be created or written.
  """
  import jax  # the entry points import JAX only once their flags have been checked

  if value == "":
    jax.config.update("jax_compilation_cache_dir", None)
    return None
  path = default_compilation_cache() if value is None else resolve(value, flag, kind="dir")
  ensure_writable_dir(path, flag)
  jax.config.update("jax_compilation_cache_dir", path)
  return path


def _probe_writable(directory: str) -> str | None:
  """Creates `directory` and writes a probe file in it; the OS's reason if that fails."""
  probe = os.path.join(directory, f".write_probe-{os.getpid()}")
  try:
    os.makedirs(directory, exist_ok=True)
    with open(probe, "w") as f:
      f.write("probe")
    os.remove(probe)
  except OSError as e:
    return e.strerror or type(e).__name__
  return None


def ensure_writable_dir(path: str, flag: str) -> None:
  """Creates local directory `path` and proves it writable, else InputError naming `flag`."""
  if paths.is_remote(path):
    return
  reason = _probe_writable(path)
  if reason:
    raise InputError(f"{flag}={path} is not writable ({reason}); pass a {flag} you can " "write to")


def ensure_writable_file(path: str, flag: str, value: str | None = None) -> None:
  """Local file `path` can be written: not a directory, its folder created and writable.

  Raises InputError naming `flag` (and the `value` the user typed) otherwise.
  """
  if paths.is_remote(path):
    return
  shown = f"{flag}={value if value is not None else path}"
  if os.path.isdir(path):
    raise InputError(f"{shown}: {path} is a directory; give a file name")
  directory = os.path.dirname(path)
  reason = _probe_writable(directory)
  if reason:
    raise InputError(
        f"{shown}: cannot write to {directory} ({reason}); pass a {flag} " "you can write to"
    )


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
  """Silences absl logging (Orbax logs a corrupt file's content before raising; the error
  line says it all) unless --verbosity was given."""
  if FLAGS["verbosity"].present:
    yield
    return
  level = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.FATAL)
  try:
    yield
  finally:
    absl_logging.set_verbosity(level)


def check(condition: bool, message: str) -> None:
  """Raises InputError(message) unless `condition`."""
  if not condition:
    raise InputError(message)


def at_least(name: str, minimum: float, *, hint: str = "") -> None:
  """Flag `--name` must be >= minimum (InputError otherwise)."""
  value = FLAGS[name].value
  if value is not None and value < minimum:
    raise InputError(f"--{name}={value} must be >= {minimum}{'; ' + hint if hint else ''}")


def positive(name: str, *, hint: str = "") -> None:
  """Flag `--name` must be > 0 (InputError otherwise)."""
  value = FLAGS[name].value
  if value is not None and not value > 0:
    raise InputError(f"--{name}={value} must be > 0{'; ' + hint if hint else ''}")


def one_of(name: str, values: Sequence[str], choices: Sequence[str]) -> None:
  """Every value of list flag `--name` is in `choices` (InputError otherwise)."""
  unknown = [v for v in values if v not in choices]
  if unknown:
    raise InputError(
        f"--{name}: unknown {', '.join(map(repr, unknown))}; choose from " f"{', '.join(choices)}"
    )
