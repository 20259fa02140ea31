"""What a door answers a failed turn with: the one place an exception from a turn's run becomes an ApiError."""

from __future__ import annotations

import asyncio
import logging

from server.errors import ApiError, inference_error
from server.storage_outage import is_storage_outage, storage_unavailable
from server.turns.storable import is_storage_failure, storage_error

log = logging.getLogger(__name__)


def turn_failure(inference_url: str | None, exc: BaseException, stored: bool) -> ApiError:
    """Our storage's 500 (503 while its database is out of reach), a cancelled turn's 503, or the inference
    node's 502/503/504. `stored`: the turn had reached persist, after which only storing it can fail."""
    if is_storage_outage(exc):
        log.error("a turn met a database outage (rolled back): %r", exc)
        return storage_unavailable(exc)
    if stored or is_storage_failure(exc):
        log.error("storing a turn failed: %r", exc)
        return storage_error(exc)
    if isinstance(exc, asyncio.CancelledError):
        return ApiError(503, "The turn was cancelled before its reply was complete (its client left, or the "
                        "service is shutting down); nothing of it was stored.", code="turn_cancelled")
    return inference_error(exc, inference_url)
