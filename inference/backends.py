"""Inference backends in order, each behind a circuit breaker: the primary node, then INFERENCE_FALLBACK_URLS.

Retries with exponential backoff and jitter on connection errors, 429 and 5xx (never on other 4xx) are the
openai SDK's own (`INFERENCE_MAX_RETRIES`); a backend that still fails counts a failure on its circuit. After
`threshold` consecutive failures the circuit opens: that backend is skipped (fail fast, 503 when none is
left) until `cooldown` seconds pass, then one trial request half-opens it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

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


class BackendDown(openai.APIConnectionError):
    """A backend known to be down (the embedded node while it is restarted): what happened and when to retry."""

    def __init__(self, url: str, message: str, retry_after: float) -> None:
        super().__init__(message=message, request=_request(url))
        self.retry_after = retry_after


class FirstTokenTimeout(openai.APITimeoutError):
    """The node accepted the request but sent no token in time."""


class CallTimeout(openai.APITimeoutError):
    """The whole inference call (retries, fallbacks and the whole stream) took longer than its bound."""

    def __init__(self, url: str, seconds: float) -> None:
        super().__init__(request=_request(url))
        self.message = (f"the inference call was not finished after {seconds:g} s (INFERENCE_TIMEOUT_SECONDS bounds "
                        "a whole call, streamed or not)")
        self.args = (self.message,)


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
        """May a request go to this backend now? In half-open state, only one trial at a time: the caller
        that gets True must then report `success()`, `failure()` or, if it never got an answer, `release()`."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self.trial:
            self.trial = True
            return True
        return False

    def release(self) -> None:
        """Give back a trial that ended without an outcome (cancelled): the next request may try again."""
        self.trial = False

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
    """One inference node: its URL, its chat model, its circuit, and `down`, which says why the node is known
    to be down right now (the embedded node's supervisor sets it), or None."""

    def __init__(self, url: str, model: BaseChatModel, breaker: CircuitBreaker,
                 down: Callable[[], BackendDown | None] | None = None) -> None:
        self.url, self.model, self.breaker, self.down = url, model, breaker, down

    def known_down(self) -> BackendDown | None:
        return self.down() if self.down is not None else None

    def explain(self, exc: Exception) -> Exception:
        """A failure as the caller should see it: if the node is now known to be down, that."""
        return self.known_down() or exc


class FailoverChatModel(BaseChatModel):
    """Tries the backends in order, skipping open circuits; a stream fails over only before its first token."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    backends: list[Any]
    first_token_timeout: float = 120.0
    """Seconds a stream may wait for its first token from one backend (then the next one is tried)."""
    total_timeout: float | None = None
    """Seconds the whole call may take, all backends, retries and the whole stream included: a node that
    drips a token every few seconds cannot hold a turn for ever (each read alone would be in time)."""

    @property
    def _llm_type(self) -> str:
        return "failover"

    def _candidates(self) -> Iterator[Backend]:
        """The backends whose circuit lets a request through, each asked only when it is about to be tried:
        asking takes a half-open circuit's only trial, so a fallback behind a primary that answers is never
        asked. CircuitOpenError when no backend was let through."""
        tried = False
        down: list[BackendDown] = []
        for backend in self.backends:
            known = backend.known_down()
            if known is not None:  # restarting: not tried, and not a failure of its circuit
                down.append(known)
            elif backend.breaker.allow():
                tried = True
                yield backend
        if not tried:
            if down:
                raise down[0]
            raise CircuitOpenError([b.url for b in self.backends],
                                   min(b.breaker.retry_after() for b in self.backends))

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        raise NotImplementedError("the service calls inference asynchronously")

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        try:
            async with asyncio.timeout(self.total_timeout):
                return await self._agenerate_in_time(messages, stop, **kwargs)
        except TimeoutError:  # the SDK's own timeouts are openai.APITimeoutError, not TimeoutError
            raise CallTimeout(self.backends[0].url, self.total_timeout or 0) from None

    async def _agenerate_in_time(self, messages: list[BaseMessage], stop: list[str] | None,
                                 **kwargs: Any) -> ChatResult:
        error: BaseException | None = None
        for backend in self._candidates():
            try:
                with _trial_given_back(backend.breaker):
                    result = await backend.model._agenerate(messages, stop=stop, **kwargs)
            except Exception as exc:
                if not is_backend_failure(exc):
                    backend.breaker.success()  # it answered; the request was wrong
                    raise
                backend.breaker.failure()
                error = backend.explain(exc)
                continue
            backend.breaker.success()
            return result
        assert error is not None
        raise error

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        error: BaseException | None = None
        loop = asyncio.get_running_loop()
        # One deadline for the whole call; each read waits at most until it (a timeout around each `anext`
        # only, never around `yield`, where it would cancel whatever the reader is doing).
        deadline = loop.time() + self.total_timeout if self.total_timeout else None
        for backend in self._candidates():
            with _trial_given_back(backend.breaker):
                stream = cast(AsyncGenerator[ChatGenerationChunk, None],
                              backend.model._astream(messages, stop=stop, **kwargs))
                first_by = loop.time() + self.first_token_timeout
                try:
                    async with asyncio.timeout_at(first_by if deadline is None else min(first_by, deadline)):
                        first = await anext(stream)
                except StopAsyncIteration:
                    backend.breaker.success()
                    return
                except TimeoutError:
                    await stream.aclose()
                    if deadline is not None and loop.time() >= deadline:
                        raise CallTimeout(backend.url, self.total_timeout or 0) from None
                    backend.breaker.failure()
                    error = FirstTokenTimeout(request=_request(backend.url))
                    continue
                except Exception as exc:
                    if not is_backend_failure(exc):
                        backend.breaker.success()
                        raise
                    backend.breaker.failure()
                    error = backend.explain(exc)
                    continue
                yield first
                finished = _finish_reason(first)
                try:
                    while True:
                        try:
                            async with asyncio.timeout_at(deadline):
                                chunk = await anext(stream)
                        except StopAsyncIteration:
                            break
                        except TimeoutError:
                            await stream.aclose()
                            raise CallTimeout(backend.url, self.total_timeout or 0) from None
                        finished = finished or _finish_reason(chunk)
                        yield chunk
                    if not finished:  # the connection closed without the final chunk: the reply is incomplete
                        raise openai.APIConnectionError(
                            message=f"the stream from {backend.url} ended before the reply was finished",
                            request=_request(backend.url))
                except Exception as exc:  # broke mid-way: too late to fail over
                    if is_backend_failure(exc):
                        backend.breaker.failure()
                    explained = backend.explain(exc)
                    if explained is not exc:
                        raise explained from exc
                    raise
                backend.breaker.success()
                return
        assert error is not None
        raise error


@contextmanager
def _trial_given_back(breaker: CircuitBreaker) -> Iterator[None]:
    """An attempt that ends without an outcome (cancelled, or a stream closed by its reader: BaseException,
    which `except Exception` lets through) gives back the half-open trial it holds, or the circuit would
    refuse every request until restart."""
    holds_trial = breaker.trial
    try:
        yield
    except BaseException:
        if holds_trial and breaker.trial:
            breaker.release()
        raise


def _finish_reason(chunk: ChatGenerationChunk) -> str | None:
    info = chunk.generation_info or {}
    return info.get("finish_reason") or (chunk.message.response_metadata or {}).get("finish_reason")


def _request(url: str):
    import httpx

    return httpx.Request("POST", url.rstrip("/") + "/chat/completions")
