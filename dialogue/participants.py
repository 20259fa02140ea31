"""The chat model behind each participant, with its circuit breaker and rate limit.

A participant without `base_url` talks to the service's configured node (the chat graph's model: its
fallbacks and circuits). One with a `base_url` gets a backend of its own, built by the same factory
(inference/chat_models.py: retries, timeouts) behind its own circuit; it is kept by URL, so its circuit
counts failures across dialogues.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel

from config.settings import Settings
from dialogue.rate_limit import RateLimiter
from dialogue.state import Participant
from graph.budget import estimate_tokens
from inference.backends import Backend, CircuitBreaker, FailoverChatModel
from inference.chat_models import make_chat_model

CONFIGURED = "configured"
"""The endpoint key of participants on the service's own node."""


@dataclass(frozen=True)
class Reply:
    """One generated turn, before the ending checks."""

    text: str
    tokens: int
    latency_ms: float


class ParticipantModels:
    """Chat models by endpoint, and the rate limiter they share."""

    max_endpoints = 64  # distinct client-given URLs kept (each with its HTTP client and circuit)

    def __init__(self, settings: Settings, configured: BaseChatModel) -> None:
        self.settings = settings
        self.configured = configured
        self.limiter = RateLimiter()
        self._models: OrderedDict[str, FailoverChatModel] = OrderedDict()

    def endpoint(self, participant: Participant) -> str:
        """The key of the participant's node: its URL, or CONFIGURED."""
        return (participant.get("base_url") or "").rstrip("/") or CONFIGURED

    def model_for(self, participant: Participant) -> BaseChatModel:
        """The participant's chat model (created on first use)."""
        key = self.endpoint(participant)
        if key == CONFIGURED:
            return self.configured
        model = self._models.get(key)
        if model is None:
            settings = self.settings
            if key != (settings.inference_base_url or "").rstrip("/"):
                # The service's API key is for its own node; never send it to a URL a client named.
                settings = settings.model_copy(update={"inference_api_key": "not-needed"})
            breaker = CircuitBreaker(settings.circuit_failure_threshold, settings.circuit_cooldown_seconds)
            model = FailoverChatModel(backends=[Backend(key, make_chat_model(settings, key), breaker)],
                                      first_token_timeout=settings.inference_first_token_timeout_seconds)
            self._models[key] = model
            while len(self._models) > self.max_endpoints:
                self._models.popitem(last=False)
        else:
            self._models.move_to_end(key)
        return model

    def breakers(self) -> dict[str, str]:
        """The state of each participant endpoint's circuit (the configured node's are in /health)."""
        return {key: model.backends[0].breaker.state for key, model in self._models.items()}

    async def generate(self, participant: Participant, messages: list[dict[str, Any]]) -> Reply:
        """One turn from the participant's node, after its rate limit allows it. Failures propagate."""
        per_minute = participant.get("requests_per_minute")
        if per_minute is None:
            per_minute = self.settings.dialogue_rate_limit_per_minute
        key = f"{self.endpoint(participant)}|{participant.get('model') or ''}"
        model = self.model_for(participant)  # built before the slot: building a client takes ~0.2 s at first
        await self.limiter.acquire(key, per_minute)
        kwargs: dict[str, Any] = {"extra_body": {"max_tokens": self.settings.dialogue_max_tokens}}
        if participant.get("model"):
            kwargs["model"] = participant["model"]
        if participant.get("temperature") is not None:
            kwargs["temperature"] = participant["temperature"]
        started = time.perf_counter()
        message = await model.bind(**kwargs).ainvoke(messages)
        latency_ms = (time.perf_counter() - started) * 1000
        text = message.text if isinstance(message.text, str) else str(message.content)
        given = message.usage_metadata.get("output_tokens") if message.usage_metadata else None
        tokens = int(given or 0) or estimate_tokens(text)
        return Reply(text=text, tokens=tokens, latency_ms=round(latency_ms, 2))
