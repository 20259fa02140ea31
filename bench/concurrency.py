"""Throughput and tail latency with 1, 8 and 32 concurrent sessions (distinct X-Session-Id each).

Every session runs its turns one after the other (as a chat client does); sessions run side by side.
Each level is bounded in turns (`TOTAL_TURNS`, at least `MIN_PER_SESSION` per session) and in time.
Standalone: `python bench/concurrency.py` (empty store, temporary directory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from bench.common import summary_ms, synthetic_exchange  # noqa: E402
from bench.fake_backend import BackendProcess  # noqa: E402
from bench.service import Service  # noqa: E402

TOTAL_TURNS = 96
MIN_PER_SESSION = 3
BUDGET_S = 90.0


async def _session(client: httpx.AsyncClient, url: str, sid: str, turns: int, deadline: float,
                   latencies: list[float], errors: list[str]) -> None:
    rng = random.Random(sid)
    for _ in range(turns):
        if time.perf_counter() > deadline:
            return
        body = {"model": "fake-model", "messages": [{"role": "user", "content": synthetic_exchange(rng)[0]}]}
        t0 = time.perf_counter()
        try:
            response = await client.post(url, json=body, headers={"X-Session-Id": sid})
            response.raise_for_status()
            latencies.append(time.perf_counter() - t0)
        except httpx.HTTPError as exc:
            errors.append(repr(exc)[:200])


async def run_level(service_url: str, sessions: int, tag: str) -> dict:
    """One concurrency level: turns/s, latency percentiles and errors."""
    per_session = max(MIN_PER_SESSION, TOTAL_TURNS // sessions)
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=sessions + 4, max_keepalive_connections=sessions + 4)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        t0 = time.perf_counter()
        deadline = t0 + BUDGET_S
        await asyncio.gather(*(
            _session(client, service_url + "/v1/chat/completions", f"conc-{tag}-{sessions}-{i}", per_session,
                     deadline, latencies, errors)
            for i in range(sessions)
        ))
        wall = time.perf_counter() - t0
    stats = summary_ms(latencies)
    record = {"sessions": sessions, "turns": len(latencies), "wall_s": round(wall, 2),
              "turns_per_s": round(len(latencies) / wall, 2), "latency_ms": stats, "errors": len(errors),
              "first_error": errors[0] if errors else None}
    print(f"  {sessions:>3} sessions: {record['turns_per_s']:.1f} turns/s, p50 {stats['p50']:.0f} ms, "
          f"p95 {stats['p95']:.0f} ms, errors {len(errors)}", flush=True)
    return record


def run_concurrency(service_url: str, levels: tuple[int, ...] = (1, 8, 32), tag: str = "x") -> list[dict]:
    """All levels, one after the other."""
    return [asyncio.run(run_level(service_url, n, tag)) for n in levels]


def main() -> None:
    """Command line entry point: empty store in a temporary directory."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", default="1,8,32")
    args = parser.parse_args()
    levels = tuple(int(x) for x in args.levels.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-conc-") as tmp, BackendProcess() as backend:
        with Service(Path(tmp), backend.base_url) as service:
            print(json.dumps(run_concurrency(service.base_url, levels), indent=2))


if __name__ == "__main__":
    main()
