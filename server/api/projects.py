"""Projects: groups of sessions that share semantic memory and entities, and nothing beyond."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from memory.sessions import scope_of, visible_to
from server.api.schemas import (
    ProjectCreate,
    ProjectPublic,
    ProjectSessions,
    ProjectsList,
    ProjectUpdate,
    project_public,
    session_public,
)
from server.api.sessions import forget_session
from server.deps import Offset, OwnerDep, RuntimeDep
from server.errors import ApiError
from server.runtime import Runtime

router = APIRouter(prefix="/projects", tags=["projects"])


async def get_project_or_404(runtime: Runtime, project_id: str, owner: str | None = None) -> dict:
    """The project's row; 404 if there is none, or (API_KEY_SCOPED_SESSIONS) it is another key's."""
    row = await asyncio.to_thread(runtime.deps.sessions.get_project, project_id)
    if row is None or not visible_to(row, owner):
        raise ApiError(404, f"No project '{project_id}'.", param="projectId")
    return row


@router.get("")
async def list_projects(runtime: RuntimeDep, owner: OwnerDep) -> ProjectsList:
    """All projects (with API_KEY_SCOPED_SESSIONS: the key's own), newest first."""
    rows = await asyncio.to_thread(runtime.deps.sessions.list_projects, owner)
    return ProjectsList(projects=[project_public(r) for r in rows])


@router.post("", status_code=201)
async def create_project(body: ProjectCreate, runtime: RuntimeDep, owner: OwnerDep) -> ProjectPublic:
    """Create a project (`id` optional)."""
    row = await asyncio.to_thread(runtime.deps.sessions.create_project, body.id, body.name, body.description, owner)
    if row is None:
        raise ApiError(409, f"Project '{body.id}' already exists.", param="id")
    return project_public(row)


@router.get("/{project_id}")
async def get_project(project_id: str, runtime: RuntimeDep, owner: OwnerDep) -> ProjectPublic:
    return project_public(await get_project_or_404(runtime, project_id, owner))


@router.get("/{project_id}/sessions")
async def project_sessions(project_id: str, runtime: RuntimeDep, owner: OwnerDep, limit: int = 50,
                           offset: Offset = 0) -> ProjectSessions:
    """The project's sessions, most recently active first."""
    await get_project_or_404(runtime, project_id, owner)
    rows, total = await asyncio.to_thread(runtime.deps.sessions.list, project_id, max(1, min(limit, 200)),
                                          offset, owner)
    return ProjectSessions(sessions=[session_public(r) for r in rows], total=total)


@router.patch("/{project_id}")
async def update_project(project_id: str, body: ProjectUpdate, runtime: RuntimeDep, owner: OwnerDep) -> ProjectPublic:
    """Rename a project and/or change its description: at least one of them."""
    if not body.model_fields_set:
        raise ApiError(400, "name or description is required.", param="name")
    await get_project_or_404(runtime, project_id, owner)
    kwargs = {"description": body.description} if "description" in body.model_fields_set else {}
    row = await asyncio.to_thread(runtime.deps.sessions.update_project, project_id, body.name, **kwargs)
    if row is None:  # deleted meanwhile
        raise ApiError(404, f"No project '{project_id}'.", param="projectId")
    return project_public(row)


@router.delete("/{project_id}", status_code=204)
async def delete_project(project_id: str, runtime: RuntimeDep, owner: OwnerDep, cascade: bool = False) -> Response:
    """Delete a project. Refused (409) while it has sessions, unless `?cascade=true`: then its sessions,
    their checkpoints, episodes and vectors, and the project's entities go with it."""
    row = await get_project_or_404(runtime, project_id, owner)
    if row["session_count"] and not cascade:
        raise ApiError(409, f"Project '{project_id}' has {row['session_count']} session(s): delete them, or "
                       "repeat with ?cascade=true to delete them with the project.", param="cascade")
    while True:
        rows, _ = await asyncio.to_thread(runtime.deps.sessions.list, project_id, 200, 0)
        if not rows:
            break
        for session in rows:
            await forget_session(runtime, session["id"])
    for entity in await asyncio.to_thread(runtime.deps.entities.list, scope_of(project_id)):
        await asyncio.to_thread(runtime.deps.admin.delete_entity, entity)
    await asyncio.to_thread(runtime.deps.admin.forget_scope, scope_of(project_id))  # before the row, as above
    await asyncio.to_thread(runtime.deps.sessions.delete_project_row, project_id)
    return Response(status_code=204)
