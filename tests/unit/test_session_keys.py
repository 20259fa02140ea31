"""The turn runner's per-session bookkeeping: locks that never leak, a settled set that stays bounded."""

import asyncio

import pytest

from server.turns.locks import KeyedLocks, SettledSessions


@pytest.mark.anyio
async def test_a_turn_cancelled_while_it_waits_for_the_session_leaves_no_lock_behind():
    locks = KeyedLocks()
    await locks.acquire("s1")  # a turn is running
    waiting = asyncio.create_task(locks.acquire("s1"))  # a second message on the same session queues
    await asyncio.sleep(0)
    assert locks.busy() == 1 and not waiting.done()
    waiting.cancel()  # its client goes away
    with pytest.raises(asyncio.CancelledError):
        await waiting
    locks.release("s1")
    # Before, the cancelled waiter stayed counted: the session read as busy for ever (409 with DOUBLE_TEXTING=reject).
    assert not locks.held("s1") and locks.busy() == 0
    await asyncio.wait_for(locks.acquire("s1"), 1)  # and the next turn gets the lock at once
    locks.release("s1")


@pytest.mark.anyio
async def test_a_queued_turn_gets_the_lock_when_the_running_one_ends():
    locks = KeyedLocks()
    await locks.acquire("s1")
    waiting = asyncio.create_task(locks.acquire("s1"))
    await asyncio.sleep(0)
    locks.release("s1")
    await asyncio.wait_for(waiting, 1)
    assert locks.held("s1")
    locks.release("s1")
    assert locks.busy() == 0


def test_settled_sessions_keep_the_most_recently_used_up_to_their_capacity():
    settled = SettledSessions(capacity=2)
    settled.add("a")
    settled.add("b")
    settled.add("a")  # used again: now the newest
    settled.add("c")  # over capacity: the least recently used (b) goes
    assert "a" in settled and "c" in settled and "b" not in settled and len(settled) == 2
    settled.discard("a")
    settled.discard("missing")
    assert "a" not in settled and len(settled) == 1
