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
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from langgraph_sdk import get_client  # noqa: E402

from bench.common import QUIET_ENV, RESULTS, ROOT, summary_ms, synthetic_exchange  # noqa: E402
from bench.concurrency import run_level  # noqa: E402
from bench.fake_backend import BackendProcess  # noqa: E402
from bench.service import Service, free_port  # noqa: E402

TURNS_PER_CLIENT = 6
BUDGET_S = 60.0
LEVELS = (1, 8)
OFFLINE = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true", "LANGSMITH_TRACING": "false"}


class DevServer:
    """`langgraph dev` on a free port, serving langgraph.json's graph with stores under `workdir`."""

    def __init__(self, workdir: Path, inference_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **QUIET_ENV, **OFFLINE, "INFERENCE_BASE_URL": inference_url,
                    "DATA_DIR": str(workdir / "data"), "CHROMA_DIR": str(workdir / "chroma"), "LOG_LEVEL": "warning"}
        self.log = workdir / "langgraph-dev.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> DevServer:
        cli = Path(sys.executable).with_name("langgraph")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([str(cli), "dev", "--port", str(self.port), "--no-browser", "--no-reload"],
                                         cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("langgraph dev exited:\n" + self.log.read_text()[-3000:])
            try:
                if httpx.get(self.url + "/ok", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError("langgraph dev did not start in 180 s")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


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
    with DevServer(workdir / "dev", backend_url) as dev:
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
