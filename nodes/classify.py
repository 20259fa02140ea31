"""classify: the turn's class and route, from its query vector (the one recall uses) and the classes file."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig

from graph.classifier import Classification
from graph.deps import Deps
from graph.state import Node, State
from graph.window import last_user_text

log = logging.getLogger(__name__)


def make_classify(deps: Deps) -> Node:
    """Build the classify node (the graph's first)."""

    def run(query: str) -> tuple[Classification, float]:
        assert deps.router is not None
        vector = None
        if query:
            try:
                # The vector recall embeds anyway: prefetched at the turn's start, remembered by the embedder,
                # so it is computed once per turn whichever of the two asks first.
                vector = deps.embedder.embed_one(query)
            except Exception as exc:  # no embedder: patterns and the default class still classify
                log.warning("classify without the query vector: %r", exc)
        started = time.perf_counter()
        found = deps.router.classifier.classify(query, vector)
        return found, (time.perf_counter() - started) * 1000

    async def classify(state: State, config: RunnableConfig) -> dict[str, Any]:
        """Set `route` for the turn: its class and what the class decides (graph/routing.py)."""
        if deps.router is None:
            return {"route": None}
        query = last_user_text(state.get("messages", []))
        try:
            found, spent_ms = await asyncio.to_thread(run, query)
        except Exception as exc:  # a broken classes file at start-up: the turn goes on, unrouted
            log.error("classification failed, the turn goes unrouted: %r", exc)
            return {"route": None}
        route = deps.router.route(found)
        route["classify_ms"] = round(spent_ms, 3)
        messages = state.get("messages") or []
        if not messages or not isinstance(messages[-1], HumanMessage):
            route["cache"] = "off"  # tool results continuing a turn: the question's cached answer is no answer
        return {"route": route}

    return classify
