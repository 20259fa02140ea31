"""The checkpoint retention policy in the running service (CHECKPOINTS_KEPT).

`RetainingSaver` is the SQLite saver that also names each thread it has just saved a checkpoint of;
`CheckpointPruner` collects those names and, in a background task, prunes each thread down to its newest
checkpoints a moment later, on a connection of its own: a turn only adds a name to a set. Freed pages are
reused by the next checkpoints; what exceeds a small reserve is returned to the OS (memory/checkpoint_retention.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import aiosqlite
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from memory.checkpoint_retention import WAL_SIZE_LIMIT, CheckpointRetention
from server.metrics import Metrics

log = logging.getLogger(__name__)

#: Seconds between a checkpoint and the pruning of its thread: a turn's two saves (the reply, then the
#: summary) and a burst of turns are pruned in one pass, after the reply has gone out.
PRUNE_DELAY_SECONDS = 0.5
#: Each thread's pruning waits for a moment when no turn is running (its deletes would hold SQLite's write
#: lock while a turn saves its checkpoint, and a blocked writer backs off for 1, 2, 5... ms), checking this
#: often, but no longer than MAX_DEFER_SECONDS, so that a service never idle still prunes.
IDLE_POLL_SECONDS = 0.005
MAX_DEFER_SECONDS = 5.0


class NamesSavedThreads:
    """A checkpoint saver's mixin (before the saver in the bases) that calls `on_put(thread_id)` after each
    checkpoint it saves: how the pruner learns which threads to prune, on either profile."""

    on_put: Callable[[str], None] | None = None

    async def aput(self, config, checkpoint, metadata, new_versions):
        saved = await super().aput(config, checkpoint, metadata, new_versions)  # the saver's own
        if self.on_put is not None:
            self.on_put(str(saved["configurable"]["thread_id"]))
        return saved


class RetainingSaver(NamesSavedThreads, AsyncSqliteSaver):
    """`AsyncSqliteSaver` that calls `on_put(thread_id)` after each checkpoint it saves."""


async def open_saver(path: Path) -> RetainingSaver:
    """The service's checkpointer on `path`, its tables made."""
    conn = await aiosqlite.connect(path)
    await conn.execute("PRAGMA busy_timeout=5000")
    # Before any table exists (a new file), so that pruned checkpoints' pages can go back to the OS; on an
    # existing file it changes nothing until `orchestrator compact` rewrites it (SQLite reuses the pages).
    await conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    # As memory.db: WAL with synchronous=NORMAL survives a killed process (kill -9 tests it); only an OS
    # crash or power loss can drop the last commits. FULL would fsync each of a turn's ~13 commits.
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=NORMAL")
    await conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    saver = RetainingSaver(conn)
    await saver.setup()
    return saver


def uses_delta_channels(graph) -> bool:
    """Whether a compiled graph has a `DeltaChannel`: its state is rebuilt from older checkpoints' writes,
    so pruning them would empty it silently (langgraph's `BaseCheckpointSaver.prune` warns of this)."""
    return any(isinstance(channel, DeltaChannel) for channel in graph.channels.values())


class CheckpointPruner:
    """Prunes the threads it is told of, in the background; `keep` 0 prunes nothing."""

    def __init__(self, store: CheckpointRetention, keep: int, metrics: Metrics | None = None,
                 delay: float = PRUNE_DELAY_SECONDS) -> None:
        self.store = store
        self.keep = keep
        self.metrics = metrics or Metrics()
        self.delay = delay
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._busy = asyncio.Lock()  # one pass at a time: a caller of drain() waits for a pass under way
        self.turns_running: Callable[[], int] = lambda: 0
        """How many turns are running now (the service sets it to its session locks' count)."""

    def start(self) -> None:
        """Start the background task (in the running event loop)."""
        self._task = asyncio.create_task(self._run(), name="checkpoint-pruner")

    def mark(self, thread_id: str) -> None:
        """A checkpoint of `thread_id` was saved: prune the thread soon. Never blocks."""
        if self.keep:
            self._pending.add(thread_id)
            self._wake.set()

    def forgotten(self, thread_id: str) -> None:
        """A thread was deleted: give its space back soon."""
        self._pending.add(thread_id)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.delay)
            self._wake.clear()
            async with self._busy:
                await self._pass(between_turns=True)

    async def drain(self) -> None:
        """Prune every thread marked so far, then return what free space exceeds the reserve."""
        async with self._busy:
            await self._pass(between_turns=False)

    async def _between_turns(self) -> None:
        waited = 0.0
        while self.turns_running() and waited < MAX_DEFER_SECONDS:
            await asyncio.sleep(IDLE_POLL_SECONDS)
            waited += IDLE_POLL_SECONDS

    async def _pass(self, between_turns: bool) -> None:
        if not self._pending:
            return
        while self._pending:
            if between_turns:
                await self._between_turns()
            thread_id = self._pending.pop()
            try:
                if self.keep:
                    deleted = await asyncio.to_thread(self.store.prune, thread_id, self.keep)
                    self.metrics.checkpoints_pruned.inc(deleted)
            except Exception:  # a busy or broken file: the next turn of the thread tries again
                log.exception("pruning the checkpoints of session %s failed", thread_id)
        try:
            if between_turns:
                await self._between_turns()
            self.metrics.checkpoint_bytes_reclaimed.inc(await asyncio.to_thread(self.store.reclaim))
        except Exception:
            log.exception("returning the checkpoint store's free pages failed")

    async def close(self) -> None:
        """Stop the task, prune what is still marked, close the store's connection."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.drain()
        await asyncio.to_thread(self.store.close)
