"""Recall latency (embed + vector query + FTS5 search + fuse, as `nodes/recall.py` does) versus store size.

Usage: `python bench/recall_scaling.py WORKDIR --stages 1000,10000 [--embedded-up-to 10000] --out FILE`.
Grows the store in WORKDIR stage by stage (resuming what is already there) and measures recall at each.
Runs as its own process so that it owns the Chroma directory alone and its RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import rss_mb, summary_ms, synthetic_question  # noqa: E402
from bench.seed import Stores, open_stores, seed_embedded, seed_filler  # noqa: E402
from graph.config import DEFAULT_SCOPE  # noqa: E402
from memory.hybrid import FusionWeights, fuse  # noqa: E402

CANDIDATES = 10  # RECALL_CANDIDATES default
TOP_K = 5  # RECALL_TOP_K default


def measure_recall(stores: Stores, rng: random.Random, queries: int = 100, budget_s: float = 30.0) -> dict:
    """Time `queries` recalls (bounded by `budget_s`); total and per-step percentiles in ms."""
    weights = FusionWeights()
    steps: dict[str, list[float]] = {"total": [], "embed": [], "vector": [], "fts5": [], "fuse": []}
    for _ in range(5):  # warm-up
        stores.vectors.query(DEFAULT_SCOPE, stores.embedder.embed_one(synthetic_question(rng)), CANDIDATES)
    deadline = time.perf_counter() + budget_s
    for _ in range(queries):
        if time.perf_counter() > deadline:
            break
        q = synthetic_question(rng)
        t0 = time.perf_counter()
        emb = stores.embedder.embed_one(q)
        t1 = time.perf_counter()
        vec = stores.vectors.query(DEFAULT_SCOPE, emb, CANDIDATES)
        t2 = time.perf_counter()
        lex = stores.episodes.search(DEFAULT_SCOPE, q, CANDIDATES)
        t3 = time.perf_counter()
        fuse(lex, vec, weights, set(), TOP_K, stores.episodes)
        t4 = time.perf_counter()
        for key, value in zip(steps, (t4 - t0, t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            steps[key].append(value)
    return {key: summary_ms(values) for key, values in steps.items()}


def run(workdir: Path, stages: list[int], embedded_up_to: int, seed: int = 7) -> list[dict]:
    """Grow the store through `stages` and measure recall at each; returns one record per stage."""
    rng = random.Random(seed)
    t0 = time.perf_counter()
    stores = open_stores(workdir)
    open_s = time.perf_counter() - t0
    records = []
    try:
        for target in stages:
            have = stores.episodes.count()
            seeding: dict = {}
            if target > have:
                real = max(0, min(target, embedded_up_to) - have)
                if real:
                    seeding["embedded"] = seed_embedded(stores, real, rng)
                if target - have - real > 0:
                    seeding["filler"] = seed_filler(stores, target - have - real, rng)
            record = {"episodes": stores.episodes.count(), "seeding": seeding,
                      "recall_ms": measure_recall(stores, rng), "rss_mb": round(rss_mb(), 1),
                      "open_stores_s": round(open_s, 2)}
            records.append(record)
            print(f"  recall @ {record['episodes']:>7} episodes: p50 {record['recall_ms']['total']['p50']:.1f} ms, "
                  f"p95 {record['recall_ms']['total']['p95']:.1f} ms, RSS {record['rss_mb']:.0f} MiB, "
                  f"seeding {seeding}", flush=True)
    finally:
        stores.close()
    return records


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--stages", default="1000,10000")
    parser.add_argument("--embedded-up-to", type=int, default=10000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    stages = [int(s) for s in args.stages.split(",")]
    records = run(args.workdir, stages, args.embedded_up_to)
    args.out.write_text(json.dumps(records, indent=2))


if __name__ == "__main__":
    main()
