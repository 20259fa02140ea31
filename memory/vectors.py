"""Episode vectors in Chroma: one collection per scope, queried without a metadata filter."""

from __future__ import annotations

import ctypes
import hashlib
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import chromadb
from chromadb.config import Settings as ChromaSettings

DEFAULT_MAX_OPEN = 64
"""Scopes whose vector indexes stay loaded at most: VECTOR_MAX_OPEN_COLLECTIONS."""


def _return_freed_memory() -> None:
    """Hand the heap pages freed by closed indexes back to the system (glibc's `malloc_trim`).

    glibc keeps freed pages for reuse, and the indexes freed by each reopen leave it fragmented: 600 scopes
    with a bound of 64 grew a process to 664 MB without this, and kept it at 142-260 MB with it.
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim this way
        pass


def collection_name(kind: str, scope: str) -> str:
    """A valid Chroma collection name for a scope (unfiltered queries stay ~1 ms at any size)."""
    return f"{kind}_{hashlib.sha1(scope.encode('utf-8')).hexdigest()[:24]}"


@dataclass(frozen=True)
class VectorHit:
    """An episode id and its cosine similarity to the query."""

    id: str
    similarity: float


class VectorStore(Protocol):
    """What the memory uses of a vector index: the embedded one (`memory.vector_process.VectorIndex`, a child
    process over CHROMA_DIR) or a Chroma server's (`memory.remote_vectors.RemoteVectors`, CHROMA_URL). Blocking:
    call through `to_thread`. Failures raise `memory.vector_process.VectorStoreError`."""

    def add(self, scope: str, ids: list[str], embeddings: list[list[float]], documents: list[str]) -> None:
        """Insert or replace vectors (idempotent)."""

    def query(self, scope: str, embedding: list[float], k: int) -> list[VectorHit]:
        """The `k` nearest vectors of one scope, most similar first."""

    def delete(self, scope: str, ids: list[str]) -> None:
        """Remove vectors by id."""

    def drop(self, *scopes: str) -> None:
        """Delete these scopes' whole collections."""

    def heartbeat(self) -> int:
        """Raises if the vector store is unusable."""

    @property
    def pid(self) -> int | None:
        """The process holding the vectors, if it is ours."""

    def close(self) -> None:
        """Release what the index holds open."""


class ChromaVectors:
    """A Chroma `PersistentClient`, in this process. Embeddings are always computed by our own embedder and
    passed in, so Chroma never loads (or downloads) an embedding function of its own.

    The service does not use it directly: Chroma's bindings hold the GIL for a whole call (an upsert of a
    few vectors stalls every other thread, the event loop included, for 8-14 ms), so the service talks to
    one of these in a child process (`memory.vector_process.VectorIndex`).

    Every scope (a project, a key's default scope, a scope's entities) is a collection, and Chroma keeps the
    index of each collection it has touched loaded, its four files open, until the client closes: 200
    one-vector collections took a process from 14 to 818 open files and from 112 to 631 MB RSS. Chroma's
    own bound on that cache cannot serve: it is RLIMIT_NOFILE // 5 indexes, fixed when the client starts
    (4,000 here); `chroma_segment_cache_policy="LRU"` / `chroma_memory_limit_bytes` bound the older Python
    segment manager only (measured: the same 818 files); and an index its cache evicts cannot be read again
    by that client ("Error creating hnsw segment reader: Nothing found on disk" for 90 of 150 collections
    under a cache of 16) until the client is reopened. Reopening the client releases every index (149 open
    files back to 14) and is safe: the indexes load again from disk. So at most `max_open` scopes are
    loaded: when one more is needed, the client is reopened first, closing them all at once, and they load
    again as they are used (one by one, least recently used first, is what Chroma's eviction cannot do).
    `max_open` is kept under Chroma's own bound, so its cache never evicts by itself.
    """

    def __init__(self, path: Path | str, kind: str = "episodes", max_open: int = DEFAULT_MAX_OPEN) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self.path = str(path)
        self.max_open = max_open
        self.client = self._client()
        self._loaded: dict[str, chromadb.Collection] = {}
        """The scopes used since the client opened: their indexes are loaded."""
        self.configure(max_open)

    def _client(self):
        return chromadb.PersistentClient(
            path=self.path, settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        )

    def _reopen(self) -> None:
        """Close the client, which releases every loaded index and its files, and open a new one."""
        self.client.close()
        _return_freed_memory()
        self.client = self._client()
        self._loaded.clear()

    def configure(self, max_open: int) -> None:
        """Set the bound on loaded scopes (the service sends its setting once the child is up), kept under
        the bound of Chroma's own cache (RLIMIT_NOFILE // 5), past which Chroma would evict by itself."""
        chroma_bound = resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 5
        self.max_open = max(1, min(max_open, chroma_bound - 1))
        if len(self._loaded) > self.max_open:
            self._reopen()

    def _collection(self, scope: str):
        col = self._loaded.get(scope)
        if col is not None:
            return col
        if len(self._loaded) >= self.max_open:
            self._reopen()
        col = self.client.get_or_create_collection(
            collection_name(self.kind, scope),
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"scope": scope},
        )
        self._loaded[scope] = col
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

    def drop(self, scopes: list[str]) -> None:
        """Delete these scopes' collections (their project is gone) and give back what they held.

        Chroma's `delete_collection` leaves a deleted collection's index loaded and its files open (measured:
        40 deleted collections, 145 open files before and after), so the client is then reopened.
        """
        for scope in scopes:
            try:
                self.client.delete_collection(collection_name(self.kind, scope))
            except chromadb.errors.NotFoundError:
                pass
        self._reopen()

    def heartbeat(self) -> int:
        """Raises if Chroma is unusable."""
        return self.client.heartbeat()
