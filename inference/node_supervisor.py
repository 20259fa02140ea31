"""Keeps the embedded inference node running: a node that dies is logged and restarted with backoff; its
state shows in /health and /metrics, and a request made while it is down is told what happened and where
the node's log is (instead of a connection error that suggests setting INFERENCE_BASE_URL)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
from typing import Any, Literal

from inference.backends import BackendDown
from inference.local_node import LocalInferenceNode

log = logging.getLogger(__name__)

NodeState = Literal["running", "restarting", "stopped"]
NODE_STATES: tuple[NodeState, ...] = ("running", "restarting", "stopped")


def describe_exit(code: int | None) -> str:
    """`exited with code 1`, `was killed by SIGSEGV`, ..."""
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class NodeSupervisor:
    """Watches the node's process (every `poll_interval` s, which also reaps it) and restarts it when it ends.

    Restarts wait `backoff_min` s, doubling up to `backoff_max` while the node keeps dying; a node that ran
    for `stable_after` s starts over from `backoff_min`. The node keeps its port, so the chat models
    pointed at it need no change.
    """

    def __init__(self, node: LocalInferenceNode, poll_interval: float = 0.5, backoff_min: float = 0.5,
                 backoff_max: float = 30.0, stable_after: float = 60.0, start_timeout: float = 120.0) -> None:
        self.node = node
        self.poll_interval = poll_interval
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.stable_after = stable_after
        self.start_timeout = start_timeout
        self.state: NodeState = "running"
        self.restarts = 0
        """Successful restarts since the service started."""
        self.last_exit: str | None = None
        self.last_exit_at: float | None = None
        self.last_error: str | None = None
        """Why the last restart attempt failed (None once one succeeds)."""
        self.next_attempt_at: float | None = None
        self._delay = backoff_min
        self._up_since = time.monotonic()
        self._task: asyncio.Task | None = None
        self._recorded: Any = None

    def start(self) -> None:
        """Begin watching (in the running event loop)."""
        self._task = asyncio.create_task(self._watch(), name="inference-node-supervisor")

    async def aclose(self) -> None:
        """Stop watching; the caller stops the node (which also ends a start under way)."""
        self.state = "stopped"
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _alive(self) -> bool:
        proc = self.node.proc
        return proc is not None and proc.poll() is None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            if self.state == "stopped" or self._alive():
                continue
            self._record_exit()
            await self._restart()

    def _record_exit(self) -> None:
        """Note and log the end of the current process, once."""
        proc = self.node.proc
        if proc is self._recorded:
            return
        self._recorded = proc
        if self.state == "running":  # /health says so at once, not only when the watch loop next looks
            self.state = "restarting"
        self.last_exit, self.last_exit_at = describe_exit(proc.returncode if proc else None), time.time()
        log.error("the embedded inference node (pid %s) %s; restarting it; its log: %s",
                  self.node.proc.pid if self.node.proc else "?", self.last_exit, self.node.log_path)

    async def _restart(self) -> None:
        self.state = "restarting"
        if time.monotonic() - self._up_since >= self.stable_after:
            self._delay = self.backoff_min  # it had been running fine: not a crash loop
        while True:
            self.next_attempt_at = time.time() + self._delay
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, self.backoff_max)
            self.next_attempt_at = None
            try:
                await asyncio.to_thread(self.node.start, self.start_timeout)
            except Exception as exc:
                self.last_error = str(exc).splitlines()[0]
                log.error("restarting the embedded inference node failed (%s); next attempt in %.0f s; its log: %s",
                          self.last_error, self._delay, self.node.log_path)
                continue
            self.restarts += 1
            self.state, self.last_error, self._up_since = "running", None, time.monotonic()
            log.warning("the embedded inference node is back (pid %s, restart %d)",
                        self.node.proc.pid if self.node.proc else None, self.restarts)
            return

    def down(self) -> BackendDown | None:
        """None while the node runs; otherwise the error a request gets: what happened, what is being done,
        when to retry, where the log is."""
        if self.state == "stopped":
            return None
        if self.state == "running":
            if self._alive():
                return None
            self._record_exit()  # ended since the supervisor last looked: say so now
        when = time.strftime("%H:%M:%S UTC", time.gmtime(self.last_exit_at or time.time()))
        doing = "is being restarted"
        retry_after = 5.0
        if self.next_attempt_at is not None:
            retry_after = max(1.0, self.next_attempt_at - time.time()) + 5
            doing = f"will be restarted in {max(0.0, self.next_attempt_at - time.time()):.0f} s"
        if self.last_error:
            doing += f" (the last attempt failed: {self.last_error})"
        message = (f"The embedded inference node ({self.node.model.name}) {self.last_exit} at {when} and {doing}; "
                   f"its log: {self.node.log_path}. Retry in {math.ceil(retry_after)} s.")
        return BackendDown(self.node.base_url, message, retry_after)

    def public(self) -> dict[str, Any]:
        """The node's state for /health."""
        proc = self.node.proc
        return {
            "state": self.state,
            "pid": proc.pid if proc is not None and proc.poll() is None else None,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "last_exit_at": self.last_exit_at,
            "last_restart_error": self.last_error,
            "log": str(self.node.log_path) if self.node.log_path else None,
        }
