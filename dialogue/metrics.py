"""Quality metrics of one dialogue: turns, tokens and latency per participant, repetition, distinct-1/2,
mean turn length, ending reason."""

from __future__ import annotations

from typing import Any

from dialogue.ending import words
from dialogue.state import RepetitionCheck, Turn


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the turns (Li et al. 2016); 0 when there are none."""
    total, seen = 0, set()
    for text in texts:
        tokens = words(text)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return round(len(seen) / total, 4) if total else 0.0


def dialogue_metrics(turns: list[Turn], checks: list[RepetitionCheck], ending_reason: str | None
                     ) -> dict[str, Any]:
    """The metrics the API shows and the export filters on."""
    texts = [t["text"] for t in turns]
    per: dict[str, dict[str, Any]] = {}
    for turn in turns:
        entry = per.setdefault(turn["speaker"], {"turns": 0, "tokens": 0, "latency_ms": 0.0})
        entry["turns"] += 1
        entry["tokens"] += int(turn["tokens"])
        entry["latency_ms"] += float(turn["latency_ms"])
    for entry in per.values():
        entry["mean_latency_ms"] = round(entry["latency_ms"] / entry["turns"], 2)
        entry["latency_ms"] = round(entry["latency_ms"], 2)
    lengths = [len(words(text)) for text in texts]
    return {
        "turns": len(turns),
        "tokens": sum(int(t["tokens"]) for t in turns),
        "latency_ms": round(sum(float(t["latency_ms"]) for t in turns), 2),
        "participants": per,
        "repetition_score": max((c["ngram_overlap"] for c in checks), default=0.0),
        "max_similarity": max((c["similarity"] for c in checks), default=0.0),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "mean_turn_words": round(sum(lengths) / len(lengths), 2) if lengths else 0.0,
        "ending_reason": ending_reason,
    }

