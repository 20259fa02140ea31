"""Import and export: `POST /sessions/{id}/import`, `GET /sessions/{id}/export`, `GET /projects/{id}/export`.

A conversation from elsewhere (OpenAI `messages`, or JSONL a message a line) becomes the session's history and
memory as if its turns had happened here, dated as given (server/turns/importer.py); an export is JSONL in the
form import reads, so a session moves between services whole.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from server.api.projects import get_project_or_404
from server.api.schemas import ID_PATTERN
from server.api.sessions import get_session_or_404
from server.deps import OwnerDep, RuntimeDep
from server.errors import ApiError
from server.turns.importer import export_session, import_transcript
from server.turns.session_ids import validate_session_id
from server.turns.transcript_lines import ImportedMessage, LineError, parse

router = APIRouter(tags=["transfer"])

JSONL = "application/x-ndjson"


class ImportResultPublic(BaseModel):
    """What an import stored."""

    sessionId: str
    projectId: str | None
    imported: int = Field(description="Messages stored now.")
    skipped: int = Field(description="Messages already stored (by id): a retried import stores nothing twice.")
    episodes: int = Field(description="Exchanges stored as memory (and embedded before this answer).")
    entities: int = Field(description="Entities stored from the file's entity lines.")
    memoryPending: bool = Field(False, description="The summary and entities of what was imported are being "
                                "computed in the background (GET /sessions/{id} says when they are done).")


_BODY_SCHEMA = {"type": "object", "required": ["messages"],
                "properties": {"messages": {"type": "array", "items": ImportedMessage.model_json_schema()}}}


@router.post("/sessions/{session_id}/import", openapi_extra={"requestBody": {
    "content": {"application/json": {"schema": _BODY_SCHEMA},
                JSONL: {"schema": {"type": "string", "description": "one message (or export record) a line"}}},
    "required": True}})
async def import_session(session_id: str, request: Request, runtime: RuntimeDep, owner: OwnerDep,
                         projectId: str | None = None,
                         x_project_id: Annotated[str | None, Header()] = None) -> ImportResultPublic:
    """Store a conversation in the session (created on first use, in `projectId` or X-Project-Id), without
    inference: OpenAI `{"messages": [...]}` with optional `name` and `timestamp` per message, or JSONL a message
    a line (an export's lines too). A malformed line is a 400 naming it, and nothing is stored."""
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "The body is not UTF-8 text.", param="body") from None
    try:
        transcript = parse(text)
    except LineError as exc:
        raise ApiError(400, f"Nothing imported: {exc}.", param=f"line {exc.line}", code="invalid_line") from None
    settings = runtime.settings
    if len(transcript.messages) > settings.import_max_messages:
        raise ApiError(400, f"{len(transcript.messages)} messages is more than one import takes "
                       f"(IMPORT_MAX_MESSAGES={settings.import_max_messages}): send the file in parts.",
                       param="messages")
    for i, message in enumerate(transcript.messages, 1):
        if len(message.content) > settings.max_message_chars:
            raise ApiError(400, f"Nothing imported: message {i} is over {settings.max_message_chars} characters "
                           "(MAX_MESSAGE_CHARS).", param="content")
    validate_session_id(session_id, "session_id")
    project = projectId or x_project_id or None
    if project is not None and not re.fullmatch(ID_PATTERN, project):
        raise ApiError(400, f"projectId must match {ID_PATTERN}.", param="projectId")
    result = await import_transcript(runtime.turns, session_id, project, owner, transcript)
    followups = runtime.followups
    if result.imported and followups is not None:  # summary and entities, in the background (after_import.py)
        await followups.queue(session_id)
    pending = followups is not None and await asyncio.to_thread(followups.pending, session_id)
    return ImportResultPublic(sessionId=result.session_id, projectId=result.project_id, imported=result.imported,
                              skipped=result.skipped, episodes=result.episodes, entities=result.entities,
                              memoryPending=pending)


def _jsonl(lines: AsyncIterator[list[dict]], filename: str) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        async for batch in lines:
            yield "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in batch).encode()

    return StreamingResponse(body(), media_type=JSONL,
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/sessions/{session_id}/export", response_class=StreamingResponse,
            responses={200: {"content": {JSONL: {"schema": {"type": "string"}}}}})
async def export_one(session_id: str, runtime: RuntimeDep, owner: OwnerDep) -> StreamingResponse:
    """The session as JSONL: a `session` line (name, project, summary), its messages with their times, its
    entities. `POST /sessions/{id}/import` reads it back."""
    row = await get_session_or_404(runtime, session_id, owner)
    lines = await export_session(runtime.turns, row)

    async def one() -> AsyncIterator[list[dict]]:
        yield lines

    return _jsonl(one(), f"{session_id}.jsonl")


@router.get("/projects/{project_id}/export", response_class=StreamingResponse,
            responses={200: {"content": {JSONL: {"schema": {"type": "string"}}}}})
async def export_project(project_id: str, runtime: RuntimeDep, owner: OwnerDep) -> StreamingResponse:
    """Every session of the project, one after the other, each as `GET /sessions/{id}/export` writes it."""
    await get_project_or_404(runtime, project_id, owner)
    rows, _ = await asyncio.to_thread(runtime.deps.sessions.list, project_id, 1_000_000, 0, owner)

    async def each() -> AsyncIterator[list[dict]]:
        for row in sorted(rows, key=lambda r: r["created_at"]):
            yield await export_session(runtime.turns, row)

    return _jsonl(each(), f"{project_id}.jsonl")
