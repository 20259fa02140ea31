"""Latency the orchestrator adds in front of a zero-latency inference node.

(a) turns sent straight to the fake backend, (b) the same turns through the orchestrator's
`/v1/chat/completions`. Non-streaming: whole-request latency. Streaming: time to the first non-empty
content chunk (TTFT). Added latency at percentile q = q-th percentile of (b) minus q-th percentile of (a).

Standalone: `python bench/overhead.py [--turns 200]` (empty store, temporary directory).
"""

from __future__ import annotations

import argparse
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

TURNS_PER_SESSION = 20  # past 12 turns (24 messages) the summary kicks in, as in real use
BUDGET_S = 120.0  # hard cap on each measured loop


def _body(text: str, stream: bool) -> dict:
    return {"model": "fake-model", "stream": stream, "messages": [{"role": "user", "content": text}]}


def timed_turn(client: httpx.Client, url: str, text: str, stream: bool, headers: dict[str, str]) -> float:
    """Seconds until the full reply (non-streaming) or the first non-empty content delta (streaming)."""
    t0 = time.perf_counter()
    if not stream:
        response = client.post(url, json=_body(text, False), headers=headers)
        response.raise_for_status()
        return time.perf_counter() - t0
    first = None
    with client.stream("POST", url, json=_body(text, True), headers=headers) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if first is None and line.startswith("data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    first = time.perf_counter() - t0
    if first is None:
        raise RuntimeError("stream ended without content")
    return first


def turn_loop(url: str, n: int, stream: bool, session_prefix: str | None, seed: int,
              pause_s: float = 0.0) -> tuple[list[float], int]:
    """Run up to `n` sequential turns (bounded by BUDGET_S), `pause_s` apart (untimed think time);
    returns (latencies, errors)."""
    rng = random.Random(seed)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + BUDGET_S
    with httpx.Client(timeout=30.0) as client:
        for i in range(n):
            if time.perf_counter() > deadline:
                break
            if pause_s and i:
                time.sleep(pause_s)
            headers = {"X-Session-Id": f"{session_prefix}-{i // TURNS_PER_SESSION}"} if session_prefix else {}
            try:
                latencies.append(timed_turn(client, url, synthetic_exchange(rng)[0], stream, headers))
            except (httpx.HTTPError, RuntimeError) as exc:
                errors += 1
                if errors == 1:
                    detail = exc.response.text[:300] if isinstance(exc, httpx.HTTPStatusError) else repr(exc)
                    print(f"    first error on {url}: {detail}", flush=True)
    return latencies, errors


def added(direct: dict, orchestrated: dict) -> dict[str, float]:
    """Per-percentile difference in ms."""
    return {q: round(orchestrated[q] - direct[q], 3) for q in ("p50", "p95", "p99", "mean")}


def run_overhead(service_url: str, backend_url: str, label: str, turns: int = 200, stream_turns: int = 100,
                 pause_s: float = 0.0) -> dict:
    """Measure direct vs orchestrated latency, non-streaming and streaming; returns a result record."""
    direct_url = backend_url + "/chat/completions"
    orch_url = service_url + "/v1/chat/completions"
    slug = "".join(c if c.isalnum() else "-" for c in label)
    turn_loop(direct_url, 10, False, None, 0)  # warm-ups
    turn_loop(orch_url, 10, False, f"warm-{slug}", 0)
    out: dict = {"label": label, "pause_s": pause_s}
    for mode, n, stream in (("non_streaming", turns, False), ("streaming_ttft", stream_turns, True)):
        d_lat, d_err = turn_loop(direct_url, n, stream, None, 1)
        o_lat, o_err = turn_loop(orch_url, n, stream, f"ovh-{slug}-{mode}", 1, pause_s)
        d, o = summary_ms(d_lat), summary_ms(o_lat)
        out[mode] = {"direct_ms": d, "orchestrated_ms": o, "added_ms": added(d, o),
                     "errors": {"direct": d_err, "orchestrated": o_err}}
        print(f"  {label:>12} {mode:<15} direct p50 {d['p50']:.1f} ms | orchestrated p50 {o['p50']:.1f} "
              f"p95 {o['p95']:.1f} p99 {o['p99']:.1f} ms | added p50 {o['p50'] - d['p50']:.1f} "
              f"p95 {o['p95'] - d['p95']:.1f} ms | errors {d_err}/{o_err}", flush=True)
    return out


def main() -> None:
    """Command line entry point: empty store in a temporary directory."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--stream-turns", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp, BackendProcess() as backend:
        with Service(Path(tmp), backend.base_url) as service:
            result = run_overhead(service.base_url, backend.base_url, "0 episodes", args.turns, args.stream_turns)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
