"""Children started with `spawn_child` (the embedded inference node) outlive the thread that asked for them
and die with the service process, even when it is killed with SIGKILL; the fork runs no Python in the child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

from inference.processes import spawn_child, stop

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def gone(pid: int, within: float = 15.0) -> bool:
    """Whether process `pid` has ended (a zombie of ours counts: it is reaped here)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:  # not our child
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.1)
    return False


def test_a_child_outlives_the_worker_thread_that_started_it():
    started: list[subprocess.Popen] = []
    worker = threading.Thread(target=lambda: started.append(spawn_child(SLEEPER)))
    worker.start()
    worker.join()  # the thread that asked for the child is gone (as an idle pool thread retires)
    child = started[0]
    try:
        # The parent-death signal, were it tied to that thread, would have ended the child by now:
        # wait until the child runs the command, then a while more.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "time.sleep" not in _cmdline(child.pid):
            time.sleep(0.05)
        time.sleep(1.0)
        assert child.poll() is None, f"the child ended with {child.returncode}"
        assert "inference/parent_death.py" not in _cmdline(child.pid)  # the wrapper became the command
    finally:
        stop(child, grace=5)


def test_a_child_dies_with_its_parent_even_on_sigkill(tmp_path):
    script = textwrap.dedent(f"""
        import sys, threading, time
        sys.path.insert(0, {os.getcwd()!r})
        from inference.processes import spawn_child
        out = []
        t = threading.Thread(target=lambda: out.append(spawn_child({SLEEPER!r})))
        t.start(); t.join()
        print(out[0].pid, flush=True)
        time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child_pid = int(parent.stdout.readline())
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "time.sleep" not in _cmdline(child_pid):
            time.sleep(0.05)
        assert not gone(child_pid, within=0.5)
        parent.send_signal(signal.SIGKILL)  # no shutdown code runs in the parent
        parent.wait()
        assert gone(child_pid)
    finally:
        stop(parent, grace=1)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""
