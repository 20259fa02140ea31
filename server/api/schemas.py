"""Request and response models of the session, project, entity, memory and seed-001 chat routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


class ChatRequest(BaseModel):
    """Seed 001's `POST /chat` and `/chat/stream` body."""

    model_config = ConfigDict(extra="ignore")
    sessionId: str = Field(pattern=ID_PATTERN)
    message: str = Field(min_length=1, max_length=200_000)
    projectId: str | None = Field(None, pattern=ID_PATTERN)
    model: str | None = Field(None, max_length=300)


def session_public(row: dict) -> dict[str, Any]:
    return {"id": row["id"], "name": row.get("name"), "projectId": row.get("project_id"),
            "createdAt": iso(row.get("created_at")), "updatedAt": iso(row.get("updated_at")),
            "turnCount": row.get("turn_count", 0)}


def project_public(row: dict) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "description": row.get("description"),
            "createdAt": iso(row.get("created_at")), "updatedAt": iso(row.get("updated_at")),
            "sessionCount": row.get("session_count", 0)}


def entity_public(entity: Entity) -> dict[str, Any]:
    return {"id": entity.id, "name": entity.name, "type": entity.type, "notes": entity.notes,
            "projectId": project_of_scope(entity.scope), "sourceSessionId": entity.source_session_id}
