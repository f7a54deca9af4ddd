"""User-given paths, normalised once at the command-line boundary.

Orbax refuses relative checkpoint paths, and a relative path saved in a run's config means
something else from another working directory, so every path a user types is made absolute
here before anything uses it: `~` is expanded, a relative path is joined to the working
directory, and symbolic links are kept as written (`os.path.abspath`, not `realpath`), so
a run directory reached through a link is reported under the name the user gave.

Remote paths (`gs://bucket/dir`) pass through unchanged. Orbax and `etils.epath` read and
write them through `fsspec`/`gcsfs`, which are an install extra
(`pip install -e ".[gcs]"`); without it, `resolve_path` raises one clear error.
"""

from __future__ import annotations

import importlib.util
import os
import re

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Schemes we know how to reach and the module that must be importable for each.
REMOTE_BACKENDS = {"gs": "gcsfs"}


class PathError(ValueError):
  """A user-given path cannot be used as asked (unknown scheme, missing extra, ...)."""


def scheme(path: str | os.PathLike) -> str | None:
  """'gs' for 'gs://b/x', None for a local path."""
  match = _SCHEME.match(os.fspath(path))
  return match.group(1).lower() if match else None


def is_remote(path: str | os.PathLike) -> bool:
  return scheme(path) is not None


def resolve_path(path: str | os.PathLike, flag: str | None = None) -> str:
  """An absolute local path (`~` expanded, links kept) or a checked remote URL.

  Args:
    path: what the user typed.
    flag: the flag's name for error messages (e.g. '--log_dir').

  Raises:
    PathError: empty path, an unsupported scheme, or `gs://` without `gcsfs` installed.
  """
  text = os.fspath(path)
  name = f"{flag}={text}" if flag else repr(text)
  if not text.strip():
    raise PathError(f"{flag or 'path'} is empty; give a directory or file path")
  found = scheme(text)
  if found is None:
    return os.path.abspath(os.path.expanduser(text))
  module = REMOTE_BACKENDS.get(found)
  if module is None:
    raise PathError(
        f"{name}: {found}:// paths are not supported; use a local path or " "gs://bucket/dir"
    )
  if importlib.util.find_spec(module) is None:
    raise PathError(
        f"{name}: {found}:// paths need the {module} package; install the "
        f'extra with pip install -e ".[gcs]" (or pip install {module})'
    )
  return text


def join(base: str, *parts: str) -> str:
  """`os.path.join` for local paths, '/'-joining for remote URLs."""
  if is_remote(base):
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
  return os.path.join(base, *parts)
