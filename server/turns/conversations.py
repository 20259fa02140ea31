"""Which conversation a stateless request continues, when one session id carries several.

Claude Code sends the same `X-Claude-Code-Session-Id` on every call: its main loop, its sub-agents (the
Task tool) and one-off helper calls (titles, topic checks, the start-up quota check), each resending its
own whole history. Stored as one session they would interleave, and the main conversation's recent turns
would fill with the helpers' prompts. So a request continues the named session only when it carries that
session's conversation (its last assistant message is the one stored last) or when the session is still
empty, decided by TurnRunner under the session's lock; any other conversation gets a session of its own beside it,
`<session>:conv-<hash of its system prompt and first user message>`, in the same project, so recall still
reaches all the project remembers.
"""

from __future__ import annotations

import asyncio

from langchain_core.messages import AIMessage, BaseMessage

from memory.sessions import SessionStore, visible_to
from server.turns.session_ids import conversation_key


def side_session_id(named: str, system: str | None, messages: list[BaseMessage]) -> str:
    """The session of the conversation that starts with `system` and the first user message."""
    return f"{named[:100]}:conv-{conversation_key(system, messages)[:16]}"


def _same_reply(sent: AIMessage, stored: AIMessage) -> bool:
    calls = [(c["name"], c.get("args") or {}) for c in sent.tool_calls]
    return sent.text.strip() == stored.text.strip() and calls == [
        (c["name"], c.get("args") or {}) for c in stored.tool_calls]


def continues(messages: list[BaseMessage], stored: list[BaseMessage]) -> bool:
    """Whether a request's history carries the stored conversation: an empty session is anyone's; else the
    request's last assistant message must be the one stored last."""
    stored_replies = [m for m in stored if isinstance(m, AIMessage)]
    if not stored_replies:
        return True
    sent = [m for m in messages if isinstance(m, AIMessage)]
    return bool(sent) and _same_reply(sent[-1], stored_replies[-1])


async def conversation_session(sessions: SessionStore, named: str, system: str | None, messages: list[BaseMessage],
                               owner: str | None = None) -> tuple[str, str | None]:
    """(the session to run in, the side session to move to if the named one turns out to hold another
    conversation once the turn holds its lock; TurnRunner decides that, so two first requests arriving
    together cannot both claim an empty session). Another API key's session stays `named`, for the turn
    to refuse it (API_KEY_SCOPED_SESSIONS)."""
    side = side_session_id(named, system, messages)
    side_row, named_row = await asyncio.to_thread(lambda: (sessions.get(side), sessions.get(named)))
    if named_row is not None and owner is not None and not visible_to(named_row, owner):
        return named, None
    if side_row is not None:
        return side, None
    return named, side
