"""Hostile programs: each is contained, gets the right status, and leaves nothing behind.

All programs run in one batch (as the self-play loop would send them); each test then
checks its own result. Expected statuses come from what each program does, not from
running it elsewhere.
"""

import os
import signal
import textwrap
import time
import uuid

import pytest

from absolute_zero.sandbox import Job
from absolute_zero.tasks.grading import grade_abduction, grade_induction
from absolute_zero.tasks.validators import validate_proposals
from tests.sandbox.conftest import job_uids, processes_of_uids

MARK = uuid.uuid4().hex  # names of files that hostile programs try to create on the host
HOST_FILES = [
    f"/tmp/azr-hostile-{MARK}",
    f"/work/azr-hostile-{MARK}",
    f"/etc/azr-hostile-{MARK}",
    f"/dev/shm/azr-hostile-{MARK}",
    f"/root/azr-hostile-{MARK}",
]


def _p(src: str) -> str:
  return textwrap.dedent(src).strip() + "\n"


# name -> (source, call, allowed statuses, expected error_type or None)
HOSTILE = {
    "infinite_loop": (
        _p("""
        def f():
            while True:
                pass
        """),
        "f()",
        {"timeout"},
        None,
    ),
    "loop_ignoring_sigterm": (
        _p("""
        import signal
        def f():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGXCPU, signal.SIG_IGN)
            while True:
                pass
        """),
        "f()",
        {"timeout"},
        None,
    ),
    "blocking_sleep": (
        _p("""
        import select
        def f():
            select.select([], [], [], 1000)
        """),
        "f()",
        {"timeout"},
        None,
    ),
    "self_stop": (
        _p("""
        import os, signal
        def f():
            os.kill(os.getpid(), signal.SIGSTOP)
            return 1
        """),
        "f()",
        {"timeout"},
        None,
    ),
    "fork_bomb": (
        _p("""
        import os
        def f():
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
        """),
        "f()",
        {"timeout"},
        None,
    ),
    "forked_child_spins": (
        _p("""
        import os
        def f():
            if os.fork() == 0:
                while True:
                    pass
            return 'parent done'
        """),
        "f()",
        {"ok"},
        None,
    ),
    "setsid_double_fork_daemon": (
        _p("""
        import os, select
        def f():
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    select.select([], [], [], 1000)
                os._exit(0)
            return 'daemonised'
        """),
        "f()",
        {"ok"},
        None,
    ),
    "detached_subprocess": (
        _p("""
        import subprocess
        def f():
            subprocess.Popen(['sleep', '1000'], start_new_session=True)
            return 'started'
        """),
        "f()",
        {"ok"},
        None,
    ),
    "memory_bomb": (
        _p("""
        def f():
            return len(bytearray(4 << 30))
        """),
        "f()",
        {"memory"},
        "MemoryError",
    ),
    "memory_growth": (
        _p("""
        def f():
            chunks = []
            while True:
                chunks.append('x' * (1 << 20))
        """),
        "f()",
        {"memory"},
        "MemoryError",
    ),
    "memory_bomb_in_children": (
        _p("""
        import os
        def f():
            for _ in range(8):
                if os.fork() == 0:
                    try:
                        b = bytearray(400 << 20)
                        while True:
                            pass
                    finally:
                        os._exit(0)
            return 'forked'
        """),
        "f()",
        {"ok"},
        None,
    ),
    "deep_recursion": (
        _p("""
        def f(n=0):
            return f(n + 1)
        """),
        "f()",
        {"error"},
        "RecursionError",
    ),
    "c_stack_overflow": (
        _p("""
        import sys
        def f():
            sys.setrecursionlimit(10 ** 8)
            def g(n):  # recursion through C (map), so the C stack overflows
                return list(map(g, [n + 1]))
            return g(0)
        """),
        "f()",
        {"error"},
        "Crash",
    ),
    "huge_print": (
        _p("""
        def f():
            for _ in range(100000):
                print('spam' * 100)
            return 1
        """),
        "f()",
        {"output_too_large"},
        "OutputTooLarge",
    ),
    "huge_raw_write_to_stdout": (
        _p("""
        import os
        def f():
            for _ in range(1000):
                os.write(1, b'x' * 65536)
                os.write(2, b'y' * 65536)
            return 'wrote'
        """),
        "f()",
        {"ok"},
        None,
    ),
    "huge_return_value": (
        _p("""
        def f():
            return 'x' * (10 ** 7)
        """),
        "f()",
        {"output_too_large"},
        "OutputTooLarge",
    ),
    "huge_repr": (
        _p("""
        class Big:
            def __repr__(self):
                return 'y' * (10 ** 7)
        def f():
            return Big()
        """),
        "f()",
        {"output_too_large"},
        "OutputTooLarge",
    ),
    "repr_loops_forever": (
        _p("""
        class Slow:
            def __repr__(self):
                while True:
                    pass
        def f():
            return Slow()
        """),
        "f()",
        {"timeout"},
        None,
    ),
    "repr_raises": (
        _p("""
        class Bad:
            def __repr__(self):
                raise RuntimeError('no repr for you')
        def f():
            return Bad()
        """),
        "f()",
        {"error"},
        "RuntimeError",
    ),
    "repr_returns_str_subclass": (
        _p("""
        class S(str):
            def __str__(self):
                return 'forged'
            def __len__(self):
                return 0
        class R:
            def __repr__(self):
                return S('plain')
        def f():
            return R()
        """),
        "f()",
        {"ok"},
        None,
    ),
    "write_outside_temp_dir": (
        _p(f"""
        def f():
            errors = []
            for path in {HOST_FILES!r}:
                try:
                    with open(path, 'w') as fh:
                        fh.write('pwned')
                    errors.append('WROTE ' + path)
                except OSError as e:
                    errors.append(type(e).__name__)
            return errors
        """),
        "f()",
        {"ok"},
        None,
    ),
    "write_in_cwd": (
        _p("""
        import os
        def f():
            with open('scratch.txt', 'w') as fh:
                fh.write('hello')
            os.mkdir('sub')
            open('sub/x', 'w').close()
            return sorted(os.listdir('.'))
        """),
        "f()",
        {"ok"},
        None,
    ),
    "huge_file": (
        _p("""
        def f():
            with open('big.bin', 'wb') as fh:
                for _ in range(1000):
                    fh.write(b'z' * (1 << 20))
        """),
        "f()",
        {"error"},
        None,
    ),
    "read_environment": (
        _p("""
        import os
        def f():
            out = sorted(os.environ)
            for pid in ('1', str(os.getppid())):
                try:
                    open('/proc/' + pid + '/environ').read()
                    out.append('READ ' + pid)
                except OSError as e:
                    out.append(type(e).__name__)
            return out
        """),
        "f()",
        {"ok"},
        None,
    ),
    "list_processes": (
        _p("""
        import os
        def f():
            return len([p for p in os.listdir('/proc') if p.isdigit()])
        """),
        "f()",
        {"ok"},
        None,
    ),
    "network_connect": (
        _p("""
        import socket
        def f():
            s = socket.create_connection(('127.0.0.1', 22), timeout=1)
            return 'connected'
        """),
        "f()",
        {"error"},
        None,
    ),
    "network_external_udp": (
        _p("""
        import socket
        def f():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b'x', ('8.8.8.8', 53))
            return 'sent'
        """),
        "f()",
        {"error"},
        None,
    ),
    "network_loopback_roundtrip": (
        _p("""
        import socket
        def f():
            srv = socket.socket()
            srv.bind(('127.0.0.1', 0))
            srv.listen()
            socket.create_connection(srv.getsockname(), timeout=1)
            return 'connected'
        """),
        "f()",
        {"error"},
        None,
    ),
    "kill_parent": (
        _p("""
        import os, signal
        def f():
            os.kill(os.getppid(), signal.SIGKILL)
            return 'sent'
        """),
        "f()",
        {"error"},
        "PermissionError",
    ),
    "kill_parent_group_and_all": (
        _p("""
        import os, signal
        def f():
            results = []
            group = os.getpgid(os.getppid())
            for target in (lambda: os.kill(os.getppid(), signal.SIGKILL),
                           lambda: os.kill(os.getppid(), signal.SIGTERM),
                           lambda: os.killpg(group, signal.SIGKILL) if group > 0 else None):
                try:
                    results.append('sent' if target() is None and group > 0 else 'no group')
                except OSError as e:
                    results.append(type(e).__name__)
            return results
        """),
        "f()",
        {"ok"},
        None,
    ),
    "kill_everything": (
        _p("""
        import os, signal
        def f():
            os.kill(-1, signal.SIGKILL)
            return 'survived'
        """),
        "f()",
        {"error"},
        None,
    ),
    "os_exit": (
        _p("""
        import os
        def f():
            os._exit(0)
        """),
        "f()",
        {"error"},
        "NoResult",
    ),
    "sys_exit": (
        _p("""
        import sys
        def f():
            sys.exit(3)
        """),
        "f()",
        {"error"},
        "SystemExit",
    ),
    "close_inherited_fds": (
        _p("""
        import os
        def f():
            os.closerange(0, 4096)
            return 'closed'
        """),
        "f()",
        {"error"},
        "NoResult",
    ),
    "write_garbage_to_fds": (
        _p("""
        import os
        def f():
            for fd in range(3, 256):
                try:
                    os.write(fd, b'\\x00\\x00\\x00\\x10garbage-garbage!' * 10)
                except OSError:
                    pass
            return 'done'
        """),
        "f()",
        {"error"},
        "NoResult",
    ),
    "thread_outlives_f": (
        _p("""
        import threading
        def spin():
            while True:
                pass
        def f():
            threading.Thread(target=spin).start()
            return 'returned'
        """),
        "f()",
        {"ok"},
        None,
    ),
    "thread_spam": (
        _p("""
        import threading, select
        def f():
            n = 0
            try:
                while True:
                    threading.Thread(target=select.select, args=([], [], [], 1000), daemon=True).start()
                    n += 1
            except RuntimeError:
                return 'limited'
        """),
        "f()",
        {"ok", "memory", "error"},
        None,
    ),
    "become_root_again": (
        _p("""
        import os
        def f():
            os.setuid(0)
        """),
        "f()",
        {"error"},
        "PermissionError",
    ),
    "mount_and_unshare": (
        _p("""
        import ctypes
        def f():
            libc = ctypes.CDLL(None, use_errno=True)
            return [libc.mount(b'none', b'/', None, 32 | 1 << 5, None),
                    libc.unshare(0x20000000), libc.umount2(b'/tmp', 2)]
        """),
        "f()",
        {"ok"},
        None,
    ),
    "abort": (
        _p("""
        import os
        def f():
            os.abort()
        """),
        "f()",
        {"error"},
        "Crash",
    ),
    "exception_with_hostile_str": (
        _p("""
        class E(Exception):
            def __str__(self):
                raise ValueError('nope')
        def f():
            raise E()
        """),
        "f()",
        {"error"},
        "E",
    ),
    "random_via_dunder_import_runs_contained": (
        _p("""
        def f():
            return __import__('ran' + 'dom').random() < 2
        """),
        "f()",
        {"ok"},
        None,
    ),
}


