"""Entities (name, type, notes) per project, editable by users; recall places them first in the prompt."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from memory.entities import Entity, NameTaken
from memory.sessions import scope_of, visible_to
from server.api.schemas import EntitiesList, EntityCreate, EntityPublic, EntityUpdate, entity_public, project_of_scope
from server.api.sessions import require_own_project, require_project
from server.deps import OwnerDep, RuntimeDep
from server.errors import ApiError
from server.runtime import Runtime

router = APIRouter(prefix="/entities", tags=["entities"])


async def scope_reachable(runtime: Runtime, scope: str, owner: str | None) -> bool:
    """Whether an owner may see a memory scope: their own default scope, or one of their projects'."""
    if owner is None or scope == scope_of(None, owner):
        return True
    project_id = project_of_scope(scope)
    if not project_id:
        return False
    return visible_to(await asyncio.to_thread(runtime.deps.sessions.get_project, project_id), owner)


async def get_entity_or_404(runtime: Runtime, entity_id: str, owner: str | None = None) -> Entity:
    """The entity; 404 if there is none, or (API_KEY_SCOPED_SESSIONS) it is in another key's scope."""
    entity = await asyncio.to_thread(runtime.deps.entities.get, entity_id)
    if entity is None or not await scope_reachable(runtime, entity.scope, owner):
        raise ApiError(404, f"No entity '{entity_id}'.", param="entityId")
    return entity


@router.get("")
async def list_entities(runtime: RuntimeDep, owner: OwnerDep, projectId: str | None = None) -> EntitiesList:
    """A project's entities (without `projectId`: those of the default scope, shared or the key's own)."""
    await require_own_project(runtime, projectId, owner)
    entities = await asyncio.to_thread(runtime.deps.entities.list, scope_of(projectId, owner))
    return EntitiesList(entities=[entity_public(e) for e in entities])


@router.post("", status_code=201)
async def create_entity(body: EntityCreate, runtime: RuntimeDep, owner: OwnerDep) -> EntityPublic:
    """Create an entity, or update the one of the same name in that project."""
    await require_project(runtime, body.projectId, owner)
    entity = await asyncio.to_thread(runtime.deps.admin.upsert_entity, scope_of(body.projectId, owner), body.name,
                                     body.type, body.notes)
    return entity_public(entity)


@router.patch("/{entity_id}")
async def update_entity(entity_id: str, body: EntityUpdate, runtime: RuntimeDep, owner: OwnerDep) -> EntityPublic:
    """Edit `name`, `type` and/or `notes`: at least one of them."""
    if not body.model_fields_set:
        raise ApiError(400, "name, type or notes is required.", param="name")
    entity = await get_entity_or_404(runtime, entity_id, owner)
    try:
        updated = await asyncio.to_thread(runtime.deps.admin.update_entity, entity, body.name, body.type, body.notes)
    except NameTaken as exc:
        raise ApiError(409, f"An entity named '{body.name}' already exists in this project.", param="name") from exc
    return entity_public(updated)


@router.delete("/{entity_id}", status_code=204)
async def delete_entity(entity_id: str, runtime: RuntimeDep, owner: OwnerDep) -> Response:
    entity = await get_entity_or_404(runtime, entity_id, owner)
    await asyncio.to_thread(runtime.deps.admin.delete_entity, entity)
    return Response(status_code=204)
