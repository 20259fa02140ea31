"""Everything the nodes use, built once by the caller (server lifespan, studio factory or test)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from langchain_core.language_models import BaseChatModel

from graph.routing import Router
from memory.admin import MemoryAdmin
from memory.embedder import Embedder
from memory.entities import EntityStore
from memory.episodes import EpisodeStore
from memory.hybrid import FusionWeights
from memory.idempotency import IdempotencyStore
from memory.indexer import Indexer
from memory.semantic_cache import SemanticCache
from memory.sessions import SessionStore
from memory.vectors import VectorStore

ContractMode = Literal["schema", "schema-embedded", "prompt-only", "off"]
"""How the JSON contract is enforced (INFERENCE_RESPONSE_FORMAT once `auto` is resolved)."""


@dataclass(frozen=True)
class MemoryLimits:
    """Sizes and budgets of memory in the prompt."""

    recent_messages: int = 12
    summary_trigger_messages: int = 24
    recall_top_k: int = 5
    recall_candidates: int = 20
    context_tokens: int = 8192
    max_tokens: int = 1024
    entity_top_k: int = 5
    entity_threshold: float = 0.35


@dataclass(frozen=True)
class Deps:
    """The graph's dependencies; nodes receive them through closures."""

    chat_model: BaseChatModel
    episodes: EpisodeStore
    sessions: SessionStore
    vectors: VectorStore
    embedder: Embedder
    indexer: Indexer
    entities: EntityStore
    admin: MemoryAdmin
    idempotency: IdempotencyStore
    contract: ContractMode = "prompt-only"
    """How the JSON contract is enforced: `schema` / `schema-embedded` (constrained decoding), `prompt-only`,
    or `off` (plain chat)."""
    limits: MemoryLimits = MemoryLimits()
    weights: FusionWeights = FusionWeights()
    commit_after_checkpoint: bool = False
    """True when the caller commits each turn's episode once the turn's checkpoint is saved (the server's
    TurnRunner: a turn cut before that leaves no episode); False (`langgraph dev`, graphs driven directly):
    persist commits it at once."""
    router: Router | None = None
    """Classifies each turn and routes it (nodes/classify.py); None: every turn takes the default route."""
    semantic_cache: SemanticCache | None = None
    """Answers to earlier questions (graph/semantic.py); used only when the router enables it."""
