"""The semantic cache through the real service (bench/classify.py --service): hit and miss latency end to end,
and turns/s for a 50% hit mix against the same turns with the cache off. One client, sequential turns, the
scripted inference node (which answers at once: a real node's seconds per answer are what a hit saves)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from bench.common import ROOT, summary_ms
from bench.fake_backend import BackendProcess
from bench.service import Service

TURNS = 80


def _questions() -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "bench/eval_sets/cache_pairs.jsonl").read_text().splitlines() if line]
    return [r["a"] for r in rows if r["paraphrase"]][: TURNS // 2]


def _turn(http: httpx.Client, text: str, session: str) -> tuple[float, str | None]:
    started = time.perf_counter()
    r = http.post("/v1/chat/completions", headers={"X-Session-Id": session},
                  json={"messages": [{"role": "user", "content": text}]})
    r.raise_for_status()
    return time.perf_counter() - started, r.headers.get("x-cache")


def _run(workdir: Path, backend_url: str, cache: bool) -> dict:
    """Each question asked twice (the second time from the cache when it is on), each turn in its own session."""
    questions = _questions()
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"SEMANTIC_CACHE": "true" if cache else "false", "INFERENCE_MODEL": "fake-model"}
    with Service(workdir, backend_url, env) as svc, httpx.Client(base_url=svc.base_url, timeout=60) as http:
        _turn(http, "What is a warm-up question?", "warm")  # loads the model and the classes
        by_result: dict[str, list[float]] = {"hit": [], "miss": [], "none": []}
        started = time.perf_counter()
        for round_ in (1, 2):
            for i, q in enumerate(questions):
                spent, header = _turn(http, q, f"{'on' if cache else 'off'}-{round_}-{i}")
                by_result[header or "none"].append(spent)
        elapsed = time.perf_counter() - started
    turns = 2 * len(questions)
    return {"turns": turns, "turns_per_s": round(turns / elapsed, 2),
            **{f"{k}_ms": summary_ms(v) for k, v in by_result.items() if v},
            "counts": {k: len(v) for k, v in by_result.items()}}


def measure_service(workdir: Path) -> dict:
    """Cache on (a 50% hit mix: every question twice) against cache off, on one scripted node."""
    with BackendProcess() as backend:
        on = _run(workdir / "on", backend.base_url, cache=True)
        off = _run(workdir / "off", backend.base_url, cache=False)
    return {"turns": on["turns"], "hit_ms": on.get("hit_ms"), "miss_ms": on.get("miss_ms"), "counts": on["counts"],
            "mix_turns_per_s": on["turns_per_s"], "off_turns_per_s": off["turns_per_s"],
            "off_ms": off.get("none_ms")}
