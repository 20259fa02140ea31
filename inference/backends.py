"""Inference backends in order, each behind a circuit breaker: the primary node, then INFERENCE_FALLBACK_URLS.

Retries with exponential backoff and jitter on connection errors, 429 and 5xx (never on other 4xx) are the
openai SDK's own (`INFERENCE_MAX_RETRIES`); a backend that still fails counts a failure on its circuit. After
`threshold` consecutive failures the circuit opens: that backend is skipped (fail fast, 503 when none is
left) until `cooldown` seconds pass, then one trial request half-opens it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import ConfigDict


class CircuitOpenError(RuntimeError):
    """Every backend's circuit is open."""

    def __init__(self, urls: list[str], retry_after: float) -> None:
        super().__init__(f"circuit open for {', '.join(urls)}")
        self.urls = urls
        self.retry_after = retry_after


class FirstTokenTimeout(openai.APITimeoutError):
    """The node accepted the request but sent no token in time."""


def is_backend_failure(exc: BaseException) -> bool:
    """Connection errors, timeouts, 429 and 5xx say the backend is unwell; other 4xx say the request is."""
    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


class CircuitBreaker:
    """closed → open after `threshold` consecutive failures → half-open after `cooldown` s → closed on success."""

    def __init__(self, threshold: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.trial = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.cooldown else "open"

    def allow(self) -> bool:
        """May a request go to this backend now? In half-open state, only one trial at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self.trial:
            self.trial = True
            return True
        return False

    def retry_after(self) -> float:
        return 0.0 if self.opened_at is None else max(0.0, self.cooldown - (self.clock() - self.opened_at))

    def success(self) -> None:
        self.failures, self.opened_at, self.trial = 0, None, False

    def failure(self) -> None:
        self.failures += 1
        self.trial = False
        if self.failures >= self.threshold or self.opened_at is not None:
            self.opened_at = self.clock()


class Backend:
    """One inference node: its URL, its chat model and its circuit."""

    def __init__(self, url: str, model: BaseChatModel, breaker: CircuitBreaker) -> None:
        self.url, self.model, self.breaker = url, model, breaker


class FailoverChatModel(BaseChatModel):
    """Tries the backends in order, skipping open circuits; a stream fails over only before its first token."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    backends: list[Any]
    first_token_timeout: float = 120.0

    @property
    def _llm_type(self) -> str:
        return "failover"

    def _candidates(self) -> list[Backend]:
        ready = [b for b in self.backends if b.breaker.allow()]
        if not ready:
            raise CircuitOpenError([b.url for b in self.backends],
                                   min(b.breaker.retry_after() for b in self.backends))
        return ready

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        raise NotImplementedError("the service calls inference asynchronously")

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        error: BaseException | None = None
        for backend in self._candidates():
            try:
                result = await backend.model._agenerate(messages, stop=stop, **kwargs)
            except Exception as exc:
                if not is_backend_failure(exc):
                    backend.breaker.success()  # it answered; the request was wrong
                    raise
                backend.breaker.failure()
                error = exc
                continue
            backend.breaker.success()
            return result
        assert error is not None
        raise error

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        error: BaseException | None = None
        for backend in self._candidates():
            stream = backend.model._astream(messages, stop=stop, **kwargs)
            try:
                first = await asyncio.wait_for(anext(stream), self.first_token_timeout)
            except StopAsyncIteration:
                backend.breaker.success()
                return
            except TimeoutError:
                await stream.aclose()
                backend.breaker.failure()
                error = FirstTokenTimeout(request=_request(backend.url))
                continue
            except Exception as exc:
                if not is_backend_failure(exc):
                    backend.breaker.success()
                    raise
                backend.breaker.failure()
                error = exc
                continue
            yield first
            finished = _finish_reason(first)
            try:
                async for chunk in stream:
                    finished = finished or _finish_reason(chunk)
                    yield chunk
                if not finished:  # the connection closed without the final chunk: the reply is incomplete
                    raise openai.APIConnectionError(
                        message=f"the stream from {backend.url} ended before the reply was finished",
                        request=_request(backend.url))
            except Exception as exc:  # broke mid-way: too late to fail over
                if is_backend_failure(exc):
                    backend.breaker.failure()
                raise
            backend.breaker.success()
            return
        assert error is not None
        raise error


def _finish_reason(chunk: ChatGenerationChunk) -> str | None:
    info = chunk.generation_info or {}
    return info.get("finish_reason") or (chunk.message.response_metadata or {}).get("finish_reason")


def _request(url: str):
    import httpx

    return httpx.Request("POST", url.rstrip("/") + "/chat/completions")
