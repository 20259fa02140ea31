"""Request and response models of the session, project, entity, memory and seed-001 chat routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from memory.dialect_sql import storable_text
from memory.entities import Entity

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"


def iso(ts: float | None) -> str | None:
    """A UNIX time as ISO 8601 (UTC)."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") if ts else None


def project_of_scope(scope: str) -> str | None:
    """The project id a memory scope belongs to (None for the shared default scope)."""
    return scope.removeprefix("project:") if scope.startswith("project:") else None


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("*")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        """Text the memory database can hold on both profiles (no NUL characters)."""
        return storable_text(value) if isinstance(value, str) else value


class SessionCreate(_Request):
    id: str | None = Field(None, pattern=ID_PATTERN)
    name: str | None = Field(None, max_length=200)
    projectId: str | None = Field(None, pattern=ID_PATTERN)


class SessionUpdate(_Request):
    name: str | None = Field(None, max_length=200)
    projectId: str | None = Field(None, pattern=ID_PATTERN)


class ProjectCreate(_Request):
    id: str | None = Field(None, pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)


class ProjectUpdate(_Request):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)


class EntityCreate(_Request):
    name: str = Field(min_length=1, max_length=100)
    type: str = Field("thing", min_length=1, max_length=40)
    notes: str = Field("", max_length=2000)
    projectId: str | None = Field(None, pattern=ID_PATTERN)


class EntityUpdate(_Request):
    name: str | None = Field(None, min_length=1, max_length=100)
    type: str | None = Field(None, min_length=1, max_length=40)
    notes: str | None = Field(None, max_length=2000)


class MemorySearchRequest(_Request):
    query: str = Field(min_length=1, max_length=4000)
    projectId: str | None = Field(None, pattern=ID_PATTERN)
    k: int = Field(5, ge=1, le=50)


class LexicalScorePublic(BaseModel):
    """What the BM25 (full-text) search said of a memory."""

    rank: int = Field(description="Its place in the full-text results, 1 = best match.")
    bm25: float = Field(description="Its BM25 score (higher = better match; 0 when the words are common).")
    contribution: float = Field(description="Its share of `score`: weight / (60 + rank).")


class VectorScorePublic(BaseModel):
    """What the vector (meaning) search said of a memory."""

    similarity: float = Field(description="Cosine similarity of the memory to the query, -1 to 1.")
    rank: int | None = Field(description="Its place among the vector hits above the similarity threshold; "
                             "null when it was below it and added nothing.")
    contribution: float = Field(description="Its share of `score`: weight / (60 + rank), or 0.")


class DateScorePublic(BaseModel):
    """Where a memory ranked among those of a day the query names ("on 7 July, 2023")."""

    rank: int = Field(description="Its place among that day's memories, 1 = holds the most of the query's words.")
    contribution: float = Field(description="Its share of `score`: weight / (60 + rank); the weight (2) puts "
                                "these memories first.")


class ScorePartsPublic(BaseModel):
    """Why a memory came back: each retriever's view of it (null: that search did not find it)."""

    lexical: LexicalScorePublic | None
    vector: VectorScorePublic | None
    date: DateScorePublic | None = Field(None, description="Null unless the query names a day.")


class MemoryHitPublic(BaseModel):
    id: str
    sessionId: str
    text: str
    score: float = Field(description="Fused rank score (weighted reciprocal rank fusion): only its order "
                         "means something; `scoreParts` says where it comes from.")
    scoreParts: ScorePartsPublic
    createdAt: str | None


class MemorySearchPublic(BaseModel):
    results: list[MemoryHitPublic]


class ChatRequest(BaseModel):
    """Seed 001's `POST /chat` and `/chat/stream` body."""

    model_config = ConfigDict(extra="ignore")
    sessionId: str = Field(pattern=ID_PATTERN)
    message: str = Field(min_length=1, max_length=200_000)
    projectId: str | None = Field(None, pattern=ID_PATTERN)
    model: str | None = Field(None, max_length=300)


class _Public(BaseModel):
    """A response body; the keys are camelCase, as seed 001's clients read them."""


class SessionPublic(_Public):
    id: str
    name: str | None = None
    projectId: str | None = None
    createdAt: str | None = None
    updatedAt: str | None = None
    turnCount: int = 0


class SessionDetail(SessionPublic):
    summary: str | None = None
    messageCount: int
    episodeCount: int
    memoryPending: bool = Field(False, description="An import's summary and entities are still being computed "
                                "in the background.")


class SessionsPage(_Public):
    sessions: list[SessionPublic]
    total: int
    limit: int
    offset: int


class ProjectPublic(_Public):
    id: str
    name: str
    description: str | None = None
    createdAt: str | None = None
    updatedAt: str | None = None
    sessionCount: int = 0


class ProjectSessions(_Public):
    sessions: list[SessionPublic]
    total: int


class ProjectsList(_Public):
    projects: list[ProjectPublic]


class EntityPublic(_Public):
    id: str
    name: str
    type: str
    notes: str
    projectId: str | None = None
    sourceSessionId: str | None = None


class EntitiesList(_Public):
    entities: list[EntityPublic]


class ToolCallPublic(_Public):
    id: str | None = None
    name: str
    arguments: dict[str, Any]


class MessagePublic(_Public):
    """One message of a session; `toolCalls`, `contract` and `toolCallId` only where they apply."""

    id: str | None = None
    role: str
    content: str
    toolCalls: list[ToolCallPublic] | None = None
    contract: str | None = Field(None, description="How the reply met the JSON contract: ok, repaired, native, "
                                 "truncated or fallback.")
    toolCallId: str | None = None
    interrupted: bool | None = Field(None, description="A reply its user cut short (realtime barge-in): its "
                                     "content is the part they heard.")
    toolCallsDropped: list[dict[str, Any]] | None = Field(
        None, description="Tool calls the model made that the request did not declare, or whose arguments broke "
        "the declared schema: not passed on.")


class SessionMessages(_Public):
    sessionId: str
    summary: str | None = None
    messages: list[MessagePublic]


class EpisodePublic(_Public):
    id: str
    text: str
    createdAt: str | None = None


class SessionMemory(_Public):
    sessionId: str
    projectId: str | None = None
    summary: str | None = None
    recentEpisodes: list[EpisodePublic]
    entities: list[EntityPublic]


def session_public(row: dict) -> SessionPublic:
    return SessionPublic(id=row["id"], name=row.get("name"), projectId=row.get("project_id"),
                         createdAt=iso(row.get("created_at")), updatedAt=iso(row.get("updated_at")),
                         turnCount=row.get("turn_count") or 0)


def project_public(row: dict) -> ProjectPublic:
    return ProjectPublic(id=row["id"], name=row["name"], description=row.get("description"),
                         createdAt=iso(row.get("created_at")), updatedAt=iso(row.get("updated_at")),
                         sessionCount=row.get("session_count") or 0)


def entity_public(entity: Entity) -> EntityPublic:
    return EntityPublic(id=entity.id, name=entity.name, type=entity.type, notes=entity.notes,
                        projectId=project_of_scope(entity.scope), sourceSessionId=entity.source_session_id)
