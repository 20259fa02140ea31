"""Undoing a turn in its session's checkpoint: the rollback of a failed or cancelled turn, and the repair of a
half turn a crash left (a run that never finished). Both write a new checkpoint on top of the latest, so no older
one is needed (server/checkpoint_pruner.py may have pruned them)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from langchain_core.messages import AIMessage, RemoveMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from memory.episodes import EpisodeStore

log = logging.getLogger(__name__)


async def rollback(graph: CompiledStateGraph, config: RunnableConfig, message_ids: list[str | None]) -> bool:
    """Remove a failed turn's messages, so the session reads exactly as before it; False if that failed
    (the turn's uncommitted episode is then left to start-up repair, which follows the checkpoint)."""
    ids = [i for i in message_ids if i]
    try:
        state = await graph.aget_state(config)
        present = {m.id for m in state.values.get("messages", [])}
        removals = [RemoveMessage(id=i) for i in ids if i in present]
        if removals or state.next:
            await graph.aupdate_state(config, {"messages": removals}, as_node="summarise")
    except Exception:
        log.exception("rolling back a failed turn failed")
        return False
    return True


def unfinished(episodes: EpisodeStore, values: dict[str, Any]) -> list[str | None]:
    """Ids of the messages after the last reply that was stored as an episode (blocking)."""
    ids: list[str | None] = []
    for message in reversed(values.get("messages", [])):
        if isinstance(message, AIMessage) and message.id and episodes.has_reply(message.id):
            break
        ids.append(message.id)
    return ids


async def repaired_state(graph: CompiledStateGraph, episodes: EpisodeStore, config: RunnableConfig) -> Any:
    """The thread's state, after undoing the half turn of a run that never finished (the process died
    mid-turn). Call with the session's lock held."""
    state = await graph.aget_state(config)
    if state.next:
        await rollback(graph, config, await asyncio.to_thread(unfinished, episodes, state.values))
        state = await graph.aget_state(config)
    return state
