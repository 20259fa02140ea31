"""A turn's episode and its checkpoint agree, whatever point a crash cuts the turn at.

`persist` writes the episode uncommitted (invisible to recall, lexical search, indexing and the API)
before the run's checkpoint is saved; once the checkpoint holds the turn, the runner commits it, and a turn
that fails is rolled back from the checkpoint and its episode discarded. A crash can only leave an
uncommitted episode behind: at start-up, `reconcile` commits it if its session's checkpoint holds its
reply (the turn is wholly there) and deletes it otherwise (the turn is wholly gone). Nothing is ever
embedded before it is committed, so there is no vector to undo.

On Postgres other workers may be mid-turn (or mid-import) while one starts: their episodes are uncommitted for
the moment between `persist` and the checkpoint. Repair then only looks at episodes stored more than
`SHARED_REPAIR_AGE` ago (a turn's own commit follows its `persist` within the run), and two workers repairing
at once commit each episode once (`EpisodeStore.commit_session` re-checks each row).
"""

from __future__ import annotations

import asyncio
import logging
import time

from langgraph.graph.state import CompiledStateGraph

from graph.deps import Deps
from memory.sessions import SessionStore
from server.turns.locks import KeyedLocks

log = logging.getLogger(__name__)

SHARED_REPAIR_AGE = 600.0
"""Seconds an uncommitted episode must have existed before start-up repair on a shared (Postgres) store
touches it: far longer than `persist` → checkpoint → commit of any live turn (summarise may call the model)."""


def _counted(session_id: str):
    """Counts the committed turns on the session, inside the commit's transaction."""
    return lambda conn, turns: SessionStore.count_turns(conn, session_id, turns)


async def commit_turn(deps: Deps, session_id: str, reply_id: str | None) -> None:
    """The checkpoint holds the turn that ended with `reply_id`: its episode becomes memory (and is counted
    on the session) in one write, and is queued for embedding."""
    await asyncio.to_thread(deps.episodes.commit_session, session_id, [reply_id], _counted(session_id))
    deps.indexer.schedule()


async def discard_turn(deps: Deps, session_id: str) -> None:
    """The session's failed turn was rolled back: its uncommitted episode goes too. Call with the session's
    lock held (no other turn of it is running). A failure is logged: start-up repair finishes the job."""
    try:
        await asyncio.to_thread(deps.episodes.discard_uncommitted, session_id)
    except Exception:
        log.exception("session %s: discarding a failed turn's episode failed; the next start-up removes it",
                      session_id)


async def reconcile(graph: CompiledStateGraph, deps: Deps, locks: KeyedLocks | None = None) -> tuple[int, int]:
    """Start-up repair, before any turn runs: commit each uncommitted episode whose reply its session's
    checkpoint holds, delete the others. Returns (committed, discarded). With several workers (`locks`: the
    sessions' advisory locks), a session another worker is running a turn of is left to it (its episode is
    uncommitted because that turn is under way, not because a crash cut it)."""
    committed = discarded = 0
    before = time.time() - SHARED_REPAIR_AGE if deps.episodes.db.dialect == "postgres" else None
    for session_id, reply_ids in (await asyncio.to_thread(deps.episodes.uncommitted, before)).items():
        if locks is not None and not await locks.try_acquire(session_id):
            continue
        try:
            c, d = await _reconcile_session(graph, deps, session_id, reply_ids, before)
        finally:
            if locks is not None:
                locks.release(session_id)
        committed, discarded = committed + c, discarded + d
    if committed or discarded:
        log.warning("start-up repair: %d episode(s) of turns a crash cut after their checkpoint committed, "
                    "%d of turns cut before it removed", committed, discarded)
    return committed, discarded


async def _reconcile_session(graph: CompiledStateGraph, deps: Deps, session_id: str, reply_ids: list,
                             before: float | None) -> tuple[int, int]:
    """One session's repair: (committed, discarded)."""
    state = await graph.aget_state({"configurable": {"thread_id": session_id}})
    held = {m.id for m in state.values.get("messages", [])}
    kept = [i for i in reply_ids if i in held]
    committed = 0
    if kept:
        committed = await asyncio.to_thread(deps.episodes.commit_session, session_id, kept, _counted(session_id))
    return committed, await asyncio.to_thread(deps.episodes.discard_uncommitted, session_id, before)
