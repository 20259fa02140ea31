"""Peer race: the same graph served by `langgraph dev` (in-memory runtime, driven by `langgraph_sdk`) and by
this service (`/v1/chat/completions`, driven by httpx), against the same zero-latency fake backend, in one
run: turns/s and latency at 1 and 8 concurrent clients (one thread/session per client, turns in sequence).

Each side gets its own temporary stores (both open Chroma) and runs alone on the machine while measured.
Bounded: `TURNS_PER_CLIENT` turns per client and `BUDGET_S` per level. Only 127.0.0.1 is contacted.
Standalone: `python bench/peer_race.py`; run_all.py includes it.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langgraph_sdk import get_client  # noqa: E402

from bench.common import QUIET_ENV, RESULTS, summary_ms, synthetic_exchange  # noqa: E402
from bench.concurrency import run_level  # noqa: E402
from bench.fake_backend import BackendProcess  # noqa: E402
from bench.service import Service  # noqa: E402
from tests.integration.servers import DevServer  # noqa: E402

TURNS_PER_CLIENT = 20  # enough that the first turn of each session (its naming, its stores) does not dominate
BUDGET_S = 60.0
LEVELS = (1, 8)


async def _dev_client(url: str, index: int, deadline: float, latencies: list[float], errors: list[str]) -> None:
    client = get_client(url=url)
    thread = await client.threads.create()
    rng = random.Random(f"dev-{index}")
    for _ in range(TURNS_PER_CLIENT):
        if time.perf_counter() > deadline:
            return
        t0 = time.perf_counter()
        try:
            result = await client.runs.wait(thread["thread_id"], "agent", input={
                "messages": [{"role": "human", "content": synthetic_exchange(rng)[0]}]})
            if not isinstance(result, dict) or result.get("messages", [{}])[-1].get("type") != "ai":
                raise RuntimeError(f"unexpected result: {str(result)[:200]}")
            latencies.append(time.perf_counter() - t0)
        except Exception as exc:
            errors.append(repr(exc)[:200])


async def dev_level(url: str, clients: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    t0 = time.perf_counter()
    await asyncio.gather(*(_dev_client(url, i, t0 + BUDGET_S, latencies, errors) for i in range(clients)))
    wall = time.perf_counter() - t0
    stats = summary_ms(latencies)
    print(f"  langgraph dev, {clients} clients: {len(latencies) / wall:.1f} turns/s, p50 {stats['p50']:.0f} ms, "
          f"errors {len(errors)}", flush=True)
    return {"sessions": clients, "turns": len(latencies), "wall_s": round(wall, 2),
            "turns_per_s": round(len(latencies) / wall, 2), "latency_ms": stats, "errors": len(errors),
            "first_error": errors[0] if errors else None}


def run_peer_race(workdir: Path, backend_url: str) -> dict:
    """Both sides, one after the other, each alone on the machine."""
    print("peer race: langgraph dev vs. this service", flush=True)
    (workdir / "dev").mkdir(parents=True, exist_ok=True)
    (workdir / "svc").mkdir(parents=True, exist_ok=True)
    dev_env = {**QUIET_ENV, "INFERENCE_BASE_URL": backend_url, "LOG_LEVEL": "warning"}
    with DevServer(workdir / "dev", dev_env) as dev:
        asyncio.run(dev_level(dev.url, 1))  # warm-up: the factory opens the stores on the first run
        dev_rows = [asyncio.run(dev_level(dev.url, n)) for n in LEVELS]
    with Service(workdir / "svc", backend_url) as service:
        asyncio.run(run_level(service.base_url, 1, "race-warm"))
        svc_rows = [asyncio.run(run_level(service.base_url, n, "race")) for n in LEVELS]
    rows = []
    for dev_row, svc_row in zip(dev_rows, svc_rows, strict=True):
        ratio = svc_row["turns_per_s"] / dev_row["turns_per_s"] if dev_row["turns_per_s"] else float("nan")
        rows.append({"clients": dev_row["sessions"], "langgraph_dev": dev_row, "service": svc_row,
                     "throughput_ratio": round(ratio, 2)})
    return {"levels": rows}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-race-") as tmp, BackendProcess() as backend:
        result = run_peer_race(Path(tmp), backend.base_url)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "peer_race.json").write_text(json.dumps(result, indent=2))
    for row in result["levels"]:
        print(f"{row['clients']} clients: service {row['service']['turns_per_s']} turns/s "
              f"(p50 {row['service']['latency_ms']['p50']} ms) vs langgraph dev "
              f"{row['langgraph_dev']['turns_per_s']} turns/s (p50 {row['langgraph_dev']['latency_ms']['p50']} ms): "
              f"x{row['throughput_ratio']}")


if __name__ == "__main__":
    main()
