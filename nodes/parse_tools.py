"""parse_tools: the model's raw reply becomes the assistant message, with tool calls, under the contract."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig

from graph.contract import parse_reply
from graph.declared_tools import check_calls
from graph.deps import Deps
from graph.state import Node, State

log = logging.getLogger(__name__)


def make_parse_tools(deps: Deps) -> Node:
    """Build the parse_tools node."""

    async def parse_tools(state: State, config: RunnableConfig) -> dict[str, Any]:
        """Parse the contract JSON (or native tool calls); a reply that ignores it is kept as plain text.
        Calls to tools the client did not declare, or with arguments their schema refuses, are dropped."""
        raw = state.get("raw_output") or AIMessage("")
        meta = raw.response_metadata or {}
        # Streamed replies carry clean text as content and the raw reply in metadata.
        content = meta.get("raw_content") or (raw.text if isinstance(raw.content, list) else str(raw.content))
        parsed = parse_reply(content, raw.tool_calls)
        finish = meta.get("finish_reason")
        if finish == "length" and parsed.status == "ok":
            parsed.status = "truncated"
        if parsed.status not in ("ok", "native"):
            log.info("contract %s: %s", parsed.status, "; ".join(parsed.problems))
        calls, dropped = check_calls(parsed.tool_calls, state.get("tools"))
        if dropped:
            log.info("tool calls dropped: %s", "; ".join(f"{d['name']}: {d['reason']}" for d in dropped))
        metadata = {
            "contract": parsed.status,
            "contract_problems": parsed.problems,
            "finish_reason": finish,
            "model_name": meta.get("model_name"),
        }
        if dropped:
            metadata["tool_calls_dropped"] = dropped
        route = state.get("route")
        if route:  # stored with the message: which class answered it, and whether from the semantic cache
            metadata["query_class"] = route["class"]
            if route.get("cache") == "hit":
                metadata["cache"] = "hit"
        message = AIMessage(
            content=parsed.text,
            tool_calls=calls,
            id=f"ai-{uuid.uuid4().hex}",
            usage_metadata=raw.usage_metadata,
            response_metadata=metadata,
        )
        return {"messages": [message]}

    return parse_tools
