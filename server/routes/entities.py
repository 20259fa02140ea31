"""Entities (name, type, notes) per project, editable by users; recall places them first in the prompt."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response

from memory.entities import Entity
from memory.sessions import scope_of
from server.deps import RuntimeDep
from server.errors import ApiError
from server.routes.sessions import require_project
from server.runtime import Runtime
from server.schemas import EntityCreate, EntityUpdate, entity_public

router = APIRouter(prefix="/entities", tags=["entities"])


async def get_entity_or_404(runtime: Runtime, entity_id: str) -> Entity:
    entity = await asyncio.to_thread(runtime.deps.entities.get, entity_id)
    if entity is None:
        raise ApiError(404, f"No entity '{entity_id}'.", param="entityId")
    return entity


@router.get("")
async def list_entities(runtime: RuntimeDep, projectId: str | None = None) -> dict[str, Any]:
    """A project's entities (without `projectId`: those of the shared default scope)."""
    entities = await asyncio.to_thread(runtime.deps.entities.list, scope_of(projectId))
    return {"entities": [entity_public(e) for e in entities]}


@router.post("", status_code=201)
async def create_entity(body: EntityCreate, runtime: RuntimeDep) -> dict[str, Any]:
    """Create an entity, or update the one of the same name in that project."""
    await require_project(runtime, body.projectId)
    entity = await asyncio.to_thread(runtime.deps.admin.upsert_entity, scope_of(body.projectId), body.name,
                                     body.type, body.notes)
    return entity_public(entity)


@router.patch("/{entity_id}")
async def update_entity(entity_id: str, body: EntityUpdate, runtime: RuntimeDep) -> dict[str, Any]:
    """Edit `name`, `type` and/or `notes`: at least one of them."""
    if not body.model_fields_set:
        raise ApiError(400, "name, type or notes is required.", param="name")
    entity = await get_entity_or_404(runtime, entity_id)
    try:
        updated = await asyncio.to_thread(runtime.deps.admin.update_entity, entity, body.name, body.type, body.notes)
    except Exception as exc:
        if "UNIQUE" in str(exc):
            raise ApiError(409, f"An entity named '{body.name}' already exists in this project.", param="name") from exc
        raise
    return entity_public(updated)


@router.delete("/{entity_id}", status_code=204)
async def delete_entity(entity_id: str, runtime: RuntimeDep) -> Response:
    entity = await get_entity_or_404(runtime, entity_id)
    await asyncio.to_thread(runtime.deps.admin.delete_entity, entity)
    return Response(status_code=204)
