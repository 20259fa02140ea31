"""FastAPI dependency aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from server.runtime import Runtime
from server.turns.session_ids import request_owner


def get_runtime(request: Request) -> Runtime:
    """The live runtime the lifespan opened."""
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
OwnerDep = Annotated[str | None, Depends(request_owner)]
"""The API key fingerprint that owns what the request reaches (None: sessions are not scoped by key)."""

# SQLite's largest integer: a bigger OFFSET cannot be bound to the query (it overflowed into a 500).
MAX_OFFSET = 2**63 - 1
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip.")]
"""A list's `offset` query parameter: 0 to SQLite's largest integer, else a 400."""