@pytest.fixture(scope="module")
def hostile_results(pool):
  names = list(HOSTILE)
  jobs = [Job(HOSTILE[n][0], HOSTILE[n][1]) for n in names]
  jobs.append(Job("def f():\n    return sorted(__import__('os').listdir('.'))\n", "f()"))
  results = pool.run_batch(jobs)
  time.sleep(0.2)
  leftovers = processes_of_uids(job_uids(pool))
  return dict(zip(names, results)), results[-1], leftovers


def test_suite_has_at_least_40_programs():
  assert len(HOSTILE) + 9 >= 40  # + the verdict/validation attacks below


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_program_is_contained(name, hostile_results, pool):
  results, _, leftovers = hostile_results
  _, _, statuses, error_type = HOSTILE[name]
  r = results[name]
  assert r.status in statuses, (name, r)
  if error_type is not None:
    assert r.error_type == error_type, (name, r)
  assert leftovers == [], f"processes left behind: {leftovers}"
  assert r.seconds < pool.limits.timeout_s + 5
  if r.status == "ok":
    assert type(r.output) is str


def test_writes_outside_temp_dir_fail_and_leave_no_file(hostile_results):
  results, _, _ = hostile_results
  out = results["write_outside_temp_dir"].output
  assert "WROTE" not in out
  for path in HOST_FILES:
    assert not os.path.exists(path)


