"""The semantic cache in the graph: infer asks it before calling the model, persist fills it after a miss.

Only turns whose route says `cache: miss` (SEMANTIC_CACHE on, a class marked cacheable and not depending on
memory) take part; the entry's key is the scope, the API key's owner, and a hash of the model, system prompt and
tools, so an answer is never served to another project, another key or another set-up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig

from graph.config import RunOptions
from graph.deps import Deps
from graph.state import State
from graph.window import last_user_text
from memory.semantic_cache import request_key

log = logging.getLogger(__name__)


def _takes_part(deps: Deps, state: State) -> bool:
    """A cacheable route, on a turn that a user's question opens (tool results continuing a turn never are)."""
    route, messages = state.get("route") or {}, state.get("messages") or []
    if deps.router is None or deps.semantic_cache is None or route.get("cache") != "miss":
        return False
    last_new = next((m for m in reversed(messages) if not isinstance(m, AIMessage)), None)
    return isinstance(last_new, HumanMessage)


def _key(state: State, model: str | None) -> str:
    return request_key(model, state.get("system"), state.get("tools"))


def _owner(config: RunnableConfig) -> str | None:
    return (config.get("configurable") or {}).get("owner")


async def cached_reply(deps: Deps, state: State, config: RunnableConfig, model: str | None) -> AIMessage | None:
    """The cached raw reply for this turn's question, or None (a miss, or not cacheable). Never raises: a
    failing cache is a miss."""
    if not _takes_part(deps, state):
        return None
    assert deps.router is not None and deps.semantic_cache is not None
    cache, threshold = deps.semantic_cache, deps.router.cache_threshold
    opts, query = RunOptions.from_config(config), last_user_text(state.get("messages", []))

    def look() -> Any:
        return cache.lookup(opts.scope, _owner(config), _key(state, model), query, deps.embedder.embed_one(query),
                            threshold)

    try:
        hit = await asyncio.to_thread(look)
    except Exception as exc:
        log.warning("semantic cache lookup failed (served as a miss): %r", exc)
        return None
    if hit is None:
        return None
    return AIMessage(content=hit.answer, response_metadata={
        "finish_reason": "stop", "model_name": model, "cache": "hit", "cache_saved_tokens": hit.tokens,
        "cache_similarity": round(hit.similarity, 4), "cache_entry": hit.id})


async def remember_reply(deps: Deps, state: State, config: RunnableConfig, model: str | None) -> None:
    """After a miss: keep the model's raw reply for later paraphrases of the question, unless it is a tool
    call or was cut by the reply limit."""
    raw, route = state.get("raw_output"), state.get("route") or {}
    if raw is None or not _takes_part(deps, state):
        return
    meta = raw.response_metadata or {}
    messages = state.get("messages") or []
    final = messages[-1] if messages else None
    if meta.get("cache") == "hit" or meta.get("finish_reason") == "length" or getattr(final, "tool_calls", None):
        return
    answer = meta.get("raw_content") or (raw.content if isinstance(raw.content, str) else raw.text)
    usage = raw.usage_metadata
    tokens = (usage["input_tokens"] + usage["output_tokens"]) if usage else 0
    opts, query = RunOptions.from_config(config), last_user_text(state.get("messages", []))
    assert deps.semantic_cache is not None
    cache = deps.semantic_cache

    def store() -> None:
        cache.store(opts.scope, _owner(config), _key(state, model), opts.thread_id, route["class"], query,
                    deps.embedder.embed_one(query), answer, tokens, route["cache_ttl_seconds"])

    try:
        await asyncio.to_thread(store)
    except Exception as exc:
        log.warning("semantic cache store failed: %r", exc)
