"""The chat models the graph talks to: each configured node (primary and fallbacks, each behind its circuit),
or the embedded node when none is configured, and how the JSON contract is enforced on them."""

from __future__ import annotations

import httpx
from langchain_openai import ChatOpenAI

from config.settings import Settings
from graph.deps import ContractMode
from inference.backends import Backend, CircuitBreaker
from inference.local_node import ALIAS, LocalInferenceNode
from inference.plain_completions import PlainCompletions


def make_backends(settings: Settings) -> list[Backend]:
    """The primary node and the fallbacks, in order, each with its own circuit (the primary is set by now:
    INFERENCE_BASE_URL, or the embedded node's address from `embedded_node`)."""
    if not settings.inference_base_url:
        raise ValueError("no inference node: set INFERENCE_BASE_URL, or start the embedded node first")
    return [Backend(url, make_chat_model(settings, url),
                    CircuitBreaker(settings.circuit_failure_threshold, settings.circuit_cooldown_seconds))
            for url in [settings.inference_base_url, *settings.fallback_urls]]


def make_chat_model(settings: Settings, base_url: str | None = None) -> ChatOpenAI:
    """One inference node as a LangChain chat model (OpenAI protocol)."""
    model = ChatOpenAI(
        base_url=base_url or settings.inference_base_url,
        api_key=settings.inference_api_key,
        model=settings.inference_model,
        temperature=settings.temperature,
        timeout=httpx.Timeout(settings.inference_timeout_seconds, connect=settings.inference_connect_timeout_seconds),
        max_retries=settings.inference_max_retries,
        stream_usage=True,
    )
    model.async_client = PlainCompletions(model.root_async_client)  # the same SDK call, minus ~2 ms a turn
    return model


def embedded_node(settings: Settings) -> tuple[Settings, LocalInferenceNode | None]:
    """With INFERENCE_BASE_URL unset: the embedded node (not started yet) and the settings pointing at it."""
    if settings.inference_base_url is not None:
        return settings, None
    node = LocalInferenceNode(settings.local_model_path, settings.local_context_tokens, settings.local_threads,
                              log_path=settings.data_dir / "inference-node.log")
    return settings.model_copy(update={
        "inference_base_url": node.base_url,
        "inference_model": ALIAS,
        "context_tokens": min(settings.context_tokens, settings.local_context_tokens),
        "max_tokens": min(settings.max_tokens, settings.local_max_tokens),
        "inference_response_format": "schema-embedded" if settings.inference_response_format in ("auto", "schema")
        else settings.inference_response_format,
    }), node


def contract_mode(settings: Settings) -> ContractMode:
    """`schema` (OpenAI json_schema), `schema-embedded` (llama-cpp-python's form), `prompt-only` or `off`."""
    mode = settings.inference_response_format
    return "prompt-only" if mode == "auto" else mode
