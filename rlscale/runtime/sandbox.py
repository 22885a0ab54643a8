"""Run an untrusted Python solution against a test program in a separate, limited process.

What :func:`run_tests` does, in layers (each one on its own is not enough):

* **a separate process** in a new session (its own process group), started with ``python -I -S``
  (isolated mode: no ``PYTHON*`` variables, no user site, no ``site-packages``: the standard
  library only) with a **minimal environment** (``PATH``, ``LANG``, ``HOME`` set to the working
  directory; no inherited variables, so no secrets) in an **empty temporary working directory**
  that is deleted afterwards;
* **resource limits** (``setrlimit``): CPU seconds, address space, size of any one written file,
  open files, no core dumps, and the process count;
* **an unprivileged uid** when the caller is root: each run gets a uid of its own (no passwd
  entry, no groups), so it cannot read root's files (``/root/.ssh``), signal the grader or other
  runs, and ``RLIMIT_NPROC`` binds (it does not for root); every process of that uid is killed
  when the run ends, including children that left the process group (and, at the next run,
  those of a run whose grading process was killed before it could clean up). This needs a Python
  interpreter that the unprivileged uid can execute (the running one if its directories are
  world-readable, else ``/usr/bin/python3``); without one, or when not root, the run keeps the
  caller's uid and a warning says so once;
* **no network**: a new network namespace (``unshare(CLONE_NEWNET)``: only a loopback device,
  down) when the kernel allows it here, else a warning once; in every case an audit hook in the harness
  refuses socket creation, ``ctypes``, ``subprocess`` and ``os.system``/``exec``/``spawn``
  before the solution runs (a Python-level guard, not a security boundary by itself);
* **a wall-clock limit**, after which the whole process group (and the uid's processes) is
  killed with SIGKILL; the parent-death signal kills the harness if the grader dies first.

What it does **not** protect against: kernel exploits; a solution that inspects the harness's
own memory to fake a pass (the pass marker is a per-run secret passed on stdin and forgotten,
which stops ``exit(0)`` and printing tricks but not a determined attacker inside the same
interpreter); filling the disk with many files each under the size limit (the directory is
removed afterwards); reading world-readable files; without uid drop (not root), reading the
caller's files and signalling the caller's processes; without a network namespace, network
access through means the audit hook does not see. Run graders of untrusted code in a container
or VM if that matters.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass

# Outcomes of one run.
PASSED, FAILED, ERROR, TIMEOUT, BAD_TEST = "passed", "failed", "error", "timeout", "bad_test"

_UID_BASE = 1_000_000  # sandbox uids: far from any real account
_counter = 0
_counter_lock = threading.Lock()
_warned: set[str] = set()

_HARNESS = r'''
import sys
_secret = sys.stdin.readline().strip()
sys.stdin.close()
_BLOCKED_PREFIXES = ("socket.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn",
                     "os.system", "ctypes.", "os.forkpty")
_BLOCKED_IMPORTS = {"ctypes", "_ctypes", "socket", "_socket"}
def _guard(event, args):
    if event.startswith(_BLOCKED_PREFIXES) or (event == "import" and args[0] in _BLOCKED_IMPORTS):
        what = f"import {args[0]}" if event == "import" else event
        raise PermissionError(f"sandbox: {what} is not allowed")
def _main():
    import os
    with open("solution.py", encoding="utf-8") as f:
        solution = f.read()
    with open("test.py", encoding="utf-8") as f:
        test = f.read()
    try:
        test_code = compile(test, "test.py", "exec")
    except (SyntaxError, ValueError) as exc:
        print(f"test program does not compile: {type(exc).__name__}: {exc}", file=sys.stderr)
        os._exit(6)
    try:
        solution_code = compile(solution, "solution.py", "exec")
    except (SyntaxError, ValueError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        os._exit(5)
    sys.addaudithook(_guard)
    namespace = {"__name__": "__sandbox__", "__builtins__": __builtins__}
    try:
        exec(solution_code, namespace)
        exec(test_code, namespace)
    except AssertionError as exc:
        print(f"AssertionError: {exc}"[:300], file=sys.stderr)
        os._exit(3)
    except SystemExit as exc:
        print(f"SystemExit({exc.code!r}) before the tests finished", file=sys.stderr)
        os._exit(4)
    except BaseException as exc:
        print(f"{type(exc).__name__}: {exc}"[:300], file=sys.stderr)
        os._exit(4)
    sys.stdout.flush()
    sys.stdout.write("\n" + _secret + "\n")
    sys.stdout.flush()
    os._exit(0)
_main()
'''


@dataclass(frozen=True)
class Limits:
    """Per-run limits. ``wall``/``cpu`` in seconds, ``memory_mb`` of address space,
    ``file_mb`` per written file, ``processes`` for the run's uid (binds only with uid drop)."""

    wall: float = 5.0
    cpu: float = 5.0
    memory_mb: int = 512
    file_mb: int = 16
    processes: int = 32
    open_files: int = 64


