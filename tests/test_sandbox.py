"""Security tests of the code sandbox: hostile solutions are contained, each gets a timeout or
error verdict, nothing is left running, and a stream of them goes on to the next item."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest

from rlscale.core.grading import Grader, GraderConfig, GradeTask
from rlscale.runtime import sandbox
from rlscale.runtime.sandbox import Limits, run_tests

TESTS = "def check(f):\n    assert f(3) == 9\ncheck(square)\n"
GOOD = "def square(x):\n    return x * x\n"
LIMITS = Limits(wall=3.0, cpu=2.0, memory_mb=256, file_mb=1, processes=8)
ROOT = os.geteuid() == 0
# the uid drop needs root and an interpreter every uid can execute
UID_DROP = ROOT and sandbox.interpreter(for_other_uid=True) is not None


def _in_this_test_process(pid: int) -> bool:
    """Whether ``pid`` is this pytest process or one of its descendants (a pool worker)."""
    me = os.getpid()
    while pid > 1:
        if pid == me:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])  # the parent's pid
        except (OSError, ValueError, IndexError):
            return False
    return False


def _sandbox_processes() -> list[int]:
    """Live processes owned by a sandbox uid (uids from the sandbox's private range) whose
    owner is this test process, one of its workers, or gone (a leftover). Sandbox runs of
    tests in another pytest worker, whose owners are alive, are not this test's business."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if status.get("State", "").strip().startswith("Z"):
            continue
        uid = int(status.get("Uid", "0").split()[0])
        if uid < sandbox._UID_BASE:
            continue
        owner = (uid - sandbox._UID_BASE) // 64  # the owner's pid is part of the uid
        if not os.path.exists(f"/proc/{owner}") or _in_this_test_process(owner):
            found.append(int(entry))
    return found


def run(solution: str):
    result = run_tests(solution, TESTS, LIMITS)
    assert _sandbox_processes() == []
    return result


def test_a_correct_solution_passes_and_a_wrong_one_fails():
    assert run(GOOD).outcome == sandbox.PASSED
    result = run("def square(x):\n    return x + x\n")
    assert result.outcome == sandbox.FAILED
    assert result.reason.startswith("AssertionError")


@pytest.mark.skipif(not UID_DROP, reason="RLIMIT_NPROC binds only with the uid drop")
def test_fork_bomb_is_bounded_and_nothing_survives():
    # bounded even without a sandbox: 40 sleeping children, never an exponential loop
    bomb = ("import os, time\nfor _ in range(40):\n    if os.fork() == 0:\n"
            "        time.sleep(600)\n        os._exit(0)\n")
    result = run(bomb)
    assert result.outcome == sandbox.ERROR
    assert "Resource temporarily unavailable" in result.reason  # RLIMIT_NPROC bound
    assert "uid" in result.isolation


def test_children_that_leave_the_process_group_are_killed():
    escape = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\n"
              "    os._exit(0)\nsquare = lambda x: x * x\n")
    assert run(escape).outcome == sandbox.PASSED


def test_unbounded_allocation_is_an_error_or_a_timeout():
    result = run("blob = bytearray(1 << 34)\n")
    assert (result.outcome, result.reason) == (sandbox.ERROR, "MemoryError:")
    growing = "chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 24))\n"
    assert run(growing).outcome in (sandbox.ERROR, sandbox.TIMEOUT)


def test_large_file_write_stops_at_the_size_limit():
    result = run("with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 65536)\n")
    assert result.outcome == sandbox.ERROR
    assert "File too large" in result.reason


def test_sockets_are_refused():
    # a real listener on 127.0.0.1: the solution must not reach it
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    connected = []

    def accept():
        try:
            connected.append(server.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        for solution in (
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}))\n",
            f"import _socket\n_socket.socket().connect(('127.0.0.1', {port}))\n",
            "import ctypes\n",
            "import subprocess\nsubprocess.run(['true'])\n",
            "import os\nos.system('true')\n",
        ):
            result = run(solution)
            assert result.outcome == sandbox.ERROR, solution
            assert "is not allowed" in result.reason, result.reason
    finally:
        thread.join()
        server.close()
    assert connected == []


