"""FastAPI dependency aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.runtime import Runtime
from server.turns.session_ids import request_owner


def get_runtime(request: Request) -> Runtime:
    """The live runtime the lifespan opened."""
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
OwnerDep = Annotated[str | None, Depends(request_owner)]
"""The API key fingerprint that owns what the request reaches (None: sessions are not scoped by key)."""
