"""After an import: the summary and entities its turns would have produced, computed in the background.

An import makes no inference call (server/turns/importer.py), so a long imported history would sit whole in the
checkpoint, unsummarised and without entities, until the session's next turn folded it all in one oversized
prompt. Instead, once an import leaves the session holding more than SUMMARY_TRIGGER_MESSAGES (a shorter one
has nothing to fold, as a short session has not), the session is queued here (a row in `import_followups`, so
a restart resumes it) and a background task does what the turns' `summarise` node does, in bounded steps:
while a summary is due, the oldest messages outside the recent window, up to about half the context window
of text, are folded into the rolling summary by one inference call, and their entities extracted by another.
Each step reads the state, calls the model without holding the session (a turn may run meanwhile) and writes
the fold only if the state it read is still the session's (otherwise it starts over from the new state).
Until the queue row is gone, `GET /sessions/{id}` says `memoryPending: true`.

A failed step (the inference node down) leaves the session queued; it is retried after `retry_delay`
seconds, doubling, `max_attempts` times per process, then on the next start or the next import.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from langchain_core.messages import AnyMessage, HumanMessage, RemoveMessage

import prompts
from graph.config import RunOptions
from graph.transcript import to_chat
from graph.window import window_start
from memory.sessions import scope_of
from nodes.summarise import extract_entities, summary_due
from server.turns.runner import TurnRunner

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS import_followups (
    session_id TEXT PRIMARY KEY,
    queued_at DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    claimed_until DOUBLE PRECISION
)
"""
CLAIM_SECONDS = 600.0
"""How long a worker's claim on a queued session holds (renewed at each attempt): with several workers on one
Postgres, a starting worker resumes only what no live worker is folding, and a dead worker's claim expires."""
AS_NODE = "summarise"
"""The fold is written as the summarise node writes it: the graph's last node, nothing left to run."""


def render(messages: list[AnyMessage]) -> str:
    """Messages as the summarise prompt shows them."""
    return "\n".join(f"{role}: {text}" for role, text in (t for t in map(to_chat, messages) if t))