@dataclass(frozen=True)
class RunResult:
    outcome: str  # passed, failed, error, timeout, bad_test
    reason: str | None
    isolation: tuple[str, ...]  # which layers were active ("uid", "netns", ...)


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"sandbox: {message}", RuntimeWarning, stacklevel=3)


def _world_executable(path: str) -> bool:
    """Can any uid execute ``path`` (every parent directory traversable, file o+rx)?"""
    path = os.path.realpath(path)
    try:
        mode = os.stat(path).st_mode
        if not (mode & stat.S_IXOTH and mode & stat.S_IROTH):
            return False
        parent = os.path.dirname(path)
        while True:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
            if parent == os.path.dirname(parent):
                return True
            parent = os.path.dirname(parent)
    except OSError:
        return False


_interpreter_cache: dict[bool, str | None] = {}


def interpreter(for_other_uid: bool) -> str | None:
    """The Python that runs solutions (the running one's base interpreter, else python3)."""
    if for_other_uid not in _interpreter_cache:
        base = getattr(sys, "_base_executable", None) or sys.executable
        candidates = [os.path.realpath(base), os.path.realpath(sys.executable)]
        found = shutil.which("python3", path="/usr/bin:/usr/local/bin:/bin")
        if found:
            candidates.append(os.path.realpath(found))
        chosen = None
        for candidate in candidates:
            if os.path.exists(candidate) and (not for_other_uid or _world_executable(candidate)):
                chosen = candidate
                break
        _interpreter_cache[for_other_uid] = chosen
    return _interpreter_cache[for_other_uid]


_CLONE_NEWNET = 0x40000000
_netns_ok: bool | None = None


def _enter_netns() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")


def _netns_works() -> bool:
    """Can a child enter a new network namespace here (root, or a permissive kernel)?"""
    global _netns_ok
    if _netns_ok is None:
        try:
            _netns_ok = subprocess.run([sys.executable, "-I", "-S", "-c", "pass"],
                                       preexec_fn=_enter_netns, capture_output=True,
                                       timeout=30).returncode == 0
        except (OSError, subprocess.SubprocessError):
            _netns_ok = False
    return _netns_ok


def _next_uid() -> int:
    global _counter
    with _counter_lock:
        _counter += 1
        return _UID_BASE + os.getpid() * 64 + _counter % 64  # the owner's pid is in the uid


def _owner_alive(uid: int) -> bool:
    return os.path.exists(f"/proc/{(uid - _UID_BASE) // 64}")


