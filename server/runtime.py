"""What the lifespan opens and closes: stores, embedder, chat model, checkpointer and the compiled graph."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace

import httpx
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from config.settings import Settings
from graph.builder import build_graph
from graph.deps import Deps
from graph.wiring import build_deps
from inference.backends import Backend, FailoverChatModel
from inference.chat_models import embedded_node
from inference.local_node import LocalInferenceNode
from inference.node_supervisor import NodeSupervisor
from memory import embedding_identity
from memory.checkpoint_retention import CheckpointRetention, SqliteCheckpointRetention
from memory.datadir_lock import DirectoryLock, directory_locks
from server.checkpoint_pruner import CheckpointPruner, uses_delta_channels
from server.health_probe import HealthProbe
from server.metrics import Metrics
from server.shared import Checkpoints, SharedLocks, open_checkpoints, open_shared_locks
from server.turns.after_import import ImportFollowUps
from server.turns.commit import reconcile
from server.turns.locks import KeyedLocks
from server.turns.runner import TurnRunner

log = logging.getLogger(__name__)


def open_pruner(settings: Settings, graph: CompiledStateGraph, metrics: Metrics) -> CheckpointPruner:
    """The retention policy on the checkpoint file (blocking: call off the event loop)."""
    store: CheckpointRetention
    if settings.database_url:
        from memory.pg_checkpoint_retention import PgCheckpointRetention

        store = PgCheckpointRetention(settings.database_url)
    else:
        store = SqliteCheckpointRetention(settings.checkpoints_path)
    keep = settings.checkpoints_kept
    if keep and uses_delta_channels(graph):
        log.warning("CHECKPOINTS_KEPT=%d ignored: the graph has DeltaChannel state, rebuilt from older "
                    "checkpoints", keep)
        keep = 0
    if keep and isinstance(store, SqliteCheckpointRetention) and store.auto_vacuum() != "incremental":
        log.info("checkpoints.db was made without auto_vacuum: pruned space is reused but not returned to the "
                 "OS; `orchestrator compact` (service stopped) shrinks and converts it")
    return CheckpointPruner(store, keep, metrics)


@dataclass
class Runtime:
    """The live service: one per process, created by the lifespan."""

    settings: Settings
    deps: Deps
    graph: CompiledStateGraph
    turns: TurnRunner
    http: httpx.AsyncClient
    started_at: float
    _checkpoints: Checkpoints
    metrics: Metrics
    _locks: list[DirectoryLock]
    pruner: CheckpointPruner
    probe: HealthProbe
    node: LocalInferenceNode | None = None
    supervisor: NodeSupervisor | None = None
    idempotency_locks: KeyedLocks = field(default_factory=KeyedLocks)
    shared_locks: SharedLocks | None = None
    """Across workers (DATABASE_URL): the advisory locks' pool, sessions' and idempotency keys' locks."""
    followups: ImportFollowUps | None = None
    """Imported sessions being summarised in the background (server/turns/after_import.py)."""

    @property
    def saver(self) -> BaseCheckpointSaver:
        """The checkpointer the graph was compiled with."""
        saver = self.graph.checkpointer
        if not isinstance(saver, BaseCheckpointSaver):
            raise RuntimeError("the graph was compiled without a checkpointer")
        return saver

    @property
    def backends(self) -> list[Backend]:
        """The inference backends and their circuits (none when a chat model was injected)."""
        model = self.deps.chat_model
        return list(model.backends) if isinstance(model, FailoverChatModel) else []

    @classmethod
    async def open(cls, settings: Settings, chat_model=None, metrics: Metrics | None = None) -> Runtime:
        """Open everything; the embedder is loaded (and the embedded node started) before the first turn."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        locks = directory_locks(settings)  # none for what lives in Postgres or a Chroma server
        settings, node = embedded_node(settings)
        starting = asyncio.create_task(asyncio.to_thread(node.start)) if node else None
        try:
            # The runner commits each turn's episode once its checkpoint is saved (server/turns/commit.py).
            deps = replace(await asyncio.to_thread(build_deps, settings, chat_model), commit_after_checkpoint=True)
            # A store embedded with another model is refused, naming both (memory/embedding_identity.py).
            await asyncio.to_thread(embedding_identity.check, deps.episodes.db, deps.embedder.model_path)
            await asyncio.to_thread(deps.embedder.load)
            if deps.router is not None:  # the classes' examples embedded now, not in the first turn
                await asyncio.to_thread(deps.router.classifier.preload)
            if starting:
                await starting
        except BaseException:
            if node:
                await asyncio.to_thread(node.stop)
            for lock in locks:
                lock.release()
            raise
        checkpoints = await open_checkpoints(settings)
        saver = checkpoints.saver
        graph = build_graph(deps).compile(checkpointer=saver)
        shared = await open_shared_locks(settings.database_url) if settings.database_url else None
        # Episodes of turns a crash cut: kept if their checkpoint holds them (not those another worker is running).
        await reconcile(graph, deps, shared.sessions if shared else None)
        metrics = metrics or Metrics()
        pruner = await asyncio.to_thread(open_pruner, settings, graph, metrics)
        saver.on_put = pruner.mark
        pruner.start()
        deps.indexer.schedule()  # episodes a crash left unindexed
        http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=settings.inference_connect_timeout_seconds))
        log.info("orchestrator ready: inference node %s, data in %s", settings.inference_base_url, settings.data_dir)
        turns = TurnRunner(graph, deps, metrics, reject_busy=settings.double_texting == "reject",
                           max_message_chars=settings.max_message_chars, inference_url=settings.inference_base_url,
                           locks=shared.sessions if shared else None, settled=checkpoints.settled())
        pruner.turns_running = lambda: turns.in_progress  # prune between turns
        supervisor = None
        if node is not None:
            supervisor = NodeSupervisor(node)
            supervisor.start()
            model = deps.chat_model
            for backend in model.backends if isinstance(model, FailoverChatModel) else []:
                if backend.url == node.base_url:
                    backend.down = supervisor.down  # a request while it restarts is told so
        probe = HealthProbe(deps, http, settings.inference_base_url or "", settings.inference_api_key, supervisor,
                            settings.health_probe_interval_seconds)
        await probe.start()
        runtime = cls(settings, deps, graph, turns, http, time.time(), checkpoints, metrics, locks, pruner, probe,
                      node, supervisor, shared.idempotency if shared else KeyedLocks(), shared)
        runtime.followups = await asyncio.to_thread(ImportFollowUps, turns)
        await runtime.followups.resume()  # imports a previous process had not finished summarising
        return runtime

    async def close(self) -> None:
        """Finish background work and close the stores."""
        await self.probe.aclose()
        if self.supervisor:
            await self.supervisor.aclose()
        if self.followups:
            await self.followups.aclose()
        await self.turns.drain()
        await self.deps.indexer.drain()
        await self.pruner.close()
        await asyncio.to_thread(self.deps.vectors.close)
        await self.http.aclose()
        if self.shared_locks:
            await self.shared_locks.close()
        await self._checkpoints.close()
        self.deps.episodes.db.close()
        if self.node:
            await asyncio.to_thread(self.node.stop)
        for lock in self._locks:
            lock.release()
