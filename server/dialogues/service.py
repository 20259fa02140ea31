"""The dialogue service the routes talk to: opened beside the runtime, sharing its checkpointer, chat
model, embedder and metrics registry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from config.settings import Settings
from dialogue.builder import build_dialogue_graph
from dialogue.deps import dialogue_deps
from dialogue.metrics import dialogue_metrics
from memory.db import SqliteDatabase
from server.dialogues.export import ExportFilter, ExportFormat, export_line
from server.dialogues.jobs import DialogueJobs, thread_config
from server.dialogues.prometheus import DialogueMetrics
from server.dialogues.schemas import DialogueCreate, DialoguePublic, DialogueSummary
from server.dialogues.store import UNFINISHED, DialogueRow, DialogueStore
from server.errors import ApiError
from server.runtime import Runtime


@dataclass
class DialogueService:
    """Jobs, their store and the compiled dialogue graph."""

    settings: Settings
    store: DialogueStore
    graph: CompiledStateGraph
    jobs: DialogueJobs
    owns_db: bool = True
    """Whether `close` closes the store's database (not the runtime's, on the Postgres profile)."""

    @classmethod
    async def open(cls, runtime: Runtime) -> DialogueService:
        """Open the jobs table, compile the graph on the runtime's checkpointer, resume unfinished jobs. On the
        Postgres profile the table lives in the memory database (the runtime's pool, which the runtime closes);
        on the embedded one in its own file, DATA_DIR/dialogues.db."""
        settings = runtime.settings
        memory_db = runtime.deps.sessions.db
        shared = memory_db.dialect == "postgres"
        db = memory_db if shared else SqliteDatabase(settings.dialogues_path)
        store = await asyncio.to_thread(DialogueStore, db)
        deps = dialogue_deps(settings, runtime.deps.chat_model, runtime.deps.embedder)
        graph = build_dialogue_graph(deps).compile(checkpointer=runtime.graph.checkpointer)
        jobs = DialogueJobs(store, graph, settings.max_concurrent_dialogues, DialogueMetrics(runtime.metrics),
                            deps.models)
        service = cls(settings, store, graph, jobs, owns_db=not shared)
        await jobs.resume()
        return service

    async def close(self) -> None:
        await self.jobs.close()
        if self.owns_db:
            await asyncio.to_thread(self.store.db.close)

    async def submit(self, dialogues: list[DialogueCreate], batch: bool, owner: str | None = None
                     ) -> tuple[str | None, list[str]]:
        """Queue dialogues; the batch id (None for one) and their ids."""
        if len(dialogues) > self.settings.dialogue_max_batch:
            raise ApiError(400, f"A batch may queue at most {self.settings.dialogue_max_batch} dialogues "
                           f"(DIALOGUE_MAX_BATCH); this one has {len(dialogues)}.", param="topics")
        allowed = self.settings.dialogue_allowed_base_url_list
        for d in dialogues:
            if d.max_turns > self.settings.dialogue_max_turns:
                raise ApiError(400, f"max_turns may be at most {self.settings.dialogue_max_turns} "
                               f"(DIALOGUE_MAX_TURNS); got {d.max_turns}.", param="max_turns")
            for i, p in enumerate(d.participants):
                # The service calls what a client names: DIALOGUE_ALLOWED_BASE_URLS keeps it to known nodes.
                if p.base_url and allowed and not p.base_url.startswith(tuple(allowed)):
                    raise ApiError(400, f"participants.{i}.base_url {p.base_url!r} is not allowed: it must start "
                                   f"with one of {', '.join(allowed)} (DIALOGUE_ALLOWED_BASE_URLS).",
                                   param=f"participants.{i}.base_url")
        jobs = [(uuid.uuid4().hex, d.topic, d.graph_request()) for d in dialogues]
        batch_id = f"batch-{uuid.uuid4().hex[:12]}" if batch else None
        await self.jobs.submit(jobs, batch_id, owner)
        return batch_id, [job_id for job_id, _, _ in jobs]

    async def _live(self, row: DialogueRow) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Turns and metrics: stored once finished, read from the checkpoint before."""
        if row.turns is not None and row.status not in UNFINISHED:
            return row.turns, row.metrics or {}
        snapshot = await self.graph.aget_state(thread_config(row.id, row.request["max_turns"]))
        values = snapshot.values or {}
        turns = list(values.get("turns") or [])
        return turns, dialogue_metrics(turns, list(values.get("checks") or []), values.get("ending_reason"))

    async def _row(self, job_id: str, owner: str | None) -> DialogueRow:
        """The job, if this owner may reach it (another key's dialogue is as unknown as a missing one)."""
        row = await asyncio.to_thread(self.store.get, job_id)
        if row is None or (owner is not None and row.owner != owner):
            raise ApiError(404, f"No dialogue {job_id!r}.", param="id")
        return row

    async def get(self, job_id: str, owner: str | None = None) -> DialoguePublic:
        row = await self._row(job_id, owner)
        turns, metrics = await self._live(row)
        return DialoguePublic(id=row.id, status=row.status, topic=row.topic, batch_id=row.batch_id,
                              participants=row.request["participants"], min_turns=row.request["min_turns"],
                              max_turns=row.request["max_turns"], turns=turns, ending_reason=row.ending_reason,
                              error=row.error, metrics=metrics, created_at=row.created_at,
                              updated_at=row.updated_at)

    async def cancel(self, job_id: str, owner: str | None = None) -> DialoguePublic:
        row = await self._row(job_id, owner)
        if row.status in ("done", "failed"):
            raise ApiError(409, f"Dialogue {job_id} has already finished ({row.status}).", param="id")
        await self.jobs.cancel(job_id)
        return await self.get(job_id, owner)

    async def page(self, status: str | None, batch_id: str | None, topic: str | None, after: int, limit: int,
                   owner: str | None = None) -> tuple[list[DialogueSummary], dict[str, int], int | None]:
        rows = await asyncio.to_thread(self.store.page, status=status, batch_id=batch_id, topic=topic,
                                       owner=owner, after=after, limit=limit)
        out = []
        for _, row in rows:
            turns, _metrics = await self._live(row) if row.status == "running" else (row.turns or [], None)
            out.append(DialogueSummary(id=row.id, status=row.status, topic=row.topic, batch_id=row.batch_id,
                                       turns=len(turns), tokens=sum(int(t["tokens"]) for t in turns),
                                       ending_reason=row.ending_reason, error=row.error))
        counts = await asyncio.to_thread(self.store.counts, owner)
        return out, counts, (rows[-1][0] if len(rows) == limit else None)

    async def export(self, fmt: ExportFormat, status: str, batch_id: str | None, topic: str | None,
                     keep: ExportFilter, owner: str | None = None) -> AsyncIterator[str]:
        """JSONL lines of the matching finished dialogues, read a page at a time."""
        after = 0
        while True:
            rows = await asyncio.to_thread(self.store.page, status=status, batch_id=batch_id, topic=topic,
                                           owner=owner, after=after)
            for seq, row in rows:
                after = seq
                if keep.accepts(row):
                    yield export_line(row, fmt)
            if not rows:
                return
