"""The dependencies' health, probed in the background: `/health` answers from the last results at once.

Probing on each `/health` call made it as slow as the slowest dependency, and wrong when the node was busy:
llama-cpp-python's server queues `GET /models` behind a generation, so the probe timed out (2 s) and health
said "unreachable: ReadTimeout" about a node that was working. A probe that connected but got no answer in
time now reads "busy": a busy node is a healthy one. "unreachable" is kept for a node that cannot be reached.

On the scale-out profile the probe also asks Postgres (`postgres`: `SELECT 1` on a connection of its own with a
short connect timeout, so an exhausted pool does not read as an outage, nor an outage as a long wait) and the
Chroma server (`vector_store`: its heartbeat). When the memory database or the vector store answers again after
failing, the indexer is scheduled: the episodes it could not embed meanwhile are embedded without waiting
for the next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from graph.deps import Deps
from inference.node_supervisor import NodeSupervisor

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0
HEALTHY_INFERENCE = ("ok", "busy")
STORAGE = ("memory_db", "postgres", "vector_store")
"""The results that, back to "ok", schedule the indexer."""


async def _check(fn: Callable[[], Any]) -> str:
    try:
        await asyncio.to_thread(fn)
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"


class HealthProbe:
    """Probes the memory database, the vector store and the inference node every `interval` seconds."""

    def __init__(self, deps: Deps, http: httpx.AsyncClient, inference_url: str, api_key: str,
                 supervisor: NodeSupervisor | None = None, interval: float = 5.0) -> None:
        self.deps, self.http = deps, http
        self.inference_url, self.api_key = inference_url, api_key
        self.supervisor = supervisor
        self.interval = interval
        self.results: dict[str, Any] = {"memory_db": "not probed yet", "vector_store": "not probed yet",
                                        "inference": "not probed yet"}
        db = deps.episodes.db
        self.postgres_url: str | None = getattr(db, "url", None) if db.dialect == "postgres" else None
        """DATABASE_URL when the memory lives in Postgres (probed as `postgres`)."""
        if self.postgres_url:
            self.results["postgres"] = "not probed yet"
        self.checked_at: float | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Probe once (so the first /health is informed), then keep probing in the background."""
        await self.probe()
        self._task = asyncio.create_task(self._loop(), name="health-probe")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.probe()
            except Exception:  # a probe must never end the loop
                log.exception("health probe failed")

    async def probe(self) -> None:
        """Probe every dependency at once and keep the results."""
        checks = [_check(self.deps.episodes.count), _check(self.deps.vectors.heartbeat), self._inference()]
        if self.postgres_url:
            checks.append(_check(self._postgres))
        memory_db, vector_store, inference, *postgres = await asyncio.gather(*checks)
        results = {"memory_db": memory_db, "vector_store": vector_store, "inference": inference}
        if postgres:
            results["postgres"] = postgres[0]
        recovered = any(results.get(k) == "ok" and self.results.get(k, "ok") not in ("ok", "not probed yet")
                        for k in STORAGE)
        self.results = results
        self.checked_at = time.time()
        if recovered:  # what failed to be embedded while it was down is embedded now
            log.warning("storage answers again (%s): indexing the pending episodes", results)
            self.deps.indexer.schedule()

    def _postgres(self) -> None:
        """`SELECT 1` on a fresh connection (not the pool's): Postgres itself answers, within the timeout."""
        assert self.postgres_url is not None
        with psycopg.connect(self.postgres_url, connect_timeout=max(2, round(PROBE_TIMEOUT)),
                             options=f"-c statement_timeout={int(PROBE_TIMEOUT * 1000)}") as conn:
            conn.execute("SELECT 1").fetchone()

    async def _inference(self) -> str:
        down = self.supervisor.down() if self.supervisor is not None else None
        if down is not None:
            return f"down: {down.message}"
        try:
            response = await self.http.get(self.inference_url.rstrip("/") + "/models", timeout=PROBE_TIMEOUT,
                                           headers={"Authorization": f"Bearer {self.api_key}"})
        except httpx.ReadTimeout:
            return "busy"  # it took the connection but is answering something else first
        except Exception as exc:
            return f"unreachable: {type(exc).__name__}"
        return "ok" if response.status_code < 500 else f"error: HTTP {response.status_code}"

    def age(self) -> float | None:
        """Seconds since the last probe finished."""
        return None if self.checked_at is None else round(time.time() - self.checked_at, 3)
