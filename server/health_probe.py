"""The dependencies' health, probed in the background: `/health` answers from the last results at once.

Probing on each `/health` call made it as slow as the slowest dependency, and wrong when the node was busy:
llama-cpp-python's server queues `GET /models` behind a generation, so the probe timed out (2 s) and health
said "unreachable: ReadTimeout" about a node that was working. A probe that connected but got no answer in
time now reads "busy": a busy node is a healthy one. "unreachable" is kept for a node that cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from graph.deps import Deps
from inference.node_supervisor import NodeSupervisor

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0
HEALTHY_INFERENCE = ("ok", "busy")


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
        memory_db, vector_store, inference = await asyncio.gather(
            _check(self.deps.episodes.count), _check(self.deps.vectors.heartbeat), self._inference())
        self.results = {"memory_db": memory_db, "vector_store": vector_store, "inference": inference}
        self.checked_at = time.time()

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
