"""The dialogue job runner: a queue, at most MAX_CONCURRENT_DIALOGUES running, cancel, resume on restart.

Every dialogue is a thread of the dialogue graph on the service's checkpointer, checkpointed after each
node: a restart resumes a dialogue from its last checkpoint, so a turn that was stored is never generated
again (a turn in flight when the process died was not stored, and is generated once, after the restart).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from dialogue.builder import recursion_limit
from dialogue.metrics import dialogue_metrics
from dialogue.participants import ParticipantModels
from dialogue.state import initial_state
from server.dialogues.prometheus import DialogueMetrics
from server.dialogues.store import UNFINISHED, DialogueStore

log = logging.getLogger(__name__)


def thread_config(job_id: str, max_turns: int) -> RunnableConfig:
    """The graph config of one dialogue: its own checkpoint thread."""
    return {"configurable": {"thread_id": f"dialogue:{job_id}"}, "recursion_limit": recursion_limit(max_turns)}


class DialogueJobs:
    """Runs queued dialogues in creation order, `limit` at a time."""

    def __init__(self, store: DialogueStore, graph: CompiledStateGraph, limit: int, metrics: DialogueMetrics,
                 models: ParticipantModels) -> None:
        self.store, self.graph, self.limit = store, graph, limit
        self.metrics, self.models = metrics, models
        self._queue: deque[str] = deque()
        self._tasks: dict[str, asyncio.Task] = {}
        self._closing = False

    @property
    def running(self) -> int:
        """Dialogues running now."""
        return len(self._tasks)

    async def resume(self) -> int:
        """Queue the dialogues a previous process left queued or running; how many."""
        ids = await asyncio.to_thread(self.store.unfinished)
        self._queue.extend(ids)
        self._kick()
        return len(ids)

    async def submit(self, jobs: list[tuple[str, str, dict[str, Any]]], batch_id: str | None,
                     owner: str | None = None) -> None:
        """Store and queue (id, topic, request) jobs."""
        await asyncio.to_thread(self.store.add, jobs, batch_id, owner)
        self._queue.extend(job_id for job_id, _, _ in jobs)
        self._kick()

    async def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running dialogue; False if it had already finished. Its turns so far stay."""
        changed = await asyncio.to_thread(self.store.set_status, job_id, "cancelled")
        if job_id in self._queue:
            self._queue.remove(job_id)
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()
        self._gauges()
        return changed

    async def close(self) -> None:
        """Stop running dialogues without marking them: the next start resumes them from their checkpoints."""
        self._closing = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _kick(self) -> None:
        while not self._closing and self._queue and len(self._tasks) < self.limit:
            job_id = self._queue.popleft()
            if job_id in self._tasks:
                continue
            task = asyncio.create_task(self._run(job_id), name=f"dialogue:{job_id}")
            self._tasks[job_id] = task
            task.add_done_callback(functools.partial(self._done, job_id))
        self._gauges()

    def _done(self, job_id: str, _task: asyncio.Task) -> None:
        self._tasks.pop(job_id, None)
        self._kick()

    def _gauges(self) -> None:
        self.metrics.running.set(len(self._tasks))
        self.metrics.queued.set(len(self._queue))

    async def _run(self, job_id: str) -> None:
        try:
            release = await asyncio.to_thread(self.store.claim, job_id)
        except Exception:  # the database is unreachable: the job stays unfinished, resumed at the next start
            log.exception("dialogue %s could not be claimed", job_id)
            return
        if release is None:
            return  # another worker (same Postgres) is running it
        try:
            await self._run_claimed(job_id)
        finally:
            await asyncio.to_thread(release)

    async def _run_claimed(self, job_id: str) -> None:
        row = await asyncio.to_thread(self.store.get, job_id)
        if row is None or row.status not in UNFINISHED:
            return
        if not await asyncio.to_thread(self.store.set_status, job_id, "running"):
            return  # cancelled meanwhile
        config = thread_config(job_id, row.request["max_turns"])
        try:
            snapshot = await self.graph.aget_state(config)
            if not snapshot.values:
                await self.graph.ainvoke(initial_state(row.request), config)
            elif snapshot.next:  # stopped mid-way: go on from the last checkpoint
                await self.graph.ainvoke(None, config)
            values = dict((await self.graph.aget_state(config)).values)
        except asyncio.CancelledError:
            raise  # cancelled (already marked) or shutting down (left running: resumed at the next start)
        except Exception as exc:
            log.exception("dialogue %s failed", job_id)
            values = dict((await self.graph.aget_state(config)).values)
            values.update(ending_reason="error", error=f"{type(exc).__name__}: {exc}")
        await self._finish(job_id, values)

    async def _finish(self, job_id: str, values: dict[str, Any]) -> None:
        turns = list(values.get("turns") or [])
        status = "failed" if values.get("error") else "done"
        metrics = dialogue_metrics(turns, list(values.get("checks") or []), values.get("ending_reason"))
        if await asyncio.to_thread(self.store.finish, job_id, status, values.get("ending_reason"),
                                   values.get("error"), turns, metrics):
            self.metrics.observe(status, metrics, turns)
        self.metrics.circuits(self.models.breakers())
