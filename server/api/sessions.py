"""Sessions: CRUD, history from the checkpoint, and memory inspection (seed 001 semantics)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from langchain_core.messages import AIMessage, ToolMessage

from memory.sessions import scope_of, visible_to
from server.api.schemas import (
    EpisodePublic,
    MessagePublic,
    SessionCreate,
    SessionDetail,
    SessionMemory,
    SessionMessages,
    SessionPublic,
    SessionsPage,
    SessionUpdate,
    ToolCallPublic,
    entity_public,
    iso,
    session_public,
)
from server.deps import Offset, OwnerDep, RuntimeDep
from server.errors import ApiError
from server.runtime import Runtime

router = APIRouter(prefix="/sessions", tags=["sessions"])


async def get_session_or_404(runtime: Runtime, session_id: str, owner: str | None = None) -> dict:
    """The session's row; 404 if there is none, or (API_KEY_SCOPED_SESSIONS) it is another key's."""
    row = await asyncio.to_thread(runtime.deps.sessions.get, session_id)
    if row is None or not visible_to(row, owner):
        raise ApiError(404, f"No session '{session_id}'.", param="sessionId")
    return row


async def require_project(runtime: Runtime, project_id: str | None, owner: str | None = None) -> None:
    """404 unless the project exists (and is this owner's)."""
    if project_id and not visible_to(await asyncio.to_thread(runtime.deps.sessions.get_project, project_id), owner):
        raise ApiError(404, f"No project '{project_id}': create it with POST /projects first.", param="projectId")


async def require_own_project(runtime: Runtime, project_id: str | None, owner: str | None) -> None:
    """With an owner, 404 unless the project is theirs; without one, nothing is checked (an unknown project
    just has no memory)."""
    if owner is not None:
        await require_project(runtime, project_id, owner)


def message_public(message: Any) -> MessagePublic:
    role = {"human": "user", "ai": "assistant", "tool": "tool", "system": "system"}.get(message.type, message.type)
    out = MessagePublic(id=message.id, role=role, content=message.text)
    if isinstance(message, AIMessage) and message.tool_calls:
        out.toolCalls = [ToolCallPublic(id=c["id"], name=c["name"], arguments=c["args"]) for c in message.tool_calls]
    if isinstance(message, AIMessage) and message.response_metadata.get("contract"):
        out.contract = message.response_metadata["contract"]  # ok, repaired, native, truncated, fallback
    if isinstance(message, AIMessage) and message.response_metadata.get("tool_calls_dropped"):
        out.toolCallsDropped = message.response_metadata["tool_calls_dropped"]  # undeclared, or bad arguments
    if isinstance(message, AIMessage) and message.response_metadata.get("interrupted"):
        out.interrupted = True  # cut short by its user (realtime barge-in): the text is what they heard
    if isinstance(message, ToolMessage):
        out.toolCallId = message.tool_call_id
    return out


@router.get("")
async def list_sessions(runtime: RuntimeDep, owner: OwnerDep, projectId: str | None = None,
                        limit: Annotated[int, Query(ge=1, le=200)] = 50,
                        offset: Offset = 0) -> SessionsPage:
    """Sessions, most recently active first; `projectId` filters by project."""
    rows, total = await asyncio.to_thread(runtime.deps.sessions.list, projectId, limit, offset, owner)
    return SessionsPage(sessions=[session_public(r) for r in rows], total=total, limit=limit, offset=offset)


@router.post("", status_code=201)
async def create_session(body: SessionCreate, runtime: RuntimeDep, owner: OwnerDep) -> SessionPublic:
    """Create a session ahead of use (optional: chat routes create sessions on first use)."""
    await require_project(runtime, body.projectId, owner)
    row = await asyncio.to_thread(runtime.deps.sessions.create, body.id, body.name, body.projectId, owner)
    if row is None:
        raise ApiError(409, f"Session '{body.id}' already exists.", param="id")
    return session_public(row)


@router.get("/{session_id}")
async def get_session(session_id: str, runtime: RuntimeDep, owner: OwnerDep) -> SessionDetail:
    """One session with its summary and counts."""
    row = await get_session_or_404(runtime, session_id, owner)
    state = await runtime.turns.settled_state(session_id)
    episodes = await asyncio.to_thread(runtime.deps.episodes.ids_by_scope, session_id)
    followups = runtime.followups
    pending = followups is not None and await asyncio.to_thread(followups.pending, session_id)
    return SessionDetail(**session_public(row).model_dump(), summary=state.values.get("summary") or None,
                         messageCount=len(state.values.get("messages", [])),
                         episodeCount=sum(len(ids) for ids in episodes.values()), memoryPending=pending)


@router.get("/{session_id}/messages", response_model_exclude_unset=True)
async def get_messages(session_id: str, runtime: RuntimeDep, owner: OwnerDep) -> SessionMessages:
    """The conversation as the checkpoint holds it (older turns live on in the summary)."""
    await get_session_or_404(runtime, session_id, owner)
    state = await runtime.turns.settled_state(session_id)
    return SessionMessages(sessionId=session_id, summary=state.values.get("summary") or None,
                           messages=[message_public(m) for m in state.values.get("messages", [])])


@router.get("/{session_id}/memory")
async def get_memory(session_id: str, runtime: RuntimeDep, owner: OwnerDep,
                     limit: Annotated[int, Query(ge=1, le=200)] = 20) -> SessionMemory:
    """What the assistant remembers of this session: summary, recent episodes, the project's entities."""
    row = await get_session_or_404(runtime, session_id, owner)
    state = await runtime.turns.settled_state(session_id)
    episodes = await asyncio.to_thread(runtime.deps.episodes.for_session, session_id, limit)
    entities = await asyncio.to_thread(runtime.deps.entities.list, scope_of(row["project_id"], row.get("owner")))
    return SessionMemory(
        sessionId=session_id,
        projectId=row["project_id"],
        summary=state.values.get("summary") or None,
        recentEpisodes=[EpisodePublic(id=e.id, text=e.document, createdAt=iso(e.created_at)) for e in episodes],
        entities=[entity_public(e) for e in entities],
    )


@router.patch("/{session_id}")
async def update_session(session_id: str, body: SessionUpdate, runtime: RuntimeDep, owner: OwnerDep) -> SessionPublic:
    """Rename (`name`) and/or move (`projectId`, null for none) a session: at least one of them."""
    name_given = body.name is not None and body.name.strip() != ""
    project_given = "projectId" in body.model_fields_set
    if not name_given and not project_given:
        raise ApiError(400, "name or projectId is required.", param="name")
    row = await get_session_or_404(runtime, session_id, owner)
    if project_given and body.projectId != row["project_id"]:
        await require_project(runtime, body.projectId, owner)
        async with runtime.turns.exclusive(session_id):  # not while a turn of it is running
            await asyncio.to_thread(runtime.deps.admin.move_session, session_id, body.projectId)
        runtime.deps.indexer.schedule()
    if name_given and body.name is not None:
        await asyncio.to_thread(runtime.deps.sessions.update, session_id, body.name.strip())
    return session_public(await get_session_or_404(runtime, session_id, owner))


async def forget_session(runtime: Runtime, session_id: str) -> None:
    """Checkpoints, episodes, vectors, entities and the row, with no turn of it running."""
    async with runtime.turns.exclusive(session_id):
        runtime.turns.forget(session_id)
        await runtime.saver.adelete_thread(session_id)
        runtime.pruner.forgotten(session_id)  # its pages go back to the OS in the background
        await asyncio.to_thread(runtime.deps.admin.forget_session, session_id)


@router.delete("/{session_id}", status_code=204)
async def delete_session(session_id: str, runtime: RuntimeDep, owner: OwnerDep) -> Response:
    """Delete a session and everything remembered from it."""
    await get_session_or_404(runtime, session_id, owner)
    await forget_session(runtime, session_id)
    return Response(status_code=204)
