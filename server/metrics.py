"""Prometheus metrics of one service process, on its own registry (served at `GET /metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """The service's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("orchestrator_requests_total", "HTTP requests", ["route", "method", "status"],
                                registry=r)
        self.request_latency = Histogram("orchestrator_request_seconds", "HTTP request latency",
                                         ["route", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.inference_latency = Histogram("orchestrator_inference_seconds", "Inference call latency",
                                           buckets=LATENCY_BUCKETS, registry=r)
        self.recall_latency = Histogram("orchestrator_recall_seconds", "Recall latency", buckets=LATENCY_BUCKETS,
                                        registry=r)
        self.tokens = Counter("orchestrator_tokens_total", "Tokens reported by the inference node", ["kind"],
                              registry=r)
        self.turns = Counter("orchestrator_turns_total", "Turns by outcome", ["outcome"], registry=r)
        self.recall_degraded = Counter("orchestrator_recall_degraded_total", "Turns whose recall was degraded",
                                       registry=r)
        self.circuit_open = Gauge("orchestrator_circuit_open", "1 while a backend's circuit is open",
                                  ["backend"], registry=r)
        self.circuit_state = Gauge("orchestrator_circuit_state", "1 for the state each backend's circuit is in "
                                   "(closed, half-open, open), 0 for the others", ["backend", "state"], registry=r)
        self.node_state = Gauge("orchestrator_inference_node_state", "1 for the state the embedded inference "
                                "node is in, 0 for the others", ["state"], registry=r)
        self.node_restarts = Gauge("orchestrator_inference_node_restarts", "Times the embedded inference node "
                                   "was restarted after it died", registry=r)
        self.dependency_up = Gauge("orchestrator_dependency_up", "1 while a storage dependency answered the last "
                                   "health probe (memory_db, vector_store, postgres), 0 while it failed",
                                   ["dependency"], registry=r)
        self.active_sessions = Gauge("orchestrator_active_sessions", "Sessions with a recent turn", registry=r)
        self.turns_in_progress = Gauge("orchestrator_turns_in_progress", "Sessions with a turn running or queued",
                                       registry=r)

        self.checkpoint_rows = Gauge("orchestrator_checkpoint_rows", "Rows in the checkpoint store", ["table"],
                                     registry=r)
        self.checkpoint_bytes = Gauge("orchestrator_checkpoint_bytes",
                                      "Checkpoint store on disk (file and WAL), bytes", registry=r)
        self.checkpoint_free_bytes = Gauge("orchestrator_checkpoint_free_bytes",
                                           "Free pages inside the checkpoint file, bytes", registry=r)
        self.checkpoints_pruned = Counter("orchestrator_checkpoints_pruned_total",
                                          "Checkpoints deleted by the retention policy", registry=r)
        self.checkpoint_bytes_reclaimed = Counter("orchestrator_checkpoint_bytes_reclaimed_total",
                                                  "Bytes the checkpoint file gave back to the OS", registry=r)

        # Routing and the semantic cache (graph/routing.py).
        self.turn_class = Counter("orchestrator_turn_class_total", "Turns by query class and how it was found",
                                  ["query_class", "method"], registry=r)
        self.classify_latency = Histogram("orchestrator_classify_seconds", "Classification cost per turn, "
                                          "given the query vector", buckets=(0.0005, 0.001, 0.002, 0.005, 0.01,
                                                                             0.025, 0.1), registry=r)
        self.cache_lookups = Counter("orchestrator_semantic_cache_total", "Semantic cache lookups by result",
                                     ["result"], registry=r)
        self.cache_hit_ratio = Gauge("orchestrator_semantic_cache_hit_ratio", "Hits over lookups since start",
                                     registry=r)
        self.cache_saved_tokens = Counter("orchestrator_semantic_cache_saved_tokens_total", "Tokens the cached "
                                          "answers took when they were first made", registry=r)
        self.cache_counts: dict[str, int] = {}
        self.cache_entries = Gauge("orchestrator_semantic_cache_entries", "Entries in the semantic cache",
                                   registry=r)

    def cache_result(self, result: str, saved_tokens: int = 0) -> None:
        """Count a lookup (`hit` or `miss`) and keep the hit ratio current."""
        self.cache_lookups.labels(result).inc()
        self.cache_saved_tokens.inc(saved_tokens)
        self.cache_counts[result] = self.cache_counts.get(result, 0) + 1
        total = sum(self.cache_counts.values())
        self.cache_hit_ratio.set(self.cache_counts.get("hit", 0) / total)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
