"""A zero-latency OpenAI-compatible inference node, run in its own process (no GIL shared with the client
or the service). Reuses the repo's `tests/fake_backend.py` FakeBackend.

Run directly, it prints its base URL on stdout and serves until stdin closes or it is terminated.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inference.processes import stop  # noqa: E402


class BackendProcess:
    """`with BackendProcess() as backend:` gives `backend.base_url` (…/v1) served by a child process."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.base_url = ""

    def __enter__(self) -> BackendProcess:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError(f"fake backend did not start: {line!r}")
        self.base_url = line
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.proc, grace=10)


def main() -> None:
    """Serve until stdin closes; never keeps the request log growing without bound."""
    from tests.fake_backend import FakeBackend

    with FakeBackend() as backend:
        backend.requests = _NoLog()  # type: ignore[assignment]  # bounded memory over long runs
        print(backend.base_url, flush=True)
        sys.stdin.read()


class _NoLog(list):
    """A list that forgets what is appended (the benchmark never inspects the requests)."""

    def append(self, item: object) -> None:  # noqa: D102
        pass


if __name__ == "__main__":
    main()
