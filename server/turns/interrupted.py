"""A turn cut short by barge-in keeps only what its user heard (realtime voice, server/protocols/realtime/).

The cancelled run has been rolled back (nothing of it is stored, as for any client that leaves mid-reply);
this then writes the user's message and the heard prefix of the reply, marked `interrupted`, as the turn:
the episode uncommitted first, then the checkpoint, then the commit, so that a crash between any two steps
leaves the episode and the checkpoint agreeing (server/turns/commit.py's start-up repair).
"""

from __future__ import annotations

import asyncio
import uuid

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from graph.deps import Deps
from memory.episodes import Episode
from memory.sessions import scope_of
from server.turns.commit import commit_turn

INTERRUPTED = "interrupted"
"""`response_metadata` key of an assistant message cut short by its user (True)."""


async def keep_heard(graph: CompiledStateGraph, deps: Deps, session_id: str, user: HumanMessage,
                     heard: str) -> AIMessage | None:
    """Store `user` and the `heard` part of the reply as the session's latest turn; None (nothing written)
    if the turn was already stored whole (its reply completed before the barge-in reached it) or the
    session was never opened. Call with the session's lock held."""
    config: RunnableConfig = {"configurable": {"thread_id": session_id}}
    state = await graph.aget_state(config)
    if any(m.id == user.id for m in state.values.get("messages", [])):
        return None  # the whole reply was stored before the cancel arrived: it stays as it is
    session = await asyncio.to_thread(deps.sessions.get, session_id)
    if session is None:
        return None
    reply = AIMessage(heard, id=f"run-{uuid.uuid4().hex}", response_metadata={INTERRUPTED: True})
    episode = Episode(session_id=session_id, scope=scope_of(session["project_id"], session.get("owner")),
                      user_text=user.text, assistant_text=heard, user_msg_id=user.id, ai_msg_id=reply.id)
    await asyncio.to_thread(deps.episodes.add, episode, False)
    await graph.aupdate_state(config, {"messages": [user, reply]}, as_node="summarise")
    await commit_turn(deps, session_id, reply.id)
    return reply