class ImportFollowUps:
    """The queue of imported sessions still to be summarised, and the tasks working through it."""

    def __init__(self, runner: TurnRunner, retry_delay: float = 5.0, max_attempts: int = 5) -> None:
        self.runner = runner
        self.db = runner.deps.episodes.db
        self.retry_delay = retry_delay
        self.max_attempts = max_attempts
        self.db.executescript(SCHEMA)
        self._tasks: dict[str, asyncio.Task] = {}
        self._again: set[str] = set()
        self._claims: dict[str, float] = {}
        """The claims this process holds: their expiry, as written."""

    def pending(self, session_id: str) -> bool:
        """Whether the session's imported history is still to be summarised (blocking: a SQLite read)."""
        return bool(self.db.query("SELECT 1 FROM import_followups WHERE session_id = ?", (session_id,)))

    async def queue(self, session_id: str) -> bool:
        """If the session now holds more than a summary is due at, record that it has imported messages to
        fold and start folding them; whether it did (a short import has nothing to fold, as a short session)."""
        state = await self.runner.settled_state(session_id)
        if not summary_due(state.values, self.runner.deps.limits):
            return False

        def write() -> None:
            with self.db.transaction() as conn:
                conn.execute("DELETE FROM import_followups WHERE session_id = ?", (session_id,))
                conn.execute("INSERT INTO import_followups (session_id, queued_at) VALUES (?, ?)",
                             (session_id, time.time()))

        await asyncio.to_thread(write)
        self._start(session_id)
        return True

    async def resume(self) -> None:
        """Start the sessions a previous process left queued."""
        rows = await asyncio.to_thread(self.db.query, "SELECT session_id FROM import_followups")
        for row in rows:
            self._start(row["session_id"])

    def _start(self, session_id: str) -> None:
        task = self._tasks.get(session_id)
        if task is not None and not task.done():
            self._again.add(session_id)  # an import while folding: fold again once this pass ends
            return
        self._tasks[session_id] = asyncio.get_running_loop().create_task(self._run(session_id))

    def _claim(self, session_id: str) -> bool:
        """Take (or renew) this process's claim on a queued session; False while another worker holds it."""
        now = time.time()
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE import_followups SET claimed_until = ? WHERE session_id = ? AND "
                "(claimed_until IS NULL OR claimed_until < ? OR claimed_until = ?)",
                (now + CLAIM_SECONDS, session_id, now, self._claims.get(session_id, -1.0)))
            if cursor.rowcount != 1:
                return False
        self._claims[session_id] = now + CLAIM_SECONDS
        return True

    async def _run(self, session_id: str) -> None:
        delay, attempt = self.retry_delay, 0
        while attempt < self.max_attempts:
            self._again.discard(session_id)
            if not await asyncio.to_thread(self._claim, session_id):
                return  # another worker is folding it (or it is done)
            try:
                await self.fold(session_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                log.warning("summarising imported session %s failed (attempt %d): %r", session_id, attempt, exc)
                await asyncio.to_thread(self._failed, session_id, repr(exc))
                await asyncio.sleep(delay)
                delay *= 2
                continue
            if session_id not in self._again:  # else an import came meanwhile: fold what it added too
                await asyncio.to_thread(self._done, session_id)
                return

    def _failed(self, session_id: str, error: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE import_followups SET attempts = attempts + 1, last_error = ? WHERE session_id = ?",
                         (error[:500], session_id))

    def _done(self, session_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM import_followups WHERE session_id = ?", (session_id,))

    async def fold(self, session_id: str) -> int:
        """Fold the session's history step by step until no summary is due; returns how many steps wrote."""
        deps, runner = self.runner.deps, self.runner
        limits = deps.limits
        budget = max(2000, limits.context_tokens * 2)  # characters: about half the window at ~4 a token
        row = await asyncio.to_thread(deps.sessions.get, session_id)
        if row is None:
            return 0  # deleted meanwhile: nothing to fold
        config: Any = {"configurable": {"thread_id": session_id, "scope": scope_of(row["project_id"],
                                                                                    row.get("owner"))}}
        steps = 0
        while True:
            state = await runner.settled_state(session_id)
            if not summary_due(state.values, limits):
                return steps
            messages: list[AnyMessage] = state.values["messages"]
            old = messages[:window_start(messages, limits.recent_messages)]
            chunk: list[AnyMessage] = []
            size = 0
            for message in old:  # the oldest first, up to the budget (one message at least)
                size += len(message.text) + 16
                if chunk and size > budget:
                    break
                chunk.append(message)
            rendered = render(chunk)
            before = state.values.get("summary")
            prompt = prompts.render("summarise", summary=before or "(none yet)", messages=rendered)
            reply = await deps.chat_model.ainvoke([HumanMessage(prompt)], config, extra_body={"max_tokens": 400})
            summary = reply.text.strip()
            if not summary:
                raise RuntimeError("the model gave an empty summary")
            await extract_entities(deps, rendered, RunOptions.from_config(config), config)
            async with runner.exclusive(session_id):
                now = await runner.graph.aget_state(config)
                held = {m.id for m in now.values.get("messages", [])}
                if now.values.get("summary") != before or any(m.id not in held for m in chunk):
                    continue  # a turn folded or changed the history meanwhile: start from what it left
                await runner.graph.aupdate_state(config, {"summary": summary, "messages": [
                    RemoveMessage(id=m.id) for m in chunk if m.id]}, as_node=AS_NODE)
            steps += 1

    async def aclose(self) -> None:
        """Stop folding (what is left stays queued for the next start, its claim given back)."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await asyncio.to_thread(self._release_claims)

    def _release_claims(self) -> None:
        """Give back this process's claims, so a worker starting next resumes them at once."""
        with self.db.transaction() as conn:
            for session_id, until in self._claims.items():
                conn.execute("UPDATE import_followups SET claimed_until = NULL WHERE session_id = ? AND "
                             "claimed_until = ?", (session_id, until))
        self._claims.clear()
