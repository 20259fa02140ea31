"""build_deps(settings): the memory stores, the embedder and the chat model, wired into the graph's Deps.
Used by the server's lifespan, the `langgraph dev` factory (graph/studio.py) and the tests."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from langchain_core.language_models import BaseChatModel
from psycopg_pool import PoolTimeout

from config.settings import Settings
from graph.classifier import QueryClassifier
from graph.deps import Deps, MemoryLimits
from graph.routing import Router, is_url, parse_routes
from inference.backends import Backend, CircuitBreaker, FailoverChatModel
from inference.chat_models import contract_mode, make_backends, make_chat_model
from memory.admin import MemoryAdmin
from memory.db import Database, SqliteDatabase
from memory.embedder import Embedder
from memory.entities import EntityStore
from memory.episodes import EpisodeStore
from memory.hybrid import FusionWeights
from memory.idempotency import IdempotencyStore
from memory.indexer import Indexer
from memory.pg import PgDatabase
from memory.remote_vectors import RemoteVectors
from memory.semantic_cache import SemanticCache
from memory.sessions import SessionStore
from memory.vector_process import VectorIndex
from memory.vectors import VectorStore


def open_database(settings: Settings, timeout: float = 10.0) -> Database:
    """The memory database: Postgres when DATABASE_URL is set (the scale-out profile, shared by every worker),
    else the SQLite file DATA_DIR/memory.db. The one place that chooses. A Postgres that accepts no connection
    within `timeout` seconds stops the start with an error naming the server and the setting."""
    if not settings.database_url:
        return SqliteDatabase(settings.memory_path)
    try:
        return PgDatabase(settings.database_url, max_size=settings.database_pool_size, timeout=timeout)
    except PoolTimeout as exc:
        raise RuntimeError(f"The Postgres database at {redacted(settings.database_url)} (DATABASE_URL) accepted "
                           f"no connection within {timeout:g} s: start it, or correct DATABASE_URL.") from exc


def redacted(url: str) -> str:
    """A database URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def build_deps(settings: Settings, chat_model: BaseChatModel | None = None) -> Deps:
    """Open the memory stores and wire the graph's dependencies (blocking: call off the event loop).
    Without `chat_model`, the nodes talk to the configured backends through their circuits."""
    if chat_model is None:
        chat_model = FailoverChatModel(backends=make_backends(settings),
                                       first_token_timeout=settings.inference_first_token_timeout_seconds,
                                       total_timeout=settings.inference_timeout_seconds)
    db = open_database(settings)
    embedder = Embedder(model_path=settings.embedding_model_path, threads=settings.embedding_threads,
                        runtime=settings.embedding_runtime, cache_dir=settings.model_cache_dir)
    episodes = EpisodeStore(db)
    sessions = SessionStore(db)
    entities = EntityStore(db)
    vectors = open_vectors(settings)
    cache = SemanticCache(db)
    return Deps(
        chat_model=chat_model,
        episodes=episodes,
        sessions=sessions,
        vectors=vectors,
        embedder=embedder,
        indexer=Indexer(episodes, vectors, embedder, by=settings.episode_embedding,
                        refine_idle=settings.refine_idle_seconds),
        entities=entities,
        admin=MemoryAdmin(sessions, episodes, entities, vectors, embedder, cache),
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
            mode=settings.recall_fusion,
            session_spread=settings.recall_session_spread,
        ),
        router=build_router(settings, embedder, chat_model) if settings.routing else None,
        semantic_cache=cache,
    )


def open_vectors(settings: Settings) -> VectorStore:
    """The vector index: a Chroma server's when CHROMA_URL is set (shared by every worker), else the embedded
    one over CHROMA_DIR (a child process of this one)."""
    if settings.chroma_url:
        return RemoteVectors(settings.chroma_url, timeout=settings.vector_timeout_seconds)
    return VectorIndex(settings.chroma_dir, timeout=settings.vector_timeout_seconds,
                       max_open=settings.vector_max_open_collections)


def build_router(settings: Settings, embedder: Embedder, chat_model: BaseChatModel) -> Router:
    """The classifier on the classes file and, for each class ROUTES sends to a backend URL, a chat model that
    tries that backend first and then the default ones (their circuits shared with the default route)."""
    routes = parse_routes(settings.routes)
    fallbacks = list(chat_model.backends) if isinstance(chat_model, FailoverChatModel) else []
    models: dict[str, BaseChatModel] = {}
    for label, target in routes.items():
        if is_url(target):
            own = Backend(target, make_chat_model(settings, target),
                          CircuitBreaker(settings.circuit_failure_threshold, settings.circuit_cooldown_seconds))
            models[label] = FailoverChatModel(backends=[own, *fallbacks],
                                              first_token_timeout=settings.inference_first_token_timeout_seconds,
                                              total_timeout=settings.inference_timeout_seconds)
    return Router(QueryClassifier(embedder, settings.classes_file), routes, models,
                  cache_enabled=settings.semantic_cache, cache_threshold=settings.semantic_cache_threshold,
                  cache_ttl_seconds=settings.semantic_cache_ttl_seconds)
