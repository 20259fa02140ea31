"""The dialogues' figures on the service's Prometheus registry (served with the rest at `GET /metrics`)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from server.metrics import LATENCY_BUCKETS, Metrics

SHARE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


class DialogueMetrics:
    """Counters and histograms of finished dialogues, gauges of the queue and of participants' circuits.
    Labels are closed sets (statuses, reasons) or capped ones (endpoints: ParticipantModels keeps 64)."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.finished = Counter("orchestrator_dialogues_total", "Finished dialogues",
                                ["status", "ending_reason"], registry=r)
        self.turns = Counter("orchestrator_dialogue_turns_total", "Turns of finished dialogues", registry=r)
        self.tokens = Counter("orchestrator_dialogue_tokens_total", "Tokens generated in finished dialogues",
                              registry=r)
        self.turn_latency = Histogram("orchestrator_dialogue_turn_seconds", "Latency of one dialogue turn",
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.repetition = Histogram("orchestrator_dialogue_repetition_score", "Largest n-gram overlap of a "
                                    "turn with an earlier one, per dialogue", buckets=SHARE_BUCKETS, registry=r)
        self.distinct_2 = Histogram("orchestrator_dialogue_distinct_2", "distinct-2 per dialogue",
                                    buckets=SHARE_BUCKETS, registry=r)
        self.running = Gauge("orchestrator_dialogues_running", "Dialogues running now", registry=r)
        self.queued = Gauge("orchestrator_dialogues_queued", "Dialogues waiting for a slot", registry=r)
        self.circuit_open = Gauge("orchestrator_dialogue_circuit_open", "1 while a participant node's "
                                  "circuit is open", ["endpoint"], registry=r)

    def observe(self, status: str, metrics: dict[str, Any], turns: list[dict[str, Any]]) -> None:
        """Count one finished dialogue."""
        self.finished.labels(status, metrics.get("ending_reason") or "none").inc()
        self.turns.inc(len(turns))
        self.tokens.inc(sum(int(t["tokens"]) for t in turns))
        for turn in turns:
            self.turn_latency.observe(float(turn["latency_ms"]) / 1000)
        if turns:
            self.repetition.observe(metrics["repetition_score"])
            self.distinct_2.observe(metrics["distinct_2"])

    def circuits(self, states: dict[str, str]) -> None:
        """Publish the participant endpoints' circuit states."""
        for endpoint, state in states.items():
            self.circuit_open.labels(endpoint).set(1 if state == "open" else 0)
