"""A stored reply cut back to what its user heard (realtime voice: a barge-in after the reply was complete,
while its audio still played; OpenAI's Realtime API calls this `conversation.item.truncate`).

The turn is already in the checkpoint and in memory. Its reply becomes the heard prefix, marked
`interrupted`, under the same message id (`add_messages` replaces a message by id), and its episode is
rewritten to match: new document and FTS5 rows, its vector dropped so the indexer embeds it again. Nothing
heard: the turn is taken back whole (user message included), as a barge-in before anything was played
leaves nothing. The checkpoint changes first, then memory: they cannot change in one transaction, and a
crash in between leaves memory holding the whole reply, which is what it held before.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, RemoveMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from graph.deps import Deps
from memory.episodes import StoredEpisode
from memory.fusion import with_reply_ids
from memory.sessions import SessionStore
from server.turns.interrupted import INTERRUPTED

Truncation = Literal["truncated", "removed", "unchanged"]


async def truncate_reply(graph: CompiledStateGraph, deps: Deps, session_id: str, reply_id: str,
                         heard: str) -> Truncation:
    """Keep only `heard` of the stored reply `reply_id`, or take its turn back if nothing of it was heard.
    `unchanged` when the reply was wholly heard, is gone (deleted, trimmed) or is no longer the session's
    last message (history behind a later turn is not rewritten). Call with the session's lock held."""
    config: RunnableConfig = {"configurable": {"thread_id": session_id}}
    messages: list[BaseMessage] = (await graph.aget_state(config)).values.get("messages", [])
    if not messages or messages[-1].id != reply_id or not isinstance(messages[-1], AIMessage):
        return "unchanged"
    reply = messages[-1]
    if heard == reply.text:
        return "unchanged"
    if heard or reply.tool_calls:  # tool calls already went to the client: they stay with the heard words
        metadata = {**reply.response_metadata, INTERRUPTED: True}
        cut = reply.model_copy(update={"content": heard, "response_metadata": metadata})
        await graph.aupdate_state(config, {"messages": [cut]}, as_node="summarise")
        # The old vector goes before the rewrite: the indexer can then only ever add it back while the row
        # still reads as before, and such a row is marked for indexing again (EpisodeStore.mark_indexed).
        await _drop_vector(deps, await asyncio.to_thread(deps.episodes.by_reply, reply_id))
        await asyncio.to_thread(deps.episodes.rewrite_reply, reply_id, heard)
        deps.indexer.schedule()
        return "truncated"
    removals = [RemoveMessage(id=m.id) for m in _turn_of(messages) if m.id]
    await graph.aupdate_state(config, {"messages": removals}, as_node="summarise")
    episode = await asyncio.to_thread(deps.episodes.remove_reply, reply_id,
                                      lambda conn: SessionStore.count_turns(conn, session_id, -1))
    await _drop_vector(deps, episode)
    return "removed"


def _turn_of(messages: list[BaseMessage]) -> list[BaseMessage]:
    """The last turn: from its user's message to the reply that ends the list."""
    start = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=len(messages) - 1)
    return messages[start:]


async def _drop_vector(deps: Deps, episode: StoredEpisode | None) -> None:
    """The episode's vector leaves its scope's collection (it held the whole reply's document)."""
    if episode is not None:
        await asyncio.to_thread(deps.vectors.delete, episode.scope, with_reply_ids([episode.id]))
