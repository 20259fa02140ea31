"""Child HTTP processes: a free port, waiting until one answers, stopping it. Used by the embedded inference
node, and by the tests and benchmarks that start the service or `langgraph dev`."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, url: str, timeout: float, what: str, log: Path | None = None,
               interval: float = 0.2) -> float:
    """Poll `url` until it answers 200 while `proc` lives; the seconds it took. If the process exits or
    `timeout` passes first, it is stopped and RuntimeError says so, with the end of its log."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}):\n{_tail(log)}")
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
