"""Sandbox worker process: runs untrusted jobs, each in a fresh forked child.

Started by `SandboxPool` as a fresh interpreter (`python -S -s -B -c BOOTSTRAP CONFIG`),
never forked from the pool's owner. It is a standalone script (it imports nothing from the
package) so that starting it cannot pull in JAX or any accelerator runtime.

Isolation, when the process is root and the kernel allows it ("ns" mode):
  * the worker unshares PID, network and mount namespaces and forks; the child is PID 1 of
    the new PID namespace and serves jobs. Being init, it can kill every other process in
    the namespace with `kill(-1, ...)`: a job's whole tree (also `setsid`, double forks)
    dies after each job, and orphans re-parent to it so they are reaped. If the worker
    dies, the kernel kills everything in its namespace.
  * the new network namespace has only a downed loopback: no network at all.
  * in the mount namespace the whole tree is re-marked read-only, home and work trees are
    hidden behind empty tmpfs (the Python installation is bound back read-only), /tmp is a
    small private tmpfs holding one working directory per job, and /proc shows only the
    namespace's processes.
  * each job child runs as its own unprivileged uid (no capabilities, so it cannot remount,
    ptrace, raise hard limits, or signal the root-owned worker; RLIMIT_NPROC binds).
Without namespaces ("plain" mode) the worker is a child subreaper instead, and a job's
leftover processes are killed by a helper that takes the job's unique uid and calls
`kill(-1, SIGKILL)` (or, when not root, by walking the worker's descendants).

Protocol on stdin/stdout: frames of a 4-byte big-endian length plus a `marshal` payload.
  owner -> worker: list of (job_id, source, call)
  worker -> owner: ("hello", info dict) once, then (job_id, status, output, error_type,
                   error_message, seconds, stdout) per job, in order.
"""

import sys

if sys.path and sys.path[0] == __import__("os").path.dirname(__file__):
  del sys.path[0]  # the package's own modules must not shadow the standard library

import builtins
import ctypes
import errno
import gc
import io
import json
import marshal
import os
import resource
import select
import shutil
import signal
import struct
import time

_CLONE_NEWNS = 0x00020000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_BIND, _MS_MOVE, _MS_REC, _MS_PRIVATE = 4096, 8192, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER, _PR_SET_NO_NEW_PRIVS = 1, 36, 38
_SYS_MOUNT_SETATTR = 442  # same number on x86_64 and aarch64
_AT_FDCWD, _AT_RECURSIVE = -100, 0x8000
_MOUNT_ATTR_RDONLY, _MOUNT_ATTR_NOSUID = 0x1, 0x2

_CHILD_STATUSES = ("ok", "error", "memory", "output_too_large")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret, what):
  if ret != 0:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data=None):
  enc = lambda s: None if s is None else s.encode()
  _check(
      _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
      f"mount {target}",
  )


def _make_tree_readonly(path):
  attr = struct.pack("QQQQ", _MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID, 0, 0, 0)
  buf = ctypes.create_string_buffer(attr, len(attr))
  _check(
      _libc.syscall(
          _SYS_MOUNT_SETATTR,
          _AT_FDCWD,
          path.encode(),
          _AT_RECURSIVE,
          buf,
          ctypes.c_size_t(len(attr)),
      ),
      f"mount_setattr {path}",
  )


# ----------------------------------------------------------------------------- framing


def _read_exact(fd, n):
  chunks = []
  while n:
    chunk = os.read(fd, n)
    if not chunk:
      return None
    chunks.append(chunk)
    n -= len(chunk)
  return b"".join(chunks)


def _read_frame(fd):
  head = _read_exact(fd, 4)
  if head is None:
    return None
  body = _read_exact(fd, struct.unpack(">I", head)[0])
  return None if body is None else marshal.loads(body)


def _write_frame(fd, obj):
  body = marshal.dumps(obj)
  data = memoryview(struct.pack(">I", len(body)) + body)
  while data:
    data = data[os.write(fd, data) :]


# ----------------------------------------------------------------------------- setup


def _needed_paths():
  """Directories the interpreter needs to import stdlib / site-packages modules."""
  paths = {
      sys.prefix,
      sys.base_prefix,
      sys.exec_prefix,
      os.path.dirname(os.path.realpath(sys.executable)),
  }
  script_dir = os.path.dirname(os.path.abspath(__file__))
  for p in sys.path:
    if p and os.path.isdir(p) and os.path.abspath(p) != script_dir:
      paths.add(os.path.realpath(p))
  return sorted(paths)


