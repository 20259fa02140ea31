"""persist: the finished exchange becomes an episode (SQLite + FTS5 now, its vector right after)."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig

from graph.config import RunOptions
from graph.deps import Deps
from graph.semantic import remember_reply
from graph.state import Node, State
from memory.episodes import Episode
from memory.turn_recalls import build_record

TOOL_RESULT_CHARS = 500


def turn_texts(state: State) -> tuple[str, str, str | None, str | None]:
    """(user text, assistant text, first new message id, reply id) of the turn that just finished."""
    messages = state.get("messages", [])
    reply = messages[-1]
    start = len(messages) - 1
    while start > 0 and not isinstance(messages[start - 1], AIMessage):
        start -= 1
    parts: list[str] = []
    for message in messages[start:-1]:
        if isinstance(message, HumanMessage):
            parts.append(message.text)
        elif isinstance(message, ToolMessage):
            parts.append(f"[tool result {message.name or message.tool_call_id}] {message.text[:TOOL_RESULT_CHARS]}")
    assistant: str = reply.text
    for call in getattr(reply, "tool_calls", []):
        assistant += f"\n[tool call {call['name']}({call['args']})]"
    first_id = messages[start].id if start < len(messages) - 1 else None
    return "\n".join(parts), assistant.strip(), first_id, reply.id


def make_persist(deps: Deps) -> Node:
    """Build the persist node."""

    async def persist(state: State, config: RunnableConfig) -> dict[str, Any]:
        """Write the episode (and count the turn, unless the caller commits it after the checkpoint) before
        the reply completes; embed it off the critical path."""
        opts = RunOptions.from_config(config)
        user_text, assistant_text, user_id, ai_id = turn_texts(state)
        episode = Episode(
            session_id=opts.thread_id,
            scope=opts.scope,
            user_text=user_text,
            assistant_text=assistant_text,
            user_msg_id=user_id,
            ai_msg_id=ai_id,
            recall=build_record(dict(state.get("recalled") or {}), (state.get("prompt_stats") or {}).get("memory"),
                                state.get("summary")),
        )

        def write() -> None:
            if deps.commit_after_checkpoint:  # invisible until the turn's checkpoint holds it (server/turns/commit.py)
                deps.episodes.add(episode, committed=False)
            else:
                deps.episodes.add(episode)
                deps.sessions.record_turn(opts.thread_id)

        await asyncio.to_thread(write)
        # A missed cacheable answer is kept for the question's paraphrases (the same model key infer used).
        await remember_reply(deps, state, config, (state.get("route") or {}).get("model") or opts.model)
        if not deps.commit_after_checkpoint:  # otherwise scheduled once committed
            deps.indexer.schedule()
        return {"prompt": [], "raw_output": None}

    return persist
