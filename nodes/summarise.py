"""summarise: past a threshold, fold the messages older than the recent window into the rolling summary."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from langchain_core.messages import HumanMessage, RemoveMessage
from langchain_core.runnables import RunnableConfig

import prompts
from graph.config import RunOptions
from graph.deps import Deps
from graph.state import Node, State
from graph.transcript import to_chat
from graph.window import window_start

log = logging.getLogger(__name__)


def summary_due(state: State, limits) -> bool:
    """Whether the session holds more messages than SUMMARY_TRIGGER_MESSAGES, older than its recent window."""
    messages = state.get("messages", [])
    return len(messages) > limits.summary_trigger_messages and window_start(messages, limits.recent_messages) > 0


def make_summarise(deps: Deps) -> Node:
    """Build the summarise node."""
    limits = deps.limits

    async def summarise(state: State, config: RunnableConfig) -> dict[str, Any]:
        """One inference call updates the summary; the folded messages leave the state.

        It runs after persist, when the client already has its reply. A failure keeps the messages
        and the old summary, to be folded next time.
        """
        if not summary_due(state, limits):
            return {}
        messages = state["messages"]
        old = messages[:window_start(messages, limits.recent_messages)]
        rendered = "\n".join(f"{role}: {text}" for role, text in (t for t in map(to_chat, old) if t))
        prompt = prompts.render("summarise", summary=state.get("summary") or "(none yet)", messages=rendered)
        try:
            reply = await deps.chat_model.ainvoke(
                [HumanMessage(prompt)], config, extra_body={"max_tokens": 400}
            )
        except Exception:
            log.exception("summarising failed; the messages are kept and folded on a later turn")
            return {}
        summary = reply.text.strip()
        if not summary:
            return {}
        await extract_entities(deps, rendered, RunOptions.from_config(config), config)
        return {"summary": summary, "messages": [RemoveMessage(id=m.id) for m in old if m.id]}

    return summarise


def parse_entities(text: str) -> list[dict[str, str]]:
    """The entity list of an extraction reply; raises ValueError when it is not one."""
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end < start:
        raise ValueError("no JSON array in the reply")
    items = json.loads(text[start : end + 1])
    if not isinstance(items, list):
        raise ValueError("not a JSON array")
    out = []
    for item in items[:8]:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"].strip():
            out.append({"name": item["name"].strip()[:100], "type": str(item.get("type") or "thing")[:40],
                        "notes": str(item.get("notes") or "")[:500]})
    return out


async def extract_entities(deps: Deps, rendered: str, opts: RunOptions, config: RunnableConfig) -> None:
    """One inference call; malformed output is logged and skipped, never raised."""
    prompt = prompts.render("extract_entities", messages=rendered)
    try:
        reply = await deps.chat_model.ainvoke([HumanMessage(prompt)], config, extra_body={"max_tokens": 400})
        found = parse_entities(reply.text)
    except Exception as exc:
        log.warning("entity extraction skipped for session %s: %r", opts.thread_id, exc)
        return
    for item in found:
        try:
            await asyncio.to_thread(deps.admin.upsert_entity, opts.scope, item["name"], item["type"],
                                    item["notes"], opts.thread_id)
        except Exception:
            log.exception("storing entity %r failed", item["name"])