def _under(path, root):
  return path == root or path.startswith(root.rstrip("/") + "/")


def _setup_mounts(cfg):
  """Private, read-only view of the filesystem; hidden home/work trees; fresh /tmp, /proc."""
  _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
  _mount("tmpfs", "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, "size=4m,mode=0700")
  needed = _needed_paths()
  for i, hidden in enumerate(cfg["hide"]):
    if not os.path.isdir(hidden) or os.path.islink(hidden):
      continue
    if any(_under(hidden, p) for p in needed):
      continue  # the interpreter lives at or above this directory: keep it
    keep = [p for p in needed if _under(p, hidden)]
    keep = [p for p in keep if not any(q != p and _under(p, q) for q in keep)]
    staged = []
    for j, path in enumerate(keep):
      stage = f"/tmp/stage-{i}-{j}"
      os.mkdir(stage)
      _mount(path, stage, None, _MS_BIND | _MS_REC)
      staged.append((stage, path))
    _mount("tmpfs", hidden, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,mode=0755")
    for stage, path in staged:
      os.makedirs(path, mode=0o755, exist_ok=True)
      _mount(stage, path, None, _MS_MOVE)
  _make_tree_readonly("/")
  _mount(
      "tmpfs",
      "/tmp",
      "tmpfs",
      _MS_NOSUID | _MS_NODEV,
      f"size={int(cfg['tmpfs_bytes'])},nr_inodes=16384,mode=0711",
  )
  _mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC | _MS_RDONLY)


def _enter_namespaces(cfg):
  """Returns True when this process is now PID 1 of fresh PID/net/mount namespaces."""
  if os.geteuid() != 0 or not cfg["isolate"]:
    return False
  if _libc.unshare(_CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWNET) != 0:
    return False
  pid = os.fork()
  if pid:
    # Outer shell: keeps nothing open, lives as long as the namespace's init.
    for fd in (0, 1):
      os.close(fd)
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
  _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
  _setup_mounts(cfg)
  return True


# ----------------------------------------------------------------------------- the job child


class _OutputTooLarge(Exception):
  """Raised inside a job when its captured stdout/stderr passes the cap."""


def _capped_sink(cap):
  """A text sink for stdout/stderr that keeps at most `cap` characters, then refuses
  writes (raising _OutputTooLarge).

  Returns (sink, parts, state): the kept strings and [size, overflowed]. They live only in
  this closure, not in attributes, so a job rewriting `sys.stdout` (its attributes, its
  class, or the name itself) cannot change what the child reports; the builtins the sink
  uses are bound here, before any job code runs.
  """
  parts, state = [], [0, False]
  is_str, plain, length = str.__instancecheck__, str.__str__, len
  type_name = type.__dict__["__name__"].__get__
  type_, too_large, type_error = type, _OutputTooLarge, TypeError

  class CappedText(io.TextIOBase):

    def writable(self):
      return True

    def write(self, s):
      if not is_str(s):
        raise type_error(f"write() argument must be str, not {type_name(type_(s))}")
      room = cap - state[0]
      if length(s) > room:
        parts.append(plain(s)[: room if room > 0 else 0])
        state[0], state[1] = cap, True
        raise too_large("captured output exceeds the limit")
      parts.append(plain(s))
      state[0] += length(s)
      return length(s)

  return CappedText(), parts, state


def _run_and_report(source, call, max_repr_chars, parts, state, result_fd):
  """Runs the job, then writes its result to `result_fd` and exits. Never returns.

  Result fields: status, output (exact `str` of `repr(f(...))`), error type, error
  message, captured stdout. Everything used once job code has started is a local of this
  frame, bound before the job runs, or a method of a built-in (immutable) type: the job
  may rebind builtins (through `builtins`, `__builtins__`, `len.__self__`, frames'
  `f_builtins`/`f_globals`, `sys.modules['builtins']`), module attributes (`os.write`,
  `sys.stdout`, this module's functions and their `__code__`) and `sys.modules`, and none
  of that changes the report. Not covered: writing this frame's locals through a trace
  function or ctypes, and writing to the result pipe directly; they need frame or memory
  access that the static check rejects for proposals.
  """
  repr_, str_, type_, plain = repr, str, type, str.__str__
  type_name, length, join = type.__dict__["__name__"].__get__, len, "".join
  exec_, eval_, write, exit_, view = exec, eval, os.write, os._exit, memoryview
  base_exception, memory_error, too_large = BaseException, MemoryError, _OutputTooLarge
  big = "output_too_large", None, "OutputTooLarge", "captured output exceeds the limit"
  try:
    program = compile(source, "<program>", "exec")
    call_code = None if call is None else compile(call, "<call>", "eval")
    namespace = {"__name__": "program", "__builtins__": builtins}
    exec_(program, namespace)
    if call_code is None:
      result = "ok", None, None, None
    else:
      text = plain(repr_(eval_(call_code, namespace)))
      if length(text) > max_repr_chars:
        result = (
            "output_too_large",
            None,
            "OutputTooLarge",
            f"repr of the result has {length(text)} characters",
        )
      else:
        result = "ok", text, None, None
    if state[1]:
      result = big
  except memory_error:
    result = "memory", None, "MemoryError", "memory limit exceeded"
  except too_large:
    result = big
  except base_exception as exc:  # noqa: BLE001 - anything the program raises is a result
    try:
      message = plain(str_(exc))[:2000]
    except base_exception:  # noqa: BLE001 - hostile __str__
      message = "<unprintable exception>"
    result = big if state[1] else ("error", None, type_name(type_(exc)), message)
  try:
    fields = []
    for field in result + (join(parts),):
      if field is None:
        fields.append(b"-")
      else:
        raw = plain(field).encode("utf-8", "surrogatepass")
        fields.append(b"%d:%s" % (length(raw), raw))
    data = view(b",".join(fields))
    while data:
      data = data[write(result_fd, data) :]
  except base_exception:  # noqa: BLE001
    exit_(72)
  exit_(0)


def _decode_result(data):
  """Parses the netstring-like fields written by `_run_and_report` (`-` for None,
  `<n>:<n bytes>` for str, comma-separated); raises ValueError on anything malformed."""
  fields, pos, n = [], 0, len(data)
  while True:
    if data[pos : pos + 1] == b"-":
      fields.append(None)
      pos += 1
    else:
      colon = data.index(b":", pos, pos + 12)
      size = int(data[pos:colon])
      if size < 0 or colon + 1 + size > n:
        raise ValueError("bad length")
      fields.append(data[colon + 1 : colon + 1 + size].decode("utf-8", "surrogatepass"))
      pos = colon + 1 + size
    if pos == n:
      return fields
    if data[pos : pos + 1] != b",":
      raise ValueError("bad separator")
    pos += 1


def _child_main(source, call, cfg, result_fd, job_dir, uid, sink):
  """In the forked child: confine, run, report, exit. Never returns.

  `sink` is the worker's (sink, parts, state) from `_capped_sink`: the worker never
  writes to it, so every forked child starts with an empty copy of its own.
  """
  try:
    # Own process group, not own session: setsid() costs ~2 ms here (it creates a
    # scheduler autogroup), and a non-leader cannot acquire a controlling terminal.
    # The tree kill does not depend on it (namespace init / job uid, see Worker).
    os.setpgid(0, 0)
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
      os.dup2(devnull, fd)
    os.closerange(3, result_fd)
    os.closerange(result_fd + 1, 1 << 20)
    cpu = max(1, int(-(-cfg["cpu_s"] // 1)))
    for which, value in (
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (cfg["memory_bytes"],) * 2),
        (resource.RLIMIT_FSIZE, (cfg["file_bytes"],) * 2),
        (resource.RLIMIT_NOFILE, (cfg["open_files"],) * 2),
        (resource.RLIMIT_NPROC, (cfg["max_processes"],) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
    ):
      resource.setrlimit(which, value)
    if uid is not None:
      os.setgroups([])
      os.setresgid(uid, uid, uid)
      os.setresuid(uid, uid, uid)
    # NO_NEW_PRIVS, SIGINT ignored, HOME/TMPDIR = job_dir: inherited from the worker.
    os.chdir(job_dir)
    sink, parts, state = sink
    sys.stdout = sys.stderr = sink
    max_repr_chars = int(cfg["max_repr_chars"])
    exit_ = os._exit
  except BaseException:  # noqa: BLE001
    os._exit(71)
  try:  # an exception the job throws into the reporting (from a signal handler, say)
    _run_and_report(source, call, max_repr_chars, parts, state, result_fd)
  finally:  # must not unwind into the worker's loop
    exit_(73)


# ----------------------------------------------------------------------------- the worker


class Worker:
  """Serves jobs one after another, each in a fresh confined child."""

  def __init__(self, cfg, namespaced):
    self.cfg = cfg
    self.namespaced = namespaced
    self.uid = cfg["uid"] if os.geteuid() == 0 else None
    if namespaced:
      self.jobs_root = "/tmp"
    else:
      self.jobs_root = cfg["workdir"]
      _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1)
    # One path, re-created empty for every job (jobs of a worker run one at a time).
    self.job_dir = os.path.join(self.jobs_root, "job")
    shutil.rmtree(self.job_dir, ignore_errors=True)
    os.environ["HOME"] = os.environ["TMPDIR"] = self.job_dir
    if "tempfile" in sys.modules:
      sys.modules["tempfile"].tempdir = self.job_dir
    _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # inherited by every job
    self.child_cpu, self.child_faults = 0.0, 0  # totals over all jobs, for diagnostics
    self.oom_control = cfg.get("memory_cgroup") and os.path.join(
        cfg["memory_cgroup"], "memory.oom_control"
    )
    self.oom_kills_seen = self._oom_kills()
    self.result_cap = 8 * (cfg["max_repr_chars"] + cfg["max_output_chars"]) + 65536
    self.sink = _capped_sink(cfg["max_output_chars"])  # each job forks a fresh copy

  def _oom_kills(self):
    """OOM kills so far in the worker's memory cgroup (0 without one)."""
    try:
      with open(self.oom_control) as f:
        for line in f:
          if line.startswith("oom_kill "):
            return int(line.split()[1])
    except (OSError, TypeError, ValueError):
      pass
    return 0

  # -- killing a job's leftovers
  def _kill_all(self, sig):
    if self.namespaced:
      try:
        os.kill(-1, sig)  # init: everything in the namespace but itself
      except (ProcessLookupError, PermissionError):
        pass
    elif self.uid is not None:
      pid = os.fork()
      if pid == 0:
        try:
          os.setresuid(self.uid, self.uid, self.uid)
          os.kill(-1, sig)  # every process of the job's unique uid
        except BaseException:  # noqa: BLE001
          pass
        os._exit(0)
      os.waitpid(pid, 0)
    else:
      for child in self._descendants():
        try:
          os.kill(child, sig)
        except OSError:
          pass

  @staticmethod
  def _descendants():
    out, frontier = [], [os.getpid()]
    while frontier:
      pid = frontier.pop()
      try:
        for tid in os.listdir(f"/proc/{pid}/task"):
          with open(f"/proc/{pid}/task/{tid}/children") as f:
            kids = [int(x) for x in f.read().split()]
          out.extend(kids)
          frontier.extend(kids)
      except OSError:
        continue
    return out

  def _reap_leftovers(self):
    while True:
      try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
      except ChildProcessError:
        return
      if pid == 0:
        self._kill_all(signal.SIGKILL)
        try:
          os.waitpid(-1, 0)
        except ChildProcessError:
          return

  # -- one job
  def run(self, source, call):
    cfg = self.cfg
    job_dir = self.job_dir
    os.mkdir(job_dir, 0o700)
    if self.uid is not None:
      os.chown(job_dir, self.uid, self.uid)
    rfd, wfd = os.pipe()
    gc.freeze()  # the child's collections then never walk (and copy) the worker's objects
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
      os.close(rfd)
      _child_main(source, call, cfg, wfd, job_dir, self.uid, self.sink)
    os.close(wfd)
    os.set_blocking(rfd, False)
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(rfd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    data = bytearray()
    deadline = start + cfg["timeout_s"]
    exited = timed_out = too_big = False
    while not (exited or too_big):
      wait_ms = (deadline - time.monotonic()) * 1000
      if wait_ms <= 0:
        timed_out = True
        break
      for fd, _ in poller.poll(wait_ms):
        if fd == pidfd:
          exited = True
        elif not self._drain(rfd, data, poller):
          too_big = True
    if exited:
      too_big = not self._drain(rfd, data, None)
    seconds = time.monotonic() - start
    if not exited:
      self._kill_all(signal.SIGTERM)
      if not select.select([pidfd], [], [], cfg["kill_grace_s"])[0]:
        self._kill_all(signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    self.child_cpu += usage.ru_utime + usage.ru_stime
    self.child_faults += usage.ru_minflt
    self._reap_leftovers()
    os.close(rfd)
    os.close(pidfd)
    try:
      os.rmdir(job_dir)
    except OSError:
      shutil.rmtree(job_dir, ignore_errors=True)
    if timed_out:
      return [
          "timeout",
          None,
          "Timeout",
          f"wall-clock limit of {cfg['timeout_s']} s exceeded",
          seconds,
          "",
      ]
    if too_big:
      return [
          "output_too_large",
          None,
          "OutputTooLarge",
          "result message exceeds the limit",
          seconds,
          "",
      ]
    return self._classify(status, usage, bytes(data)) + [seconds] + [self._stdout]

  def _drain(self, rfd, data, poller):
    """Reads what is available; False when the result passes the cap."""
    while True:
      try:
        chunk = os.read(rfd, 65536)
      except BlockingIOError:
        return True
      if not chunk:
        if poller is not None:
          poller.unregister(rfd)
        return True
      data += chunk
      if len(data) > self.result_cap:
        return False

  def _classify(self, status, usage, data):
    self._stdout = ""
    if os.WIFSIGNALED(status):
      sig = os.WTERMSIG(status)
      cpu = usage.ru_utime + usage.ru_stime
      if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= self.cfg["cpu_s"]):
        return ["timeout", None, "Timeout", f"CPU limit of {self.cfg['cpu_s']} s exceeded"]
      if sig == signal.SIGKILL and self._oom_kills() > self.oom_kills_seen:
        self.oom_kills_seen = self._oom_kills()
        return ["memory", None, "MemoryError", "killed by the out-of-memory killer"]
      name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
      return ["error", None, "Crash", f"killed by signal {name}"]
    code = os.WEXITSTATUS(status)
    try:
      parsed = _decode_result(data) if data else None
    except ValueError:  # includes UnicodeDecodeError
      parsed = None
    if (
        code != 0
        or not isinstance(parsed, list)
        or len(parsed) != 5
        or parsed[0] not in _CHILD_STATUSES
        or not all(x is None or type(x) is str for x in parsed[1:])
    ):
      return ["error", None, "NoResult", f"the program exited with code {code} without a result"]
    self._stdout = parsed[4] or ""
    return parsed[:4]


def main():
  cfg = json.loads(sys.argv[1])
  # Started with -S (no .pth processing: it imports modules that make every fork dearer);
  # site-packages stay importable for jobs.
  import site

  sys.path.extend(p for p in site.getsitepackages() if p not in sys.path)
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
  if cfg["owner_pid"] and os.getppid() != cfg["owner_pid"]:
    os._exit(0)  # the owner is already gone
  for path in cfg.get("cgroup_procs", ()):
    try:
      with open(path, "w") as f:
        f.write(str(os.getpid()))
    except OSError:
      pass
  try:  # the worker and every job it forks are the first victims of the OOM killer
    with open("/proc/self/oom_score_adj", "w") as f:
      f.write("1000")
  except OSError:
    pass
  namespaced = _enter_namespaces(cfg)
  os.environ.clear()  # jobs see only PATH, LANG, HOME and TMPDIR
  os.environ.update(PATH="/usr/bin:/bin", LANG="C.UTF-8")
  for name in cfg["preload"]:
    try:
      __import__(name)
    except Exception:  # noqa: BLE001
      pass
  worker = Worker(cfg, namespaced)
  gc.collect()
  gc.freeze()
  _write_frame(
      1,
      (
          "hello",
          {
              "namespaced": namespaced,
              "pid": os.getpid(),
              "uid": worker.uid,
              "hash_seed": os.environ.get("PYTHONHASHSEED"),
          },
      ),
  )
  while True:
    batch = _read_frame(0)
    if batch is None:
      break
    if batch == "stats":  # diagnostics: CPU of this worker and of its job children
      own = resource.getrusage(resource.RUSAGE_SELF)
      _write_frame(
          1,
          (
              "stats",
              {
                  "worker_cpu_s": own.ru_utime + own.ru_stime,
                  "job_cpu_s": worker.child_cpu,
                  "job_minor_faults": worker.child_faults,
              },
          ),
      )
      continue
    for job_id, source, call in batch:
      try:
        result = worker.run(source, call)
      except Exception as exc:  # noqa: BLE001 - worker-side failure, report it
        worker._reap_leftovers()
        result = ["error", None, "SandboxError", f"{type(exc).__name__}: {exc}", 0.0, ""]
      _write_frame(1, (job_id, *result))
  os._exit(0)


if __name__ == "__main__":
  main()
