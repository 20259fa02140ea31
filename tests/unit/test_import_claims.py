"""Summaries after an import with several workers: a queued session is folded by one worker at a time, and a
dead worker's claim expires. The claim protocol of server/turns/after_import.py on both dialects."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from server.turns import after_import
from server.turns.after_import import ImportFollowUps


def worker(database) -> ImportFollowUps:
    """One worker's follow-up queue over the shared database (its turn runner is not needed to claim)."""
    runner: Any = SimpleNamespace(deps=SimpleNamespace(episodes=SimpleNamespace(db=database)))
    return ImportFollowUps(runner)


def test_one_worker_at_a_time_folds_a_queued_session_and_a_dead_ones_claim_expires(database, monkeypatch):
    a, b = worker(database), worker(database)
    with database.transaction() as conn:
        conn.execute("INSERT INTO import_followups (session_id, queued_at) VALUES (?, ?)", ("imp", time.time()))
    assert a._claim("imp")
    assert not b._claim("imp")  # worker B starting up leaves it to A
    assert a._claim("imp")  # A renews its own claim at its next attempt
    assert not b._claim("imp")
    monkeypatch.setattr(after_import, "CLAIM_SECONDS", -1.0)  # A's claims now expire at once: A "died"
    assert a._claim("imp")
    assert b._claim("imp")  # an expired claim is taken over
    a._done("imp")
    assert not b._claim("imp")  # done: nothing left to claim
