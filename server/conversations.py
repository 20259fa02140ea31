"""Which conversation a stateless request continues, when one session id carries several.

Claude Code sends the same `X-Claude-Code-Session-Id` on every call: its main loop, its sub-agents (the
Task tool) and one-off helper calls (titles, topic checks, the start-up quota check), each resending its
own whole history. Stored as one session they would interleave, and the main conversation's recent turns
would fill with the helpers' prompts. So a request continues the named session only when it carries that
session's conversation (its last assistant message is the one stored last) or when the session is still
empty; any other conversation gets a session of its own beside it,
`<session>:conv-<hash of its system prompt and first user message>`, in the same project, so recall still
reaches all the project remembers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

from langchain_core.messages import AIMessage, BaseMessage

from memory.sessions import visible_to
from server.runtime import Runtime


def side_session_id(named: str, system: str | None, messages: list[BaseMessage]) -> str:
    """The session of the conversation that starts with `system` and the first user message."""
    first_user = next((m.text for m in messages if m.type == "human"), "")
    digest = hashlib.sha256(json.dumps([system or "", first_user], ensure_ascii=False).encode()).hexdigest()
    return f"{named[:100]}:conv-{digest[:16]}"


def _same_reply(sent: AIMessage, stored: AIMessage) -> bool:
    calls = [(c["name"], c.get("args") or {}) for c in sent.tool_calls]
    return sent.text.strip() == stored.text.strip() and calls == [
        (c["name"], c.get("args") or {}) for c in stored.tool_calls]


async def conversation_session(runtime: Runtime, named: str, system: str | None, messages: list[BaseMessage],
                               owner: str | None = None) -> str:
    """`named`, or the side session of the request's own conversation (see the module's docstring). Another
    API key's session stays `named`, for the turn to refuse it (API_KEY_SCOPED_SESSIONS)."""
    side = side_session_id(named, system, messages)
    sessions = runtime.deps.sessions
    side_row, named_row = await asyncio.to_thread(lambda: (sessions.get(side), sessions.get(named)))
    if named_row is None or (owner is not None and not visible_to(named_row, owner)):
        return named
    if side_row is not None:
        return side
    state = await runtime.turns.graph.aget_state({"configurable": {"thread_id": named}})
    stored = [m for m in state.values.get("messages") or [] if isinstance(m, AIMessage)]
    if not stored:
        return named
    sent = [m for m in messages if isinstance(m, AIMessage)]
    return named if sent and _same_reply(sent[-1], stored[-1]) else side
