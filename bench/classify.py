"""Routing and the semantic cache, measured (issue 21).

1. The classifier on bench/eval_sets/classes_eval.jsonl (310 messages written by hand for this, none of them among the
   classes file's examples): accuracy, per-class recall, the confusion matrix, the share of unsure turns, and the
   cost of one classification given the query vector (the turn computes it anyway for recall).
2. The semantic cache on bench/eval_sets/cache_pairs.jsonl (paraphrase and near-miss question pairs): each pair's first
   question is cached, the second looked up through SemanticCache.lookup (vectors and the particulars guard):
   false-hit rate on non-paraphrases, hit rate on paraphrases, and the lookup's latency with 1,000 entries.
3. With `--service`: the real service on the scripted inference node, SEMANTIC_CACHE=true, through HTTP: the
   latency of a hit against a miss (end to end), and turns/s for a 50% hit mix against the cache off.

Usage: `python bench/classify.py [--service]`; writes bench/results/classify.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.common import RESULTS, ROOT, summary_ms  # noqa: E402
from graph.classifier import QueryClassifier  # noqa: E402
from memory.db import SqliteDatabase  # noqa: E402
from memory.embedder import Embedder  # noqa: E402
from memory.semantic_cache import SemanticCache  # noqa: E402

DATA = ROOT / "bench" / "eval_sets"
THRESHOLD = 0.92  # SEMANTIC_CACHE_THRESHOLD's default


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def measure_classifier(embedder: Embedder) -> dict:
    """Accuracy, confusion and per-turn cost of the classifier on the labelled set."""
    rows = load("classes_eval.jsonl")
    classifier = QueryClassifier(embedder)
    labels = [c.name for c in classifier.current().classes]
    vectors = embedder.embed([r["text"] for r in rows])
    confusion: Counter[tuple[str, str]] = Counter()
    methods: Counter[str] = Counter()
    unsure, costs, knn_costs = 0, [], []
    for row, vector in zip(rows, vectors, strict=True):
        classifier.classify(row["text"], vector)  # warm
        started = time.perf_counter()
        found = classifier.classify(row["text"], vector)
        costs.append(time.perf_counter() - started)
        if found.method == "knn":
            knn_costs.append(costs[-1])
        confusion[(row["label"], found.label)] += 1
        methods[found.method] += 1
        unsure += not found.confident
    embed_costs = []
    for row in rows[:100]:
        started = time.perf_counter()
        embedder.embed([row["text"]])
        embed_costs.append(time.perf_counter() - started)
    correct = sum(n for (truth, got), n in confusion.items() if truth == got)
    per_class = {label: round(confusion[(label, label)] / max(1, sum(n for (t, _), n in confusion.items()
                                                                      if t == label)), 3) for label in labels}
    return {
        "messages": len(rows), "accuracy": round(correct / len(rows), 4), "recall_by_class": per_class,
        "confusion": {t: {g: confusion[(t, g)] for g in labels} for t in labels},
        "methods": dict(methods), "unsure_share": round(unsure / len(rows), 4),
        "classify_ms": summary_ms(costs), "classify_ms_knn": summary_ms(knn_costs),
        "embedding_ms_for_reference": summary_ms(embed_costs),
    }


def measure_cache(embedder: Embedder, workdir: Path, threshold: float = THRESHOLD) -> dict:
    """False hits and hits over the pairs, and the lookup's latency with 1,000 entries in the scope."""
    pairs = load("cache_pairs.jsonl")
    cache = SemanticCache(SqliteDatabase(workdir / "memory.db"))
    va = embedder.embed([p["a"] for p in pairs])
    vb = embedder.embed([p["b"] for p in pairs])
    hits = {True: 0, False: 0}
    for i, (pair, a, b) in enumerate(zip(pairs, va, vb, strict=True)):
        scope = f"pair-{i}"  # one scope per pair: only the pair's own question can answer it
        cache.store(scope, "k", "key", "s", "knowledge", pair["a"], a, "answer", 10, 3600)
        hits[pair["paraphrase"]] += cache.lookup(scope, "k", "key", pair["b"], b, threshold) is not None
    n_para = sum(p["paraphrase"] for p in pairs)
    n_non = len(pairs) - n_para
    sims = np.sum(np.asarray(va) * np.asarray(vb), axis=1)
    rng = np.random.default_rng(0)
    for i in range(1000):  # a busy scope: 1,000 entries of random unit vectors
        v = rng.normal(size=len(va[0])).astype(np.float32)
        cache.store("busy", "k", "key", "s", "knowledge", f"filler {i}", v / np.linalg.norm(v), "x", 10, 3600)
    cache.store("busy", "k", "key", "s", "knowledge", pairs[0]["a"], va[0], "answer", 10, 3600)
    latencies = []
    for _ in range(200):
        started = time.perf_counter()
        assert cache.lookup("busy", "k", "key", pairs[0]["b"], vb[0], threshold) is not None
        latencies.append(time.perf_counter() - started)
    return {
        "pairs": len(pairs), "paraphrases": n_para, "non_paraphrases": n_non, "threshold": threshold,
        "hit_rate_on_paraphrases": round(hits[True] / n_para, 4),
        "false_hit_rate": round(hits[False] / n_non, 4),
        "cosine_only_false_hit_rate": round(float(np.mean(sims[[not p["paraphrase"] for p in pairs]] >= threshold)), 4),
        "lookup_ms_1000_entries": summary_ms(latencies),
    }


