"""Episode vectors in Chroma: one collection per scope, queried without a metadata filter."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import chromadb
from chromadb.config import Settings as ChromaSettings


def collection_name(kind: str, scope: str) -> str:
    """A valid Chroma collection name for a scope (unfiltered queries stay ~1 ms at any size)."""
    return f"{kind}_{hashlib.sha1(scope.encode('utf-8')).hexdigest()[:24]}"


@dataclass(frozen=True)
class VectorHit:
    """An episode id and its cosine similarity to the query."""

    id: str
    similarity: float


class ChromaVectors:
    """A Chroma `PersistentClient`, in this process. Embeddings are always computed by our own embedder and
    passed in, so Chroma never loads (or downloads) an embedding function of its own.

    The service does not use it directly: Chroma's bindings hold the GIL for a whole call (an upsert of a
    few vectors stalls every other thread, the event loop included, for 8-14 ms), so the service talks to
    one of these in a child process (`memory.vector_process.VectorIndex`)."""

    def __init__(self, path: Path | str, kind: str = "episodes") -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self.client = chromadb.PersistentClient(
            path=str(path), settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        )
        self._collections: dict[str, chromadb.Collection] = {}

    def _collection(self, scope: str):
        col = self._collections.get(scope)
        if col is None:
            col = self.client.get_or_create_collection(
                collection_name(self.kind, scope),
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"scope": scope},
            )
            self._collections[scope] = col
        return col

    def add(self, scope: str, ids: list[str], embeddings: list[list[float]], documents: list[str]) -> None:
        """Insert or replace vectors (idempotent, so re-indexing after a crash is safe)."""
        if ids:
            self._collection(scope).upsert(ids=ids, embeddings=embeddings, documents=documents)

    def query(self, scope: str, embedding: list[float], k: int) -> list[VectorHit]:
        """The `k` nearest vectors of one scope, most similar first."""
        if k <= 0:
            return []
        result = self._collection(scope).query(query_embeddings=[embedding], n_results=k, include=["distances"])
        return [
            VectorHit(id=i, similarity=1.0 - float(d))
            for i, d in zip(result["ids"][0], result["distances"][0], strict=True)
        ]

    def delete(self, scope: str, ids: list[str]) -> None:
        """Remove vectors by id."""
        if ids:
            self._collection(scope).delete(ids=ids)

    def heartbeat(self) -> int:
        """Raises if Chroma is unusable."""
        return self.client.heartbeat()
