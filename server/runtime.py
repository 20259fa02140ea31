"""What the lifespan opens and closes: stores, embedder, chat model, checkpointer and the compiled graph."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import aiosqlite
import httpx
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph.state import CompiledStateGraph

from graph.builder import build_graph
from graph.deps import Deps, MemoryLimits
from memory.admin import MemoryAdmin
from memory.db import Database
from memory.embedder import Embedder
from memory.entities import EntityStore
from memory.episodes import EpisodeStore
from memory.hybrid import FusionWeights
from memory.idempotency import IdempotencyStore
from memory.indexer import Indexer
from memory.sessions import SessionStore
from memory.vector_process import VectorIndex
from server.backends import Backend, CircuitBreaker, FailoverChatModel
from server.datadir_lock import DirectoryLock
from server.local_node import ALIAS, LocalInferenceNode
from server.metrics import Metrics
from server.plain_completions import PlainCompletions
from server.session_keys import KeyedLocks
from server.settings import Settings
from server.turns import TurnRunner

log = logging.getLogger(__name__)


def make_backends(settings: Settings) -> list[Backend]:
    """The primary node and the fallbacks, in order, each with its own circuit."""
    return [Backend(url, make_chat_model(settings, url),
                    CircuitBreaker(settings.circuit_failure_threshold, settings.circuit_cooldown_seconds))
            for url in [settings.inference_base_url, *settings.fallback_urls]]


def make_chat_model(settings: Settings, base_url: str | None = None) -> ChatOpenAI:
    """One inference node as a LangChain chat model (OpenAI protocol)."""
    model = ChatOpenAI(
        base_url=base_url or settings.inference_base_url,
        api_key=settings.inference_api_key,
        model=settings.inference_model,
        temperature=settings.temperature,
        timeout=httpx.Timeout(settings.inference_timeout_seconds, connect=settings.inference_connect_timeout_seconds),
        max_retries=settings.inference_max_retries,
        stream_usage=True,
    )
    model.async_client = PlainCompletions(model.root_async_client)  # the same SDK call, minus ~2 ms a turn
    return model


def embedded_node(settings: Settings) -> tuple[Settings, LocalInferenceNode | None]:
    """With INFERENCE_BASE_URL unset: the embedded node (not started yet) and the settings pointing at it."""
    if settings.inference_base_url is not None:
        return settings, None
    node = LocalInferenceNode(settings.local_model_path, settings.local_context_tokens, settings.local_threads,
                              log_path=settings.data_dir / "inference-node.log")
    return settings.model_copy(update={
        "inference_base_url": node.base_url,
        "inference_model": ALIAS,
        "context_tokens": min(settings.context_tokens, settings.local_context_tokens),
        "max_tokens": min(settings.max_tokens, settings.local_max_tokens),
        "inference_response_format": "schema-embedded" if settings.inference_response_format in ("auto", "schema")
        else settings.inference_response_format,
    }), node


def contract_mode(settings: Settings) -> str:
    """`schema` (OpenAI json_schema), `schema-embedded` (llama-cpp-python's form), `prompt-only` or `off`."""
    mode = settings.inference_response_format
    return "prompt-only" if mode == "auto" else mode


def build_deps(settings: Settings, chat_model=None) -> Deps:
    """Open the memory stores and wire the graph's dependencies (blocking: call off the event loop).
    Without `chat_model`, the nodes talk to the configured backends through their circuits."""
    if chat_model is None:
        chat_model = FailoverChatModel(backends=make_backends(settings),
                                       first_token_timeout=settings.inference_first_token_timeout_seconds)
    db = Database(settings.memory_path)
    embedder = Embedder(threads=settings.embedding_threads, runtime=settings.embedding_runtime,
                        cache_dir=settings.model_cache_dir)
    episodes = EpisodeStore(db)
    sessions = SessionStore(db)
    entities = EntityStore(db)
    vectors = VectorIndex(settings.chroma_dir, timeout=settings.vector_timeout_seconds,
                          max_open=settings.vector_max_open_collections)
    return Deps(
        chat_model=chat_model,
        episodes=episodes,
        sessions=sessions,
        vectors=vectors,
        embedder=embedder,
        indexer=Indexer(episodes, vectors, embedder, by=settings.episode_embedding),
        entities=entities,
        admin=MemoryAdmin(sessions, episodes, entities, vectors, embedder),
        idempotency=IdempotencyStore(db),
        contract=contract_mode(settings),
        limits=MemoryLimits(
            recent_messages=settings.recent_messages,
            summary_trigger_messages=settings.summary_trigger_messages,
            recall_top_k=settings.recall_top_k,
            recall_candidates=settings.recall_candidates,
            context_tokens=settings.context_tokens,
            max_tokens=settings.max_tokens,
            entity_top_k=settings.entity_top_k,
            entity_threshold=settings.entity_threshold,
        ),
        weights=FusionWeights(
            lexical=settings.recall_lexical_weight,
            vector=settings.recall_vector_weight,
            vector_threshold=settings.recall_vector_threshold,
        ),
    )


@dataclass
class Runtime:
    """The live service: one per process, created by the lifespan."""

    settings: Settings
    deps: Deps
    graph: CompiledStateGraph
    turns: TurnRunner
    http: httpx.AsyncClient
    started_at: float
    _conn: aiosqlite.Connection
    metrics: Metrics
    _locks: list[DirectoryLock]
    node: LocalInferenceNode | None = None
    idempotency_locks: KeyedLocks = field(default_factory=KeyedLocks)

    @property
    def backends(self) -> list[Backend]:
        """The inference backends and their circuits (none when a chat model was injected)."""
        model = self.deps.chat_model
        return list(model.backends) if isinstance(model, FailoverChatModel) else []

    @classmethod
    async def open(cls, settings: Settings, chat_model=None, metrics: Metrics | None = None) -> Runtime:
        """Open everything; the embedder is loaded (and the embedded node started) before the first turn."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        locks = [DirectoryLock(settings.data_dir, "DATA_DIR"), DirectoryLock(settings.chroma_dir, "CHROMA_DIR")]
        for held, lock in enumerate(locks):
            try:
                lock.acquire()
            except RuntimeError:
                for other in locks[:held]:
                    other.release()
                raise
        settings, node = embedded_node(settings)
        starting = asyncio.create_task(asyncio.to_thread(node.start)) if node else None
        try:
            deps = await asyncio.to_thread(build_deps, settings, chat_model)
            await asyncio.to_thread(deps.embedder.load)
            if starting:
                await starting
        except BaseException:
            if node:
                await asyncio.to_thread(node.stop)
            for lock in locks:
                lock.release()
            raise
        conn = await aiosqlite.connect(settings.checkpoints_path)
        await conn.execute("PRAGMA busy_timeout=5000")
        # As memory.db: WAL with synchronous=NORMAL survives a killed process (kill -9 tests it); only an OS
        # crash or power loss can drop the last commits. FULL would fsync each of a turn's ~13 commits.
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        graph = build_graph(deps).compile(checkpointer=saver)
        deps.indexer.schedule()  # episodes a crash left unindexed
        http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=settings.inference_connect_timeout_seconds))
        log.info("orchestrator ready: inference node %s, data in %s", settings.inference_base_url, settings.data_dir)
        metrics = metrics or Metrics()
        turns = TurnRunner(graph, deps, metrics, reject_busy=settings.double_texting == "reject",
                           max_message_chars=settings.max_message_chars)
        return cls(settings, deps, graph, turns, http, time.time(), conn, metrics, locks, node)

    async def close(self) -> None:
        """Finish background work and close the stores."""
        await self.turns.drain()
        await self.deps.indexer.drain()
        await asyncio.to_thread(self.deps.vectors.close)
        await self.http.aclose()
        await self._conn.close()
        self.deps.episodes.db.close()
        if self.node:
            await asyncio.to_thread(self.node.stop)
        for lock in self._locks:
            lock.release()
