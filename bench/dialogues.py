"""Dialogues: throughput and orchestration overhead per generated turn with a zero-latency test node, at
MAX_CONCURRENT_DIALOGUES 1 and 8; the cost of the repetition check per turn.

    python bench/dialogues.py            # prints a table and writes bench/results/dialogues.json

Overhead per turn = what a dialogue slot spends per turn minus the node call (`latency_ms` of the turns,
HTTP to the node included): at concurrency 1 that is exact (wall time / turns - call time); at 8 it is the
slot time (wall x 8 / turns - call time), an upper bound while slots wait on one event loop.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from bench.common import RESULTS  # noqa: E402
from bench.dialogue_node import VoiceProcess  # noqa: E402
from bench.service import Service  # noqa: E402

TURNS = 8


def run_batch(base_url: str, dialogues: int, concurrency: int) -> dict:
    """Queue a batch of `dialogues` × TURNS turns and time it to the last one done."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        warm = client.post("/dialogues", json={"topic": "warm-up", "min_turns": 2, "max_turns": 2}).json()["id"]
        while client.get(f"/dialogues/{warm}").json()["status"] not in ("done", "failed"):
            time.sleep(0.05)
        t0 = time.perf_counter()
        r = client.post("/dialogues/batch", json={"topics": [f"bench topic {i}" for i in range(dialogues)],
                                                  "min_turns": TURNS, "max_turns": TURNS})
        batch = r.json()["batch_id"]
        while True:
            page = client.get("/dialogues", params={"batch": batch, "limit": 1000}).json()["dialogues"]
            if all(d["status"] in ("done", "failed") for d in page):
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        bodies = [client.get(f"/dialogues/{d['id']}").json() for d in page]
    turns = [t for b in bodies for t in b["turns"]]
    call_ms = statistics.fmean(t["latency_ms"] for t in turns)
    per_turn_ms = wall * 1000 / len(turns)
    return {
        "concurrency": concurrency, "dialogues": dialogues, "turns": len(turns),
        "failed": sum(b["status"] != "done" for b in bodies), "wall_s": round(wall, 2),
        "dialogues_per_min": round(dialogues / wall * 60, 1), "turns_per_s": round(len(turns) / wall, 1),
        "node_call_ms": round(call_ms, 2),
        "overhead_ms_per_turn": round(per_turn_ms * concurrency - call_ms, 2),
    }


def repetition_cost(turns: int = 20, rounds: int = 5) -> list[dict]:
    """ms per turn of the repetition check at a dialogue's turn k: n-grams only, and with MiniLM (the new
    turn embedded once, earlier ones from the embedder's cache)."""
    from dialogue.ending import EndingRules
    from memory.embedder import Embedder
    from tests.dialogue_voices import VOCABULARY

    embedder = Embedder()
    embedder.load()
    rules = EndingRules()
    rng = random.Random(7)
    out = []
    for embed in (None, embedder.embed_one):
        per_k: dict[int, list[float]] = {}
        for _ in range(rounds):
            texts = [" ".join(rng.sample(VOCABULARY, 30)) + f" {rng.random()}" for _ in range(turns)]
            for k in range(1, turns):
                t0 = time.perf_counter()
                rules.repetition(texts[:k], texts[k], embed)
                per_k.setdefault(k, []).append((time.perf_counter() - t0) * 1000)
        for k in (1, 7, 19):
            out.append({"check": "ngrams+minilm" if embed else "ngrams", "earlier_turns": k,
                        "ms": round(statistics.median(per_k[k]), 3)})
    return out


def run_dialogues(workdir: Path) -> dict:
    """Both concurrency levels (a fresh service each) and the repetition check."""
    results: dict = {"throughput": [], "repetition": []}
    with VoiceProcess() as node:
        for concurrency, dialogues in ((1, 30), (8, 80)):
            store = workdir / f"c{concurrency}"
            store.mkdir(parents=True, exist_ok=True)
            with Service(store, node.base_url, {"MAX_CONCURRENT_DIALOGUES": str(concurrency)}) as service:
                row = run_batch(service.base_url, dialogues, concurrency)
            print(f"  dialogues c={concurrency}: {row}", flush=True)
            results["throughput"].append(row)
    results["repetition"] = repetition_cost()
    return results


def markdown(results: dict) -> str:
    """The BENCHMARKS.md tables."""
    lines = ["#### Dialogues (zero-latency node, 8 turns each)", "",
             "| concurrency | dialogues | dialogues/min | turns/s | node call ms | overhead ms/turn |",
             "|---|---|---|---|---|---|"]
    for r in results["throughput"]:
        lines.append(f"| {r['concurrency']} | {r['dialogues']} | {r['dialogues_per_min']} | {r['turns_per_s']} "
                     f"| {r['node_call_ms']} | {r['overhead_ms_per_turn']} |")
    lines += ["", "| repetition check | earlier turns | ms per turn |", "|---|---|---|"]
    lines += [f"| {r['check']} | {r['earlier_turns']} | {r['ms']} |" for r in results["repetition"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-dialogues-") as tmp:
        results = run_dialogues(Path(tmp))
    (RESULTS / "dialogues.json").write_text(json.dumps(results, indent=2))
    print(markdown(results))


if __name__ == "__main__":
    main()
