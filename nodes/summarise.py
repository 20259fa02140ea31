"""summarise: past a threshold, fold the messages older than the recent window into the rolling summary."""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.messages import HumanMessage, RemoveMessage
from langchain_core.runnables import RunnableConfig

import prompts
from graph.deps import Deps
from graph.state import State
from graph.window import window_start
from nodes.assemble import to_chat

log = logging.getLogger(__name__)


def make_summarise(deps: Deps):
    """Build the summarise node."""
    limits = deps.limits

    async def summarise(state: State, config: RunnableConfig) -> dict[str, Any]:
        """One inference call updates the summary; the folded messages leave the state.

        It runs after persist, when the client already has its reply. A failure keeps the messages
        and the old summary, to be folded next time.
        """
        messages = state.get("messages", [])
        if len(messages) <= limits.summary_trigger_messages:
            return {}
        cut = window_start(messages, limits.recent_messages)
        old = messages[:cut]
        if not old:
            return {}
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
        return {"summary": summary, "messages": [RemoveMessage(id=m.id) for m in old if m.id]}

    return summarise
