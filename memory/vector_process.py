"""The vector index in a child process that owns CHROMA_DIR.

Measured here: Chroma's bindings keep the GIL for the whole of a call, so an upsert in a worker thread
froze the event loop for as long as it ran (a 1 ms sleep took 13.7 ms p50 beside a loop of 8-vector
upserts). Across a process boundary the same work costs the service a pipe round trip (~0.2 ms).
The child imports only Chroma (no torch), and exits when the service goes away, even on kill -9.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from memory.deadline_pipe import DeadlinePipe, PipeTimeout
from memory.vectors import DEFAULT_MAX_OPEN, VectorHit

_OPS = ("add", "query", "delete", "drop", "heartbeat", "configure")
START_TIMEOUT_S = 60.0
"""How long a new child may take to import Chroma and open CHROMA_DIR (a few seconds on a busy machine)."""
DEFAULT_TIMEOUT_S = 10.0


def _serve(conn, path: str, kind: str) -> None:
    """The child's loop: one request at a time, until the pipe closes."""
    from memory.vectors import ChromaVectors

    try:
        vectors = ChromaVectors(path, kind)
    except Exception as exc:  # report why, then stop
        conn.send(("err", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", None))
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):  # the service is gone
            return
        try:
            result = getattr(vectors, op)(*args) if op in _OPS else None
            if op == "query":
                result = [(h.id, h.similarity) for h in result or []]
            conn.send(("ok", result))
        except Exception as exc:
            conn.send(("err", f"{type(exc).__name__}: {exc}"))


class VectorStoreError(RuntimeError):
    """The vector store failed or is unavailable."""


class VectorIndex:
    """Same methods as `ChromaVectors`, served by a child process. Blocking: call through `to_thread`."""

    def __init__(self, path: Path | str, kind: str = "episodes", timeout: float = DEFAULT_TIMEOUT_S,
                 max_open: int = DEFAULT_MAX_OPEN) -> None:
        self.path = str(Path(path).resolve())
        self.kind = kind
        self.timeout = timeout
        """Seconds a call may wait for the child (and for the call before it) before it fails."""
        self.max_open = max_open
        """Scopes whose indexes the child keeps loaded at most (`ChromaVectors`: past it, all are closed and
        load again as used)."""
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Any = None
        with self._lock:
            self._start()

    def _start(self) -> None:
        # A plain `python -m memory.vector_process` child over a socket pair: unlike multiprocessing's
        # spawn it never re-imports the parent's main module, and it does not fork a process that
        # holds threads and torch.
        ours, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "memory.vector_process", str(theirs.fileno()), self.path, self.kind],
                pass_fds=(theirs.fileno(),), env=_child_env(),
            )
        finally:
            theirs.close()
        conn = DeadlinePipe(ours)
        try:
            status, detail = conn.recv(max(self.timeout, START_TIMEOUT_S))
            if status == "ok":
                conn.send(("configure", (self.max_open,)), self.timeout)
                status, detail = conn.recv(self.timeout)
        except (EOFError, OSError) as exc:  # PipeTimeout included: a child that never came up
            status, detail = "err", f"the process did not start ({exc!r})"
        if status != "ok":
            conn.close()
            proc.kill()
            proc.wait()
            raise VectorStoreError(f"Could not open the vector store at {self.path} (CHROMA_DIR): {detail}")
        self._proc, self._conn = proc, conn

    def _call(self, op: str, *args: Any) -> Any:
        # Every wait here is bounded: a stopped or wedged child must not hold recall (which waits on this
        # lock) for ever. Past the deadline the child is killed and the call fails like any other
        # vector-store failure (recall degrades to lexical + recency); the next call starts a new child.
        if not self._lock.acquire(timeout=self.timeout):
            raise VectorStoreError(f"the vector store is busy: a call waited {self.timeout:g} s for the one "
                                   "before it (VECTOR_TIMEOUT_SECONDS)")
        try:
            if self._proc is None or self._proc.poll() is not None:
                self._start()  # a crashed (or killed, hung) child is replaced on the next call
            try:
                self._conn.send((op, args), self.timeout)
                status, result = self._conn.recv(self.timeout)
            except PipeTimeout as exc:
                self._kill()
                raise VectorStoreError(f"the vector store process did not answer '{op}' within "
                                       f"{self.timeout:g} s (VECTOR_TIMEOUT_SECONDS): stopped it; the next "
                                       "call starts a new one") from exc
            except (EOFError, OSError) as exc:
                self._kill()
                raise VectorStoreError(f"the vector store process stopped: {exc!r}") from exc
        finally:
            self._lock.release()
        if status != "ok":
            raise VectorStoreError(result)
        return result

    def _kill(self) -> None:
        """Stop the child for good (SIGKILL ends a stopped process too) and forget it."""
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = self._conn = None

    def add(self, scope: str, ids: list[str], embeddings: list[list[float]], documents: list[str]) -> None:
        """Insert or replace vectors (idempotent)."""
        if ids:
            self._call("add", scope, ids, embeddings, documents)

    def query(self, scope: str, embedding: list[float], k: int) -> list[VectorHit]:
        """The `k` nearest vectors of one scope, most similar first."""
        if k <= 0:
            return []
        return [VectorHit(i, s) for i, s in self._call("query", scope, embedding, k)]

    def delete(self, scope: str, ids: list[str]) -> None:
        """Remove vectors by id."""
        if ids:
            self._call("delete", scope, ids)

    def drop(self, *scopes: str) -> None:
        """Delete these scopes' whole collections (a deleted project) and close what they held open."""
        if scopes:
            self._call("drop", list(scopes))

    def heartbeat(self) -> int:
        """Raises if the vector store is unusable."""
        return self._call("heartbeat")

    @property
    def pid(self) -> int | None:
        """The child's process id (None until started, or after it was stopped)."""
        return self._proc.pid if self._proc is not None else None

    def close(self) -> None:
        """Stop the child process (Chroma persists every write as it goes)."""
        with self._lock:  # a hung call gives it up within `timeout`
            if self._conn is not None:
                self._conn.close()
            if self._proc is not None:
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = self._conn = None


def _child_env() -> dict[str, str]:
    """The parent's environment, with `memory` importable whatever the parent's working directory."""
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])), sys.argv[2], sys.argv[3])
