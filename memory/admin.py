"""Operations that span stores: deleting or moving a session's memory, writing and finding entities.

SQLite is the source of truth and is changed last when deleting (first when writing), so a failure
half-way leaves at worst a vector without a row, which recall ignores.
"""

from __future__ import annotations

from dataclasses import dataclass

from memory.embedder import Embedder
from memory.entities import Entity, EntityStore, vector_key
from memory.episodes import EpisodeStore
from memory.fusion import with_reply_ids
from memory.semantic_cache import SemanticCache
from memory.sessions import SessionStore, scope_of
from memory.vectors import VectorStore


@dataclass(frozen=True)
class EntityHit:
    """A recalled entity and why: its similarity, or 1.0 when the query names it."""

    entity: Entity
    score: float


class MemoryAdmin:
    """Blocking: call the methods through `asyncio.to_thread`."""

    def __init__(self, sessions: SessionStore, episodes: EpisodeStore, entities: EntityStore,
                 vectors: VectorStore, embedder: Embedder, cache: SemanticCache | None = None) -> None:
        self.sessions = sessions
        self.episodes = episodes
        self.entities = entities
        self.vectors = vectors
        self.embedder = embedder
        self.cache = cache

    # Sessions -------------------------------------------------------------------------------------
    def forget_session(self, session_id: str) -> None:
        """Remove a session's episodes, vectors, entities, semantic cache entries and row (its checkpoints are
        the caller's)."""
        if self.cache is not None:
            self.cache.delete_session(session_id)
        for scope, ids in self.episodes.ids_by_scope(session_id).items():
            self.vectors.delete(scope, with_reply_ids(ids))  # per-turn vectors too (memory/fusion.py)
        for entity in self.entities.of_session(session_id):
            self.delete_entity(entity)
        self.episodes.delete_session(session_id)
        self.sessions.delete_session_row(session_id)

    def move_session(self, session_id: str, project_id: str | None) -> None:
        """Move a session and its memory into another project (or out of any: its owner's default scope)."""
        row = self.sessions.get(session_id) or {}
        scope = scope_of(project_id, row.get("owner"))
        if self.cache is not None:  # its cached answers belong to the project it leaves
            self.cache.delete_session(session_id)
        for old_scope, ids in self.episodes.ids_by_scope(session_id).items():
            if old_scope != scope:
                self.vectors.delete(old_scope, with_reply_ids(ids))
        self.episodes.move_session(session_id, scope)  # re-embedded in the new scope by the indexer
        moved = [e for e in self.entities.of_session(session_id) if e.scope != scope]
        for entity in moved:
            self.vectors.delete(vector_key(entity.scope), [entity.id])
        self.entities.move_session(session_id, scope)
        for entity in self.entities.get_many([e.id for e in moved]).values():
            self._index_entity(entity)
        self.sessions.update(session_id, project_id=project_id)

    def forget_scope(self, scope: str) -> None:
        """Close and delete a scope's vector collections (episodes and entities), once its project is gone:
        deleting ids alone left each one loaded, its files open, for the life of the vector process."""
        if self.cache is not None:
            self.cache.delete_scope(scope)
        self.vectors.drop(scope, vector_key(scope))

    # Entities -------------------------------------------------------------------------------------
    def _index_entity(self, entity: Entity) -> None:
        vector = self.embedder.embed_background([entity.document])[0]
        self.vectors.add(vector_key(entity.scope), [entity.id], [vector], [entity.document])

    def upsert_entity(self, scope: str, name: str, type_: str, notes: str, session_id: str | None = None) -> Entity:
        """Create or update an entity by name, and (re-)embed it."""
        entity = self.entities.upsert(scope, name, type_, notes, session_id)
        self._index_entity(entity)
        return entity

    def update_entity(self, entity: Entity, name: str | None, type_: str | None, notes: str | None) -> Entity:
        """Edit an entity and re-embed it."""
        updated = self.entities.update(entity.id, name, type_, notes)
        assert updated is not None
        self._index_entity(updated)
        return updated

    def delete_entity(self, entity: Entity) -> None:
        """Remove an entity and its vector."""
        self.vectors.delete(vector_key(entity.scope), [entity.id])
        self.entities.delete(entity.id)


def find_entities(entities: EntityStore, vectors: VectorStore, scope: str, query: str,
                  embedding: list[float] | None, k: int, threshold: float) -> list[EntityHit]:
    """Entities the query names, then the nearest ones above `threshold`; `k` at most."""
    if k <= 0 or not entities.any_in(scope):  # most scopes have none: skip the vector round trip
        return []
    hits: dict[str, EntityHit] = {e.id: EntityHit(e, 1.0) for e in entities.mentioned_in(scope, query, k)}
    if embedding is not None and len(hits) < k:
        near = [h for h in vectors.query(vector_key(scope), embedding, k) if h.similarity >= threshold]
        found = entities.get_many([h.id for h in near if h.id not in hits])
        for h in near:
            if h.id in found and len(hits) < k:
                hits[h.id] = EntityHit(found[h.id], h.similarity)
    return list(hits.values())[:k]
