"""The dialogue graph's state: what a run starts from and what each node adds."""

from __future__ import annotations

import operator
from typing import Annotated, Any, NotRequired, TypedDict


class Participant(TypedDict):
    """One side of the dialogue."""

    name: str
    base_url: NotRequired[str | None]
    """Its OpenAI-compatible node; None: the service's configured node (with its fallbacks)."""
    model: NotRequired[str | None]
    persona: NotRequired[str | None]
    temperature: NotRequired[float | None]
    requests_per_minute: NotRequired[int | None]
    """Its rate limit; None: DIALOGUE_RATE_LIMIT_PER_MINUTE."""


class Turn(TypedDict):
    """One generated turn, as the API shows it."""

    speaker: str
    text: str
    tokens: int
    latency_ms: float


class RepetitionCheck(TypedDict):
    """How close a turn came to an earlier one."""

    ngram_overlap: float
    """Largest share of the turn's word n-grams found in one earlier turn (0..1)."""
    similarity: float
    """Largest cosine similarity of its MiniLM embedding to an earlier turn's (-1..1)."""


class DialogueInput(TypedDict):
    """What a run starts from."""

    topic: str
    participants: list[Participant]
    min_turns: int
    max_turns: int


class DialogueState(DialogueInput, total=False):
    """The whole state, checkpointed after every node."""

    turns: Annotated[list[Turn], operator.add]
    """The turns so far, oldest first; participants alternate, the first one opens."""
    checks: Annotated[list[RepetitionCheck], operator.add]
    """One repetition check per judged turn, in step with `turns`."""
    end_signalled: bool
    """The last turn carried the explicit end signal (stripped from its text)."""
    ending_reason: str | None
    """Why it ended: closing_phrase, end_signal, max_turns, repetition, empty_reply or error."""
    error: str | None
    """What failed, when ending_reason is error."""


def initial_state(request: dict[str, Any]) -> DialogueInput:
    """The graph's input from a validated request."""
    return DialogueInput(topic=request["topic"], participants=request["participants"],
                         min_turns=request["min_turns"], max_turns=request["max_turns"])
