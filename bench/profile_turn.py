"""Profile the service's event-loop thread with pyinstrument during sequential non-streaming turns.

Usage: `python bench/profile_turn.py [--turns 150]`; writes bench/results/profile_turn.txt. Needs
`pip install pyinstrument` (a diagnosis tool, not part of `make bench`). Work done in `asyncio.to_thread`
workers (embedding, SQLite) shows as waiting time in this profile; time spent on the loop itself
(LangGraph, checkpoint serialisation, HTTP client, pydantic) shows as code.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS  # noqa: E402
from bench.fake_backend import BackendProcess  # noqa: E402
from bench.overhead import turn_loop  # noqa: E402
from bench.service import Service  # noqa: E402


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=150)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "profile_turn.txt"
    with tempfile.TemporaryDirectory(prefix="bench-prof-") as tmp, BackendProcess() as backend:
        with Service(Path(tmp), backend.base_url, profile_to=out) as service:
            latencies, errors = turn_loop(service.base_url + "/v1/chat/completions", args.turns, False, "prof", 3)
    print(f"{len(latencies)} turns, {errors} errors; profile in {out}")


if __name__ == "__main__":
    main()
