"""The vector index on a Chroma server (`CHROMA_URL`, `chroma run`), for the scale-out profile: any number of
workers share one server, through Chroma's own HTTP client (`chromadb.HttpClient`).

Same interface and layout as the embedded index (`memory.vector_process.VectorIndex`): one collection per
scope named by `memory.vectors.collection_name`, cosine space, the scope in the collection's metadata, our own
embeddings passed in (the server never embeds). No child process: the HTTP calls release the GIL while they
wait, which is what the embedded index needed a process for.

Every call is bounded: Chroma's client makes its `httpx` session with no timeout at all, so a server that
accepts connections and never answers (stopped, wedged) would hold a turn's recall, and the indexer, for
ever. The client's session gets `timeout` seconds per connect, read and write once it is made (a bounded
heartbeat goes first, since making the client already asks the server for its identity and tenant). A
failed call raises `VectorStoreError`, as the embedded index does, so recall degrades to lexical and the
indexer keeps its rows pending until the server is back.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

import chromadb
import httpx
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import NotFoundError

from memory.vector_process import DEFAULT_TIMEOUT_S, VectorStoreError
from memory.vectors import VectorHit, collection_name

KNOWN_COLLECTIONS = 4096
"""Collection handles kept per worker (a handle is a name and an id; the server holds the index)."""


def server_address(url: str) -> tuple[str, int, bool]:
    """(host, port, ssl) of CHROMA_URL (`http://host:port`; https on 443 and plain http on 8000 by default)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"CHROMA_URL must look like http://host:port, not {url!r}")
    ssl = parts.scheme == "https"
    return parts.hostname, parts.port or (443 if ssl else 8000), ssl


class RemoteVectors:
    """`VectorIndex`'s methods over a Chroma server. Blocking (network): call through `to_thread`.
    Thread-safe: Chroma's client and its `httpx` session may be used by several threads at once."""

    def __init__(self, url: str, kind: str = "episodes", timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url
        self.kind = kind
        self.timeout = timeout
        """Seconds each HTTP request may take (VECTOR_TIMEOUT_SECONDS)."""
        self._address = server_address(url)
        self._lock = threading.Lock()
        self._client: Any = None
        self._collections: OrderedDict[str, Any] = OrderedDict()

    def _connect(self) -> Any:
        """The client, made on first use (the service starts while the server is down, and says so in
        /health); a failed attempt is retried by the next call."""
        with self._lock:
            if self._client is not None:
                return self._client
            host, port, ssl = self._address
            # Making the client already asks the server for its identity and tenant, with no timeout (each
            # HttpClient gets a session of its own, made inside): a bounded heartbeat first, so a server that
            # does not answer fails here instead of hanging the constructor.
            scheme = "https" if ssl else "http"
            httpx.get(f"{scheme}://{host}:{port}/api/v2/heartbeat", timeout=self.timeout).raise_for_status()
            client = chromadb.HttpClient(host=host, port=port, ssl=ssl,
                                         settings=ChromaSettings(anonymized_telemetry=False))
            # chromadb has no timeout setting: its session is bounded here, before any other request.
            client._server._session.timeout = httpx.Timeout(self.timeout)  # type: ignore[attr-defined]
            self._client = client
            return client

    def _collection(self, scope: str) -> Any:
        with self._lock:
            col = self._collections.get(scope)
            if col is not None:
                self._collections.move_to_end(scope)
                return col
        col = self._connect().get_or_create_collection(
            collection_name(self.kind, scope),
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"scope": scope},
        )
        with self._lock:
            self._collections[scope] = col
            while len(self._collections) > KNOWN_COLLECTIONS:
                self._collections.popitem(last=False)
        return col

    def _forget(self, scope: str) -> None:
        with self._lock:
            self._collections.pop(scope, None)

    def _on_collection(self, op: str, scope: str, fn: Any) -> Any:
        """`fn(collection)` for the scope's collection; once more with a fresh handle if another worker
        deleted the collection meanwhile (a deleted project: ours is then made again, empty)."""
        try:
            try:
                return fn(self._collection(scope))
            except NotFoundError:
                self._forget(scope)
                return fn(self._collection(scope))
        except Exception as exc:
            raise self._error(op, exc) from exc

    def _error(self, op: str, exc: BaseException) -> VectorStoreError:
        if isinstance(exc, httpx.TimeoutException):
            return VectorStoreError(f"the Chroma server at {self.url} (CHROMA_URL) did not answer '{op}' within "
                                    f"{self.timeout:g} s (VECTOR_TIMEOUT_SECONDS)")
        if isinstance(exc, httpx.TransportError):
            return VectorStoreError(f"could not reach the Chroma server at {self.url} (CHROMA_URL) for '{op}': "
                                    f"{type(exc).__name__}: {exc}")
        return VectorStoreError(f"the Chroma server at {self.url} failed '{op}': {type(exc).__name__}: {exc}")

    def add(self, scope: str, ids: list[str], embeddings: list[list[float]], documents: list[str]) -> None:
        """Insert or replace vectors (idempotent, so re-indexing after an outage is safe)."""
        if ids:
            self._on_collection("add", scope, lambda c: c.upsert(ids=ids, embeddings=embeddings,
                                                                 documents=documents))

    def query(self, scope: str, embedding: list[float], k: int) -> list[VectorHit]:
        """The `k` nearest vectors of one scope, most similar first."""
        if k <= 0:
            return []
        result = self._on_collection("query", scope, lambda c: c.query(query_embeddings=[embedding], n_results=k,
                                                                       include=["distances"]))
        return [VectorHit(id=i, similarity=1.0 - float(d))
                for i, d in zip(result["ids"][0], result["distances"][0], strict=True)]

    def delete(self, scope: str, ids: list[str]) -> None:
        """Remove vectors by id."""
        if ids:
            self._on_collection("delete", scope, lambda c: c.delete(ids=ids))

    def drop(self, *scopes: str) -> None:
        """Delete these scopes' whole collections (a deleted project)."""
        for scope in scopes:
            self._forget(scope)
            try:
                self._connect().delete_collection(collection_name(self.kind, scope))
            except NotFoundError:
                pass  # never made, or another worker dropped it first
            except Exception as exc:
                raise self._error("drop", exc) from exc

    def heartbeat(self) -> int:
        """The server's clock (ns); raises VectorStoreError if it cannot be reached in time."""
        try:
            return self._connect().heartbeat()
        except Exception as exc:
            raise self._error("heartbeat", exc) from exc

    @property
    def pid(self) -> int | None:
        """No process of ours holds the vectors (the embedded index's child has one)."""
        return None

    def close(self) -> None:
        """Release the client (the server keeps every vector)."""
        with self._lock:
            client, self._client = self._client, None
            self._collections.clear()
        if client is not None:
            client.close()
