"""A zero-latency inference node that talks like a dialogue participant (tests/dialogue_voices.py: a fresh
sentence per request, so no dialogue ends early on repetition), in its own process.

Run directly, it prints its base URL on stdout and serves until stdin closes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fake_backend import _NoLog  # noqa: E402
from inference.processes import stop  # noqa: E402


class VoiceProcess:
    """`with VoiceProcess() as node:` gives `node.base_url` (…/v1)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.base_url = ""

    def __enter__(self) -> VoiceProcess:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve())], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError(f"dialogue node did not start: {line!r}")
        self.base_url = line
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.proc, grace=10)


def main() -> None:
    from tests.dialogue_voices import Voice
    from tests.fake_backend import FakeBackend

    voice = Voice("Node")
    voice.intervals = _NoLog()  # type: ignore[assignment]  # bounded memory over long runs
    with FakeBackend(voice) as backend:
        backend.requests = _NoLog()  # type: ignore[assignment]
        print(backend.base_url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
