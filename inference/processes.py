"""Child HTTP processes: starting one that dies with the service, a free port, waiting until one answers,
stopping it. Used by the embedded inference node, and by the tests and benchmarks that start the service or
`langgraph dev`."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx


class _Spawner:
    """One thread, started on first use and kept until the process ends, that forks every guarded child.

    Linux's parent-death signal follows the thread that forked, not the process: a child forked from a
    worker thread would be killed when that thread ends (an idle pool thread retiring), so all guarded
    children are forked here. The fork runs no Python in the child (no `preexec_fn`): the child execs
    inference/parent_death.py at once, which sets the signal in a fresh interpreter."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[list[str], dict[str, Any], Future]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def popen(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="child-spawner", daemon=True)
                self._thread.start()
        done: Future = Future()
        self._jobs.put((cmd, kwargs, done))
        return done.result()

    def _run(self) -> None:
        while True:
            cmd, kwargs, done = self._jobs.get()
            try:
                done.set_result(subprocess.Popen(cmd, **kwargs))
            except BaseException as exc:  # handed to the caller, which raises it
                done.set_exception(exc)


_spawner = _Spawner()
PARENT_DEATH = Path(__file__).with_name("parent_death.py")


def spawn_child(cmd: list[str], **popen_kwargs: Any) -> subprocess.Popen:
    """`subprocess.Popen(cmd, ...)` for a child that gets SIGTERM when this process dies, even on kill -9
    (Linux PR_SET_PDEATHSIG, set by inference/parent_death.py, which then becomes `cmd`). Safe from any thread."""
    # -I (isolated): the wrapper imports only the standard library, whatever the environment and cwd say.
    wrapped = [sys.executable, "-I", str(PARENT_DEATH), str(os.getpid()), *cmd]
    return _spawner.popen(wrapped, **popen_kwargs)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, url: str, timeout: float, what: str, log: Path | None = None,
               interval: float = 0.2, cancel: threading.Event | None = None) -> float:
    """Poll `url` until it answers 200 while `proc` lives; the seconds it took. If the process exits,
    `timeout` passes or `cancel` is set first, it is stopped and RuntimeError says so, with the end of its log."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}):\n{_tail(log)}")
        if cancel is not None and cancel.is_set():
            stop(proc, grace=5)
            raise RuntimeError(f"{what} was stopped while starting")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    stop(proc)
    raise RuntimeError(f"{what} did not answer {url} in {timeout:.0f} s:\n{_tail(log)}")


def stop(proc: subprocess.Popen | None, grace: float = 30.0, sig: int = signal.SIGTERM) -> None:
    """`sig` (SIGTERM: a graceful shutdown), then SIGKILL after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(log: Path | None) -> str:
    return log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
