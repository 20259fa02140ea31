"""Per-session bookkeeping of the turn runner: one lock per session, and which sessions are settled."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable


class KeyedLocks:
    """One asyncio lock per key, forgotten when nobody holds or waits for it (one worker's; across workers:
    server/turns/pg_locks.py)."""

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

    async def try_acquire(self, key: str) -> bool:
        """Take the key if nobody holds it, at once; False if somebody does (DOUBLE_TEXTING=reject)."""
        if self.held(key):
            return False
        await KeyedLocks.acquire(self, key)  # free: asyncio.Lock takes it without waiting (this class's, not a
        # subclass's that would also wait elsewhere)
        return True

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

    With several workers (`head` given: the id of a session's newest checkpoint in the shared store), another
    worker may have run a turn of the session, or deleted it, since: each entry keeps the checkpoint its turn
    ended on, and `still_settled` holds only while that is still the newest (one primary-key lookup).
    """

    def __init__(self, capacity: int = 100_000,
                 head: Callable[[str], Awaitable[str | None]] | None = None) -> None:
        self.capacity = capacity
        self.head = head
        self._keys: OrderedDict[str, str | None] = OrderedDict()

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, session_id: str, checkpoint_id: str | None = None) -> None:
        self._keys[session_id] = checkpoint_id
        self._keys.move_to_end(session_id)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)

    async def settle(self, session_id: str) -> None:
        """The session's turn ended here (its lock still held): remember it, with its newest checkpoint."""
        self.add(session_id, await self.head(session_id) if self.head else None)

    async def still_settled(self, session_id: str) -> bool:
        """Whether the session's last turn is still the one this process ran (call with its lock held)."""
        if session_id not in self._keys:
            return False
        if self.head is None:  # one process owns the store: nobody else changed it
            return True
        if self._keys[session_id] == await self.head(session_id):
            return True
        self.discard(session_id)  # another worker ran a turn of it, or deleted it
        return False

    def discard(self, session_id: str) -> None:
        self._keys.pop(session_id, None)
