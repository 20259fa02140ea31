"""The graph's State, and the narrower input a client sends."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, NotRequired, Protocol

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class Recalled(TypedDict):
    """What recall found for this turn."""

    episodes: list[str]
    """Documents of earlier exchanges (this and other sessions of the scope), best first."""
    entities: NotRequired[list[str]]
    """Known entities relevant to the message, as `name (type): notes`."""
    degraded: bool
    """True when the vector store or the embedder failed and recall fell back to lexical/recency only."""
    error: NotRequired[str]
    """Why recall was degraded."""
    episode_hits: NotRequired[list[dict[str, Any]]]
    """Per episode (same order): id, session, fused score and its parts; kept with the turn's episode."""
    entity_hits: NotRequired[list[dict[str, Any]]]
    """Per entity (same order): id, name, type and score (1.0 when the message names it)."""


class InputState(TypedDict):
    """What a client sends: the new messages of the turn, optionally a system prompt and tools."""

    messages: Annotated[list[AnyMessage], add_messages]
    """The turn's new messages (a user message, or tool results continuing the turn)."""
    system: NotRequired[str]
    """The client's own system prompt, placed after the contract."""
    tools: NotRequired[list[dict[str, Any]]]
    """Tools the client offers (OpenAI function format); described to the model in the prompt."""


class State(InputState):
    """The whole checkpointed state of a session (the session id is the thread_id)."""

    summary: NotRequired[str]
    """Rolling summary of the messages folded out of the state."""
    recalled: NotRequired[Recalled]
    """Memory recalled for the current turn."""
    prompt: NotRequired[list[dict[str, str]]]
    """The assembled prompt of the current turn as role/content dicts (cleared by persist)."""
    prompt_stats: NotRequired[dict[str, Any]]
    """The current prompt's budget: tokens offered, tokens sent, what was trimmed (graph/budget.py)."""
    raw_output: NotRequired[AIMessage | None]
    """The model's raw reply of the current turn (cleared by persist)."""
    route: NotRequired[dict[str, Any] | None]
    """The current turn's class and route, set by classify (graph/routing.py); None when unrouted."""


class OutputState(TypedDict):
    """What a run returns to a client."""

    messages: list[AnyMessage]
    summary: NotRequired[str]


class Node(Protocol):
    """A node of the graph: an async function of the state and the run's config that returns the keys it changes."""

    def __call__(self, state: State, config: RunnableConfig) -> Awaitable[dict[str, Any]]: ...
