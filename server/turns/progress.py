"""What a turn's run has done so far, read off the graph's stream: the streamed text, the reply, what each node
took and reported (the turn's `meta`: recall, prompt, tokens, timings), and whether the turn is stored."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk

from server.metrics import Metrics


@dataclass
class TurnProgress:
    """One turn's run, node by node. `meta` is shared with the events the door reads (and its log line)."""

    session_id: str
    added: list[str | None]
    """Ids of the messages the turn added to the thread (undone if it fails)."""
    metrics: Metrics
    meta: dict[str, Any] = field(default_factory=dict)
    streamed: str = ""
    final: AIMessage | None = None
    inferred: bool = False
    """The reply is complete: from here on the turn is stored even if its client leaves."""
    stored: bool = False
    """persist has run: the first run's checkpoint holds the whole turn."""
    summary_due: bool = False
    _clock: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.meta.update(recall_degraded=False, session_id=self.session_id)

    def token(self, message: Any, info: dict[str, Any]) -> str:
        """The text a `messages` chunk of the infer node adds to the answer ("" for anything else)."""
        if info.get("langgraph_node") == "infer" and isinstance(message, AIMessageChunk) and message.text:
            self.streamed += message.text  # already the response text (graph/contract_stream.py)
            return message.text
        return ""

    def updates(self, chunk: Any) -> None:
        """Record an `updates` chunk: the nodes that just finished, or the stop before summarise."""
        self.summary_due = self.summary_due or "__interrupt__" in (chunk or {})
        for node, update in (chunk or {}).items():
            now = time.perf_counter()
            elapsed, self._clock = now - self._clock, now
            self._node(node, update or {}, elapsed)

    def _node(self, node: str, update: dict[str, Any], elapsed: float) -> None:
        meta, metrics = self.meta, self.metrics
        if node == "classify":
            route = update.get("route")
            if route:  # the turn's class and route, for its log line, its headers and the stored message
                meta["route"] = route
                meta["query_class"] = route["class"]
                meta["cache"] = route["cache"] if route["cache"] != "off" else None
                metrics.turn_class.labels(route["class"], route["method"]).inc()
                metrics.classify_latency.observe(route.get("classify_ms", 0) / 1000)
        elif node == "recall":
            recalled = update.get("recalled") or {}
            meta["recall_degraded"] = bool(recalled.get("degraded"))
            meta["recall_error"] = recalled.get("error")
            meta["recall_ms"] = round(elapsed * 1000, 2)
            metrics.recall_latency.observe(elapsed)
            if meta["recall_degraded"]:
                metrics.recall_degraded.inc()
        elif node == "assemble":
            meta["prompt"] = update.get("prompt_stats")
        elif node == "infer":
            self.inferred = True
            raw = update.get("raw_output")
            route = update.get("route") or meta.get("route")  # infer returns the route only on a hit
            if route and meta.get("cache"):
                meta["route"], meta["cache"] = route, route["cache"]
                cached = (raw.response_metadata or {}) if raw is not None else {}
                metrics.cache_result(route["cache"], int(cached.get("cache_saved_tokens") or 0))
            if raw is not None:
                meta["usage"] = raw.usage_metadata
                meta["usage_estimated"] = (raw.response_metadata or {}).get("usage_estimated")
                meta["inference_ms"] = round(elapsed * 1000, 2)
                metrics.inference_latency.observe(elapsed)
                for kind, key in (("input", "input_tokens"), ("output", "output_tokens")):
                    metrics.tokens.labels(kind).inc((raw.usage_metadata or {}).get(key) or 0)
        elif node == "parse_tools":
            self.final = update["messages"][-1]
            self.added.append(self.final.id)
            meta["tool_calls_dropped"] = self.final.response_metadata.get("tool_calls_dropped")
        elif node == "persist" and self.final is not None:
            self.stored = True

    def unshown(self) -> str:
        """What the stream could not show as it came (a reply that ignored the contract)."""
        text = self.final.text if self.final is not None else ""
        return text[len(self.streamed):] if text.startswith(self.streamed) else ""
