"""What a turn's class decides: how deep recall goes, the reply limit, the backend or model, and whether the
semantic cache may answer it. The classes file (graph/classifier.py) gives each class its options; `ROUTES`
(class → backend URL or model name) picks where it is answered, with the usual failover behind it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel

from graph.classifier import Classification, QueryClassifier


def parse_routes(text: str) -> dict[str, str]:
    """`ROUTES` as JSON (`{"small_talk": "http://small:8080/v1", "complex": "qwen2.5-32b"}`); ValueError if not."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"ROUTES must be a JSON object of class → backend URL or model name: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) and v for v in data.values()):
        raise ValueError("ROUTES must be a JSON object of class → backend URL or model name (non-empty strings)")
    return {str(k): v for k, v in data.items()}


def is_url(target: str) -> bool:
    """A route's target is a backend when it is a URL, a model name otherwise."""
    return "://" in target


@dataclass
class Router:
    """Classifies a turn and turns its class into the route the nodes follow."""

    classifier: QueryClassifier
    routes: dict[str, str] = field(default_factory=dict)
    models: dict[str, BaseChatModel] = field(default_factory=dict)
    """The chat model of each class routed to a backend URL (that backend first, then the default ones)."""
    cache_enabled: bool = False
    cache_threshold: float = 0.92
    cache_ttl_seconds: float = 3600.0

    def route(self, found: Classification) -> dict[str, Any]:
        """The route of a classified turn, as the graph's state keeps it (`state["route"]`)."""
        spec = self.classifier.spec(found.label) if found.confident else None
        options = spec.options if spec is not None else {}  # an unsure class takes the default route
        target = self.routes.get(found.label)
        cacheable = bool(options.get("cacheable")) and not options.get("depends_on_memory")
        return {
            "class": found.label,
            "confidence": found.confidence,
            "method": found.method if found.confident else f"{found.method}-unsure",
            "recall_top_k": options.get("recall_top_k"),
            "max_tokens": options.get("max_tokens"),
            "backend": target if target and is_url(target) else None,
            "model": target if target and not is_url(target) else None,
            "cache": "miss" if self.cache_enabled and cacheable else "off",
            "cache_ttl_seconds": float(options.get("ttl_seconds") or self.cache_ttl_seconds),
        }

    def chat_model(self, route: dict[str, Any] | None) -> BaseChatModel | None:
        """The class's own chat model, if ROUTES sends it to a backend; None: the default one."""
        return self.models.get(route["class"]) if route else None

    def public(self) -> dict[str, Any]:
        """What /health shows of the routes and the cache settings."""
        return {"routes": dict(self.routes), "semantic_cache": {
            "enabled": self.cache_enabled, "threshold": self.cache_threshold,
            "default_ttl_seconds": self.cache_ttl_seconds}}
