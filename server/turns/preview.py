"""The prompt a turn would send, memory included, without inference and without storing anything
(for `POST /v1/messages/count_tokens`)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, cast

from langchain_core.runnables import RunnableConfig

from graph.state import State
from memory.sessions import scope_of
from nodes.assemble import make_assemble
from nodes.recall import make_recall
from server.runtime import Runtime
from server.turns.access import check_reachable
from server.turns.conversations import continues
from server.turns.types import TurnRequest, new_messages


async def preview(runtime: Runtime, turn: TurnRequest) -> dict[str, Any]:
    """`{"prompt": [...], "prompt_stats": {...}}` as recall and assemble would build them now.

    Reads the session's checkpoint and memory only; a session that does not exist yet is not created.
    Another key's session or project is a 404 (API_KEY_SCOPED_SESSIONS), as for a turn.
    """
    deps = runtime.deps
    await asyncio.to_thread(check_reachable, deps.sessions, turn.session_id, turn.project_id, turn.owner)
    session = await asyncio.to_thread(deps.sessions.get, turn.session_id)
    project = session["project_id"] if session else turn.project_id
    owner = session.get("owner") if session else turn.owner
    config: RunnableConfig = {"configurable": {**turn.configurable, "thread_id": turn.session_id,
                                               "scope": scope_of(project, owner)}}
    values: dict[str, Any] = dict((await runtime.turns.graph.aget_state(config)).values) if session else {}
    history = list(values.get("messages") or [])
    if turn.side_session and not continues(turn.messages, history):  # as TurnRunner would move it
        return await preview(runtime, replace(turn, session_id=turn.side_session, side_session=None))
    values["messages"] = history + new_messages(bool(history), list(turn.messages))
    values["tools"] = turn.tools or []
    if turn.system is not None:
        values["system"] = turn.system
    state = cast(State, values)
    state.update(await make_recall(deps)(state, config))  # type: ignore[typeddict-item]
    return await make_assemble(deps)(state, config)
