"""One process owns DATA_DIR and CHROMA_DIR: a second one on the same directories is refused, clearly."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class DirectoryLock:
    """An exclusive `flock` on `<dir>/.orchestrator.lock`, released when the process exits (even on kill -9)."""

    def __init__(self, directory: Path, setting: str) -> None:
        self.path = Path(directory) / ".orchestrator.lock"
        self.setting = setting
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RuntimeError(
                f"{self.path.parent} is already in use by another orchestrator process (pid {holder}): one "
                f"process owns it. Stop that one, or give this one another {self.setting}."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def directory_locks(settings) -> list[DirectoryLock]:
    """The locks a process takes before opening its stores: DATA_DIR unless the stores live in Postgres
    (DATABASE_URL: then any number of workers share them), CHROMA_DIR unless the vectors live in a Chroma
    server (CHROMA_URL). Each is acquired here; a failure releases those already taken."""
    wanted = []
    if not settings.database_url:
        wanted.append(DirectoryLock(settings.data_dir, "DATA_DIR"))
    if not settings.chroma_url:
        wanted.append(DirectoryLock(settings.chroma_dir, "CHROMA_DIR"))
    for held, lock in enumerate(wanted):
        try:
            lock.acquire()
        except RuntimeError:
            for other in wanted[:held]:
                other.release()
            raise
    return wanted