def test_temp_dir_is_fresh_for_every_job(hostile_results):
  results, last, _ = hostile_results
  assert results["write_in_cwd"].output == "['scratch.txt', 'sub']"
  assert last.output == "[]"


def test_environment_is_minimal_and_other_processes_unreadable(hostile_results):
  results, _, _ = hostile_results
  out = eval(results["read_environment"].output)  # plain list of str from our own test
  assert out[:-2] == ["HOME", "LANG", "PATH", "TMPDIR"]
  assert all(x.endswith("Error") for x in out[-2:]), out


def test_job_sees_only_its_namespace(hostile_results, pool):
  if not pool.namespaced:
    pytest.skip("no PID namespace on this machine")
  assert int(hostile_results[0]["list_processes"].output) <= 3


def test_signals_to_parent_are_refused(hostile_results):
  results, _, _ = hostile_results
  out = eval(results["kill_parent_group_and_all"].output)  # plain list from our own test
  assert out[:2] == ["PermissionError"] * 2
  assert out[2] in ("PermissionError", "no group"), out


def test_mount_and_unshare_are_refused(hostile_results):
  assert eval(hostile_results[0]["mount_and_unshare"].output) == [-1, -1, -1]


def test_repr_of_str_subclass_is_plain(hostile_results):
  assert hostile_results[0]["repr_returns_str_subclass"].output == "plain"


