"""Per-participant rate limits: requests to one endpoint are spaced at least 60/rpm seconds apart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RateLimiter:
    """Spaces requests per key (no bursts): a provider's per-minute quota is never exceeded in any window.

    Slots are handed out in order under a lock; the wait happens outside it, so other keys never queue
    behind a slow one.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next: dict[str, float] = {}
        self._lock = asyncio.Lock()

    async def acquire(self, key: str, per_minute: int) -> float:
        """Wait for `key`'s next slot; the seconds waited. `per_minute` <= 0: no limit."""
        if per_minute <= 0:
            return 0.0
        async with self._lock:
            now = self._clock()
            slot = max(now, self._next.get(key, now))
            self._next[key] = slot + 60.0 / per_minute
        wait = slot - now
        if wait > 0:
            await asyncio.sleep(wait)
        return wait