@pytest.mark.skipif(not UID_DROP, reason="without the uid drop the caller's files are readable")
def test_secret_files_are_unreadable(tmp_path):
    secret_dir = tmp_path / ".ssh"
    secret_dir.mkdir(mode=0o700)
    (secret_dir / "id_ed25519").write_text("PRIVATE KEY")
    os.chmod(tmp_path, 0o755)
    result = run(f"print(open({str(secret_dir / 'id_ed25519')!r}).read())\n")
    assert result.outcome == sandbox.ERROR
    assert result.reason.startswith("PermissionError")
    result = run("import os\nprint(open(os.path.expanduser('~/.ssh/id_rsa')).read())\n")
    assert result.outcome == sandbox.ERROR


def test_environment_variables_are_not_inherited(monkeypatch):
    monkeypatch.setenv("RLSCALE_TEST_SECRET", "hunter2")
    leak = ("import os\nassert 'RLSCALE_TEST_SECRET' not in os.environ, 'leaked'\n"
            "assert set(os.environ) <= {'PATH', 'LANG', 'HOME', 'LC_CTYPE'}, sorted(os.environ)\n"
            "square = lambda x: x * x\n")
    assert run(leak).outcome == sandbox.PASSED


def test_sleeping_forever_times_out():
    result = run_tests("import time\ntime.sleep(600)\n", TESTS, Limits(wall=0.5))
    assert result.outcome == sandbox.TIMEOUT
    assert _sandbox_processes() == []


def test_spinning_hits_the_cpu_or_wall_limit():
    result = run_tests("while True:\n    pass\n", TESTS, Limits(wall=5.0, cpu=1.0))
    assert result.outcome == sandbox.TIMEOUT


@pytest.mark.skipif(not UID_DROP, reason="without the uid drop the solution may signal its parent "
                    "(here: pytest); in a Grader that is a pool worker, which is replaced")
def test_killing_the_parent_fails_and_the_grader_lives():
    result = run("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
                 "os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)\n")
    assert result.outcome == sandbox.ERROR
    assert result.reason.startswith("PermissionError")


def test_exiting_early_is_not_a_pass():
    for trick in ("import os\nos._exit(0)\n", "import sys\nsys.exit(0)\n",
                  "raise SystemExit\n", "print('\\n' * 3)\nimport os\nos._exit(0)\n"):
        assert run(trick).outcome == sandbox.ERROR, trick


def test_hostile_stream_goes_on():
    """All of them in one graded stream, two workers: each contained, the last item graded."""
    tests = json.dumps({"functional": TESTS})
    hostile = [
        "import os, time\nfor _ in range(20):\n    if os.fork() == 0:\n        time.sleep(600)\n",
        "blob = bytearray(1 << 34)\n",
        "with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 65536)\n",
        "import socket\nsocket.socket().connect(('127.0.0.1', 9))\n",
        "import time\ntime.sleep(600)\n",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
    ]
    items = [(i, GradeTask(f"```python\n{code}```", tests, "codegen__humaneval"))
             for i, code in enumerate(hostile + [GOOD])]
    with Grader(GraderConfig("paper"), workers=2, timeout=2.0) as grader:
        results = list(grader.stream(items))
    assert [key for key, _ in results] == list(range(len(items)))
    verdicts = [result.verdict for _, result in results]
    assert all(verdict in ("error", "timeout") for verdict in verdicts[:-1]), verdicts
    assert verdicts[4] == "timeout"
    assert verdicts[-1] == "correct"
    assert _sandbox_processes() == []


@pytest.mark.skipif(not UID_DROP, reason="sandbox uids exist only with the uid drop")
def test_leftovers_of_a_killed_grader_are_reaped_by_the_next_run():
    import subprocess

    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer exists: the "grading process" that was killed
    uid = sandbox._UID_BASE + gone.pid * 64 + 5
    orphan = subprocess.Popen(["sleep", "600"], user=uid, group=uid, extra_groups=[],
                              start_new_session=True)
    try:
        # Any sandbox run reaps it, so a run of a test in another pytest worker may get there
        # first (the same behaviour): the orphan is listed, or already killed, never anything else
        listed = orphan.pid in _sandbox_processes()
        assert listed or orphan.wait(timeout=10) == -9
        assert run(GOOD).outcome == sandbox.PASSED  # run() also asserts nothing is left
        assert orphan.wait(timeout=10) == -9
    finally:
        orphan.kill()
        orphan.wait()
