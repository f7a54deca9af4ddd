"""Per-worker cgroup (v1 `memory` and `pids`) that bounds a worker and all of its jobs.

Optional: where the controllers are not mounted or not writable, `WorkerCgroup.create`
returns None and the pool relies on rlimits alone.
"""

from __future__ import annotations

import os

_ROOT = "/sys/fs/cgroup"


def _own_path(controller: str) -> str | None:
  try:
    with open("/proc/self/cgroup") as f:
      for line in f:
        _, controllers, path = line.rstrip("\n").split(":", 2)
        if controller in controllers.split(","):
          return path
  except OSError:
    return None
  return None


class WorkerCgroup:
  """Directories under this process's own memory and pids cgroups for one worker."""

  def __init__(self, dirs: list[str]):
    self.dirs = dirs

  @classmethod
  def create(cls, name: str, memory_bytes: int, max_pids: int) -> "WorkerCgroup | None":
    dirs = []
    settings = {"memory": {"memory.limit_in_bytes": memory_bytes}, "pids": {"pids.max": max_pids}}
    try:
      for controller, values in settings.items():
        own = _own_path(controller)
        base = os.path.join(_ROOT, controller)
        if own is None or not os.path.isdir(base):
          raise OSError(f"no {controller} controller")
        path = os.path.join(base + own, name)
        os.makedirs(path, exist_ok=True)
        dirs.append(path)
        for key, value in values.items():
          with open(os.path.join(path, key), "w") as f:
            f.write(str(value))
    except OSError:
      cls(dirs).remove()
      return None
    return cls(dirs)

  @property
  def procs_files(self) -> list[str]:
    return [os.path.join(d, "cgroup.procs") for d in self.dirs]

  def remove(self) -> None:
    for d in self.dirs:
      try:
        os.rmdir(d)
      except OSError:
        pass
