"""Per-session bookkeeping of the turn runner: one lock per session, and which sessions are settled."""

from __future__ import annotations

import asyncio
from collections import OrderedDict


class KeyedLocks:
    """One asyncio lock per key, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def acquire(self, key: str) -> None:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:  # cancelled while waiting (the client went away): not a user any more
            self._leave(key)
            raise

    def release(self, key: str) -> None:
        self._locks[key][0].release()
        self._leave(key)

    def _leave(self, key: str) -> None:
        lock, users = self._locks[key]
        if users <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)

    def held(self, key: str) -> bool:
        """Whether a turn of this key is running or waiting."""
        return key in self._locks

    def busy(self) -> int:
        """Sessions with a turn running or waiting."""
        return len(self._locks)


class SettledSessions:
    """Sessions whose last turn this process ran to its end, the most recently used `capacity` of them.

    Their checkpoint holds messages and no half turn, so their next turn need not load it once more before
    the run (which loads it anyway). Forgetting one only costs that load on its next turn.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, session_id: str) -> None:
        self._keys[session_id] = None
        self._keys.move_to_end(session_id)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)

    def discard(self, session_id: str) -> None:
        self._keys.pop(session_id, None)
