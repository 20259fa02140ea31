"""The recent window: the last messages of a session sent verbatim, cut where a user turn starts."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AnyMessage, BaseMessage, HumanMessage


def window_start(messages: list[AnyMessage], size: int) -> int:
    """Index of the first message of the recent window.

    The window holds at most `size` messages and starts on a user message, so a tool result is never
    separated from the assistant turn that asked for it. The last user message is always inside.
    """
    start = max(0, len(messages) - size)
    for i in range(start, len(messages)):
        if isinstance(messages[i], HumanMessage):
            return i
    for i in range(start - 1, -1, -1):  # no user message in range: widen back to the last one
        if isinstance(messages[i], HumanMessage):
            return i
    return start


def last_user_text(messages: Sequence[BaseMessage]) -> str:
    """Text of the newest user message (the query of this turn)."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text if hasattr(message, "text") else str(message.content)
    return ""