def _uid_processes(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real uid is ``uid``, and those of sandbox uids whose
    owner (the grading process that started them) is gone: a worker killed by its pool's
    timeout in the middle of a run cannot clean up after itself, so the next run does."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", encoding="ascii", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        if fields.get("State", "").strip().startswith("Z"):
            continue
        uids = fields.get("Uid", "").split()
        if not uids or not uids[0].isdigit():
            continue
        owner = int(uids[0])
        if owner == uid or (owner >= _UID_BASE and not _owner_alive(owner)):
            found.append(int(entry))
    return found


def _kill_uid(uid: int) -> None:
    for _ in range(50):
        pids = _uid_processes(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)


def _preexec(limits: Limits, uid: int | None, netns: bool):
    def setup() -> None:
        import resource

        if netns:
            _enter_netns()  # as root, before the uid drop
        def cap(which, value):
            resource.setrlimit(which, (value, value))

        cpu = max(1, int(limits.cpu + 0.999))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU first, then SIGKILL
        cap(resource.RLIMIT_AS, limits.memory_mb << 20)
        cap(resource.RLIMIT_FSIZE, limits.file_mb << 20)
        cap(resource.RLIMIT_NOFILE, limits.open_files)
        cap(resource.RLIMIT_CORE, 0)
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            cap(resource.RLIMIT_NPROC, limits.processes)
        try:  # PR_SET_PDEATHSIG (1) after the uid change, which clears it
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
        except Exception:
            pass
    return setup


def run_tests(solution: str, test_program: str, limits: Limits = Limits()) -> RunResult:
    """Run ``solution`` then ``test_program`` in the sandbox; see the module docstring.

    ``passed``: the tests ran to the end; ``failed``: an AssertionError; ``error``: any other
    exception, a syntax error, a signal, an exit before the tests finished; ``timeout``: the wall
    or CPU limit; ``bad_test``: the test program itself does not compile.
    """
    as_root = os.geteuid() == 0
    python = interpreter(for_other_uid=as_root)
    uid = None
    layers = ["rlimits", "session", "audit-hook"]
    if as_root and python is not None:
        uid = _next_uid()
        layers.append("uid")
    else:
        if as_root:
            _warn_once("uid", "no Python interpreter executable by an unprivileged uid; "
                       "solutions run as root")
        else:
            _warn_once("uid", "not root: solutions run as the calling user (they can read its "
                       "files; RLIMIT_NPROC counts all of its processes)")
        python = interpreter(for_other_uid=False) or sys.executable
    command = [python, "-I", "-S", "-c", _HARNESS]
    netns = _netns_works()
    if netns:
        layers.append("netns")
    else:
        _warn_once("netns", "no network namespace available: network is only blocked by the "
                   "harness's audit hook")
    secret = secrets.token_hex(16)
    workdir = tempfile.mkdtemp(prefix="rlscale-sandbox-")
    try:
        for name, text in (("solution.py", solution), ("test.py", test_program)):
            with open(os.path.join(workdir, name), "w", encoding="utf-8",
                      errors="surrogatepass") as f:
                f.write(text)
        if uid is not None:
            os.chown(workdir, uid, uid)
            os.chmod(workdir, 0o700)
            for name in ("solution.py", "test.py"):
                os.chown(os.path.join(workdir, name), uid, uid)
        out_path = os.path.join(workdir, ".stdout")
        err_path = os.path.join(workdir, ".stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            read_end, write_end = os.pipe()
            os.write(write_end, (secret + "\n").encode())
            os.close(write_end)
            if uid is not None:
                os.chown(out_path, uid, uid)
                os.chown(err_path, uid, uid)
            env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir}
            proc = subprocess.Popen(command, cwd=workdir, env=env, stdin=read_end, stdout=out,
                                    stderr=err, start_new_session=True,
                                    preexec_fn=_preexec(limits, uid, netns),
                                    close_fds=True)
            os.close(read_end)
            try:
                timed_out, code, cpu_used = _wait(proc, limits.wall)
            finally:  # the process group, and with uid drop every process of the uid
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                if uid is not None:
                    _kill_uid(uid)
                if proc.returncode is None:
                    proc.kill()
                    proc.wait()
        stdout = _tail(out_path)
        stderr = _tail(err_path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    isolation = tuple(layers)
    if timed_out:
        return RunResult(TIMEOUT, f"wall-clock limit {limits.wall:g} s", isolation)
    reason = stderr.strip().splitlines()[-1][:300] if stderr.strip() else None
    if code == 0:
        lines = stdout.rstrip("\n").splitlines()
        if lines and lines[-1] == secret:
            return RunResult(PASSED, None, isolation)
        return RunResult(ERROR, "exited before the tests finished", isolation)
    if code == 3:
        return RunResult(FAILED, reason or "AssertionError", isolation)
    if code == 6:
        return RunResult(BAD_TEST, reason, isolation)
    if code is not None and code < 0:
        sig = -code
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_used >= limits.cpu):
            return RunResult(TIMEOUT, f"CPU-time limit {limits.cpu:g} s", isolation)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
        return RunResult(ERROR, reason or f"killed by signal {name}", isolation)
    return RunResult(ERROR, reason or f"exit status {code}", isolation)


def _wait(proc: subprocess.Popen, wall: float) -> tuple[bool, int | None, float]:
    """Wait up to ``wall`` s: (timed out, exit code, CPU seconds the harness used)."""
    deadline = time.monotonic() + wall
    delay = 0.001
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return False, proc.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() >= deadline:
            return True, None, 0.0
        time.sleep(delay)
        delay = min(0.02, delay * 2)


def _tail(path: str, size: int = 4096) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
