"""Plain data passed to and returned from the sandbox pool."""

from __future__ import annotations

import dataclasses

STATUSES = ("ok", "error", "timeout", "memory", "banned", "nondeterministic", "output_too_large")


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
  """Per-job resource limits (and a few per-worker ones) of the sandbox."""

  timeout_s: float = 10.0  # wall clock per job (reference: 10 s)
  cpu_s: float = 10.0  # RLIMIT_CPU per job process
  memory_bytes: int = 1 << 30  # RLIMIT_AS per job process
  file_bytes: int = 16 << 20  # RLIMIT_FSIZE: largest file a job may write
  open_files: int = 64  # RLIMIT_NOFILE
  max_processes: int = 32  # RLIMIT_NPROC (per job uid) and the worker's pids cgroup
  max_output_chars: int = 10_000  # captured stdout + stderr kept per job
  max_repr_chars: int = 100_000  # longest repr of a returned value
  kill_grace_s: float = 0.1  # SIGTERM -> SIGKILL delay on overrun
  tmpfs_bytes: int = 64 << 20  # private /tmp of a worker (namespaced mode)
  worker_memory_bytes: int = 4 << 30  # memory cgroup of a worker and all its jobs

  def __post_init__(self):
    for field in dataclasses.fields(self):
      if getattr(self, field.name) <= 0:
        raise ValueError(
            f"SandboxLimits.{field.name} must be positive, " f"got {getattr(self, field.name)!r}"
        )


@dataclasses.dataclass(frozen=True)
class Job:
  """One program run.

  `source` is executed as a module; then `call`, a Python expression, is evaluated in its
  namespace and the `repr` of its value is the job's output (`call=None`: output None).
  `variant` picks the interpreter: jobs with variant 0 and 1 run in workers started with
  different string-hash seeds and address layouts (used for determinism checks); None
  lets any worker run it.
  """

  source: str
  call: str | None = None
  variant: int | None = None

  def __post_init__(self):
    if not isinstance(self.source, str):
      raise TypeError(f"Job.source must be str, got {type(self.source).__name__}")
    if self.call is not None and not isinstance(self.call, str):
      raise TypeError(f"Job.call must be str or None, got {type(self.call).__name__}")
    if self.variant not in (None, 0, 1):
      raise ValueError(f"Job.variant must be None, 0 or 1, got {self.variant!r}")


@dataclasses.dataclass(frozen=True)
class JobResult:
  """What happened to one job: plain strings produced in the child, never live objects."""

  status: str  # one of STATUSES
  output: str | None  # repr of the value when status == 'ok'
  error_type: str | None  # exception type name, 'Timeout', 'Crash', ...
  error_message: str | None
  seconds: float  # wall time of the job child
  stdout: str = ""  # captured stdout + stderr (capped)

  @property
  def ok(self) -> bool:
    return self.status == "ok"
