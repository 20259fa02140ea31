"""Request and response bodies of the dialogue routes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from memory.dialect_sql import storable_text

Topic = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
                  AfterValidator(storable_text)]  # a column of its own: no NUL on either profile
Status = Literal["queued", "running", "done", "failed", "cancelled"]


class ParticipantCreate(BaseModel):
    """One participant: its node (default: the service's configured one), model, persona, temperature."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=64)
    base_url: str | None = Field(None, max_length=500, description="OpenAI-compatible base URL (…/v1); "
                                 "unset: the service's inference node.")
    model: str | None = Field(None, min_length=1, max_length=200, description="Model name sent to the node.")
    persona: str | None = Field(None, max_length=8000, description="Its system prompt (who it is).")
    temperature: float | None = Field(None, ge=0, le=2)
    requests_per_minute: int | None = Field(None, ge=0, le=100_000, description="Its rate limit; unset: "
                                            "DIALOGUE_RATE_LIMIT_PER_MINUTE.")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL, such as http://127.0.0.1:8080/v1")
        return value


def default_participants() -> list[ParticipantCreate]:
    """Two voices on the configured node when a request names none."""
    return [ParticipantCreate(name="Alex", persona="You are Alex: curious, concrete, fond of examples."),
            ParticipantCreate(name="Sam", persona="You are Sam: skeptical, precise, you ask for evidence.")]


class _DialogueShape(BaseModel):
    model_config = ConfigDict(extra="forbid")
    participants: list[ParticipantCreate] = Field(default_factory=default_participants, min_length=2,
                                                  max_length=2)
    min_turns: int = Field(2, ge=1, description="Turns before a farewell may end it.")
    max_turns: int = Field(8, ge=1, description="Turns at most (DIALOGUE_MAX_TURNS caps it).")

    @model_validator(mode="after")
    def _consistent(self) -> _DialogueShape:
        if self.min_turns > self.max_turns:
            raise ValueError(f"min_turns ({self.min_turns}) must not exceed max_turns ({self.max_turns})")
        if self.participants[0].name.casefold() == self.participants[1].name.casefold():
            raise ValueError("the two participants need different names")
        return self


class DialogueCreate(_DialogueShape):
    """`POST /dialogues`: one topic."""

    topic: Topic

    def graph_request(self) -> dict[str, Any]:
        """What the job stores and the graph starts from."""
        return self.model_dump(mode="json")


class DialogueBatchCreate(_DialogueShape):
    """`POST /dialogues/batch` (JSON): many topics, the same participants and turns."""

    topics: list[Topic] = Field(min_length=1)

    def dialogues(self) -> list[DialogueCreate]:
        shared = self.model_dump(exclude={"topics"})
        return [DialogueCreate(topic=topic, **shared) for topic in self.topics]


class DialogueQueued(BaseModel):
    """A queued dialogue."""

    id: str
    status: Status


class BatchQueued(BaseModel):
    """A queued batch."""

    batch_id: str
    dialogues: list[DialogueQueued]


class TurnPublic(BaseModel):
    speaker: str
    text: str
    tokens: int
    latency_ms: float


class DialoguePublic(BaseModel):
    """`GET /dialogues/{id}`: status, the turns so far and their metrics."""

    id: str
    status: Status
    topic: str
    batch_id: str | None
    participants: list[ParticipantCreate]
    min_turns: int
    max_turns: int
    turns: list[TurnPublic]
    ending_reason: str | None
    error: str | None
    metrics: dict[str, Any]
    created_at: float
    updated_at: float


class DialogueSummary(BaseModel):
    """One row of `GET /dialogues`."""

    id: str
    status: Status
    topic: str
    batch_id: str | None
    turns: int
    tokens: int
    ending_reason: str | None
    error: str | None


class DialoguesPage(BaseModel):
    """`GET /dialogues`: a page, and the cursor of the next one (None: no more)."""

    dialogues: list[DialogueSummary]
    counts: dict[str, int]
    next_cursor: int | None