def test_owner_and_workers_survive_and_answer(hostile_results, pool):
  worker_pids = pool.worker_pids()
  r = pool.run_batch([Job("def f(a, b):\n    return a * b\n", "f(6, 7)")])[0]
  assert (r.status, r.output) == ("ok", "42")
  assert all(os.path.exists(f"/proc/{pid}") for pid in worker_pids)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "name,source,status",
    [
        ("dunder_import", "def f(x):\n    return __import__('random').random()\n", "banned"),
        (
            "importlib",
            "import importlib\ndef f(x):\n    return importlib.import_module('random')\n",
            "banned",
        ),
        (
            "getattr_builtins",
            "import builtins\ndef f(x):\n    return getattr(builtins, '__import__')('time')\n",
            "banned",
        ),
        (
            "string_concat",
            "def f(x):\n    return getattr(__builtins__, '__imp' + 'ort__')('ran' + 'dom')\n",
            "banned",
        ),
        ("exec", "def f(x):\n    exec('import random')\n    return x\n", "banned"),
        (
            "subclass_walk",
            "def f(x):\n    return ().__class__.__base__.__subclasses__()\n",
            "banned",
        ),
        ("id", "def f(x):\n    return id(x) % 1000003\n", "nondeterministic"),
        ("string_hash", "def f(x):\n    return hash(x)\n", "nondeterministic"),
        (
            "set_order",
            "def f(x):\n    return list({x + str(i) for i in range(30)})\n",
            "nondeterministic",
        ),
        ("object_repr", "def f(x):\n    return object()\n", "nondeterministic"),
    ],
)
def test_validation_rejects(pool, name, source, status):
  v = validate_proposals(pool, [(source, "'abc'")])[0]
  assert (v.valid, v.status) == (False, status), (name, v)


def test_forged_verdicts_fail(pool):
  always_equal = (
      "class Any:\n    def __eq__(self, other):\n        return True\n"
      "    def __repr__(self):\n        return 'Any()'\n"
      "def f(x):\n    return Any()\n"
  )
  frame_reader = (
      "import sys\ndef f(x):\n    fr = sys._getframe()\n    seen = []\n"
      "    while fr is not None:\n        seen.extend(str(v) for v in fr.f_locals.values())\n"
      "        fr = fr.f_back\n    return [s for s in seen if 'SECRET' in s][:1] or x\n"
  )
  writes_result_fd = (
      "import os\ndef f(x):\n    for fd in range(3, 64):\n        try:\n"
      "            os.write(fd, b'2:ok,10:'SECRET-42',-,-,0:')\n"
      "        except OSError:\n            pass\n    os._exit(0)\n"
  )
  prints_answer = "def f(x):\n    print(\"'SECRET-42'\")\n    return None\n"
  cases = [
      (src, [("1", "'SECRET-42'")])
      for src in (always_equal, frame_reader, writes_result_fd, prints_answer)
  ]
  assert grade_induction(pool, cases) == [False] * 4
  identity = "def f(x):\n    return x\n"
  answers = [
      "(f := lambda *a: 'SECRET-42')",
      "__import__('os')._exit(0)",
      "type('X', (), {'__repr__': lambda s: \"'SECRET-42'\"})()",
      "'SECRET-42'",
  ]
  got = grade_abduction(pool, [(identity, a, "'SECRET-42'") for a in answers])
  assert got == [False, False, False, True]
  got = grade_abduction(
      pool, [(identity, a, "'SECRET-42'") for a in answers[:3]], allow_expressions=True
  )
  assert got == [False, False, False]
