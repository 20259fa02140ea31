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

from memory.vectors import VectorHit

_OPS = ("add", "query", "delete", "heartbeat")


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
                result = [(h.id, h.similarity) for h in result]
            conn.send(("ok", result))
        except Exception as exc:
            conn.send(("err", f"{type(exc).__name__}: {exc}"))


class VectorStoreError(RuntimeError):
    """The vector store failed or is unavailable."""


class VectorIndex:
    """Same methods as `ChromaVectors`, served by a child process. Blocking: call through `to_thread`."""

    def __init__(self, path: Path | str, kind: str = "episodes") -> None:
        self.path = str(Path(path).resolve())
        self.kind = kind
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
        conn = Connection(ours.detach())
        try:
            status, detail = conn.recv()
        except (EOFError, OSError) as exc:
            status, detail = "err", f"the process exited ({exc!r})"
        if status != "ok":
            conn.close()
            proc.wait(5)
            raise VectorStoreError(f"Could not open the vector store at {self.path} (CHROMA_DIR): {detail}")
        self._proc, self._conn = proc, conn

    def _call(self, op: str, *args: Any) -> Any:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()  # a crashed child is replaced on the next call
            try:
                self._conn.send((op, args))
                status, result = self._conn.recv()
            except (EOFError, OSError) as exc:
                self._proc = None
                raise VectorStoreError(f"the vector store process stopped: {exc!r}") from exc
        if status != "ok":
            raise VectorStoreError(result)
        return result

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

    def heartbeat(self) -> int:
        """Raises if the vector store is unusable."""
        return self._call("heartbeat")

    def close(self) -> None:
        """Stop the child process (Chroma persists every write as it goes)."""
        with self._lock:
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