def markdown(result: dict) -> str:
    c, k = result["classifier"], result["cache"]
    labels = list(c["confusion"])
    lines = [f"Classifier: {c['messages']} messages, accuracy **{c['accuracy']:.1%}**, unsure (default route) "
             f"{c['unsure_share']:.1%}; classification p50 {c['classify_ms']['p50']} ms, p95 {c['classify_ms']['p95']} "
             f"ms (by examples alone: p50 {c['classify_ms_knn']['p50']} ms) given the vector (the embedding itself: "
             f"p50 {c['embedding_ms_for_reference']['p50']} ms, shared with "
             "recall).", "", "| truth \\ predicted | " + " | ".join(labels) + " | recall |",
             "|---|" + "---:|" * (len(labels) + 1)]
    for t in labels:
        row = " | ".join(str(c["confusion"][t][g]) for g in labels)
        lines.append(f"| {t} | {row} | {c['recall_by_class'][t]:.1%} |")
    lines += ["", f"Semantic cache at threshold {k['threshold']}: {k['paraphrases']} paraphrase pairs, "
              f"{k['non_paraphrases']} near-miss pairs; hit rate on paraphrases "
              f"**{k['hit_rate_on_paraphrases']:.1%}**, "
              f"false-hit rate **{k['false_hit_rate']:.1%}** (cosine alone: {k['cosine_only_false_hit_rate']:.1%}); "
              f"lookup with 1,000 entries p50 {k['lookup_ms_1000_entries']['p50']} ms."]
    if "service" in result:
        s = result["service"]
        lines += ["", f"Through the service (HTTP, scripted node): hit p50 {s['hit_ms']['p50']} ms vs. miss p50 "
                  f"{s['miss_ms']['p50']} ms; 50% hit mix {s['mix_turns_per_s']} turns/s vs. cache off "
                  f"{s['off_turns_per_s']} turns/s ({s['turns']} turns each, one client)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--service", action="store_true", help="also measure through the real service")
    args = parser.parse_args()
    embedder = Embedder()
    embedder.load()
    with tempfile.TemporaryDirectory() as tmp:
        result = {"classifier": measure_classifier(embedder), "cache": measure_cache(embedder, Path(tmp))}
        if args.service:
            from bench.cache_service import measure_service

            result["service"] = measure_service(Path(tmp))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "classify.json").write_text(json.dumps(result, indent=2))
    print(markdown(result))


if __name__ == "__main__":
    main()
