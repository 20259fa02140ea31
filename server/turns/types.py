"""What a door hands the turn engine (TurnRequest) and what it gets back (TurnEvent), and the one way a request is
refused as no turn at all (BadTurn, a 400 in the door's own error shape)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage

from server.errors import ApiError


class BadTurn(ApiError):
    """The request cannot make a turn (nothing new to answer, a message too long, a value that cannot be
    stored): a 400 naming the field, answered by every door's error handler."""

    def __init__(self, message: str, param: str | None = "messages") -> None:
        super().__init__(400, message, param=param)


@dataclass
class TurnRequest:
    """A turn as the routes hand it over."""

    session_id: str
    messages: list[BaseMessage]
    system: str | None = None
    tools: list[dict[str, Any]] | None = None
    configurable: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    project_id: str | None = None
    """Project of a session created by this turn (an existing session keeps its own)."""
    owner: str | None = None
    """API key fingerprint (API_KEY_SCOPED_SESSIONS): the turn may only reach sessions and projects it owns,
    and creates them owned by it. None: not scoped."""
    side_session: str | None = None
    """Where the turn goes instead if the session holds a conversation that `messages` do not continue
    (stateless clients sharing one session id among several conversations: server/turns/conversations.py)."""


@dataclass
class TurnEvent:
    """`text`: a piece of the answer (when streaming, the texts add up to the final message's text, unless the
    model's stream and its parsed reply disagree); `final`: the assistant message, stored; `error`: failed."""

    kind: Literal["text", "final", "error"]
    text: str = ""
    message: AIMessage | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: ApiError | None = None
    """What failed, as the error the door answers with (the inference node's, our storage's, or a refusal)."""

    @property
    def reply(self) -> AIMessage:
        """The stored assistant message of a `final` event."""
        if self.message is None:
            raise ValueError(f"a {self.kind!r} event carries no reply")
        return self.message

    @property
    def failure(self) -> ApiError:
        """The error of an `error` event."""
        if self.error is None:
            raise ValueError(f"a {self.kind!r} event carries no error")
        return self.error


def new_messages(history_known: bool, messages: list[BaseMessage]) -> list[BaseMessage]:
    """The messages of a request that are new to the session.

    On a known session the checkpoint is the truth: only what follows the last assistant turn is new.
    On a new session everything is (a client may bring a history it had elsewhere).
    """
    if history_known:
        last_ai = max((i for i, m in enumerate(messages) if isinstance(m, AIMessage)), default=-1)
        messages = messages[last_ai + 1 :]
    if not messages:
        raise BadTurn("nothing to answer: the last message must be a user message or a tool result")
    if isinstance(messages[-1], AIMessage):
        raise BadTurn("the last message must be a user message or a tool result, not an assistant message")
    return messages
