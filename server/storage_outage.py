"""The service's database out of reach (the Postgres profile, DATABASE_URL): a 503 `storage_unavailable` with
Retry-After in each door's error format, instead of a 500 or a hang.

psycopg raises `OperationalError` for a server that is down or went away mid-query (refused, terminated
connection, admin shutdown), and `psycopg_pool.PoolTimeout` (an `OperationalError` too) when no connection
could be had within the pool's timeout: the wait is bounded by that timeout, never longer. Both are passing
conditions on the service's side, so the client is told to retry, and a turn that met one was rolled back
(the runner undoes a failed turn), so nothing of it is stored. When Postgres is back, the pool reconnects and
the next request is served.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from server.errors import ApiError, error_body

RETRY_AFTER_S = 5
"""Seconds a client is asked to wait before retrying (the health probe looks every 5 s by default)."""


def is_storage_outage(exc: BaseException) -> bool:
    """The database could not be reached or went away (PoolTimeout included), here or behind a wrapper."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, psycopg.OperationalError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def storage_unavailable(exc: BaseException) -> ApiError:
    """The 503 for a request our database could not serve."""
    return ApiError(503, f"The service's database (Postgres, DATABASE_URL) is unavailable, so nothing of this "
                    f"request was stored; retry in {RETRY_AFTER_S} s ({type(exc).__name__}: "
                    f"{str(exc).strip() or 'no detail'}).",
                    type_="storage_unavailable", code="storage_unavailable",
                    headers={"Retry-After": str(RETRY_AFTER_S)})


@contextmanager
def refused_on_outage() -> Iterator[None]:
    """Turn an outage met inside the block into the 503 ApiError every door already answers with."""
    try:
        yield
    except Exception as exc:
        if is_storage_outage(exc):
            raise storage_unavailable(exc) from exc
        raise


def install_outage_handler(app: FastAPI) -> None:
    """Any route that meets an outage (session and project CRUD, idempotency records...) answers 503."""

    @app.exception_handler(psycopg.OperationalError)
    async def _outage(request: Request, exc: Exception) -> JSONResponse:
        error = storage_unavailable(exc)
        return JSONResponse(error_body(request.url.path, error), status_code=error.status, headers=error.headers)
