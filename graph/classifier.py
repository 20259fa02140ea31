"""The query classifier: regex patterns for the obvious, then the MiniLM query vector against labelled examples.

Classes, their examples, patterns and route options live in an editable JSON file (`CLASSES_FILE`, by default
`prompts/classes.json`); it is read again when its modification time changes, so an edit takes effect on the
next turn without a restart. The examples are embedded once per load (a batch, off the reply's path after the
first turn); a turn costs one matrix-vector product over them, on the vector the turn already computed for recall.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "prompts" / "classes.json"
KNN = 3
"""Each class scores the mean of its `KNN` nearest examples: one odd example cannot win a query alone."""


class BatchEmbedder(Protocol):
    """What the classifier needs of memory/embedder.py's Embedder."""

    def embed(self, texts: list[str]) -> list[list[float]]: ...


@dataclass(frozen=True)
class ClassSpec:
    """One class as the file defines it."""

    name: str
    examples: list[str]
    patterns: list[re.Pattern[str]]
    options: dict[str, Any]
    """Route options: recall_top_k, max_tokens, cacheable, ttl_seconds, depends_on_memory."""


@dataclass(frozen=True)
class Classification:
    """A query's class, how sure the classifier is (best score minus the runner-up's) and how it was found."""

    label: str
    confidence: float
    method: str
    """`pattern`, `knn`, or `default` (no query text, or no examples loaded)."""
    scores: dict[str, float] = field(default_factory=dict)
    confident: bool = True
    """False when the nearest examples are far (below the file's `min_score`) or the runner-up is close (margin
    below `min_margin`): the turn keeps its label but takes the default route (graph/routing.py)."""


@dataclass
class Loaded:
    """The file as last read: its classes, the examples' vectors (rows) and each row's class index."""

    classes: list[ClassSpec]
    default: str
    min_score: float
    min_margin: float
    matrix: np.ndarray
    owners: np.ndarray
    mtime: float
    loaded_at: float


def read_classes(path: Path) -> tuple[list[ClassSpec], str, float, float]:
    """Parse the classes file; ValueError saying what is wrong with it."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("classes"), dict) or not data["classes"]:
        raise ValueError(f"{path}: expected {{\"classes\": {{name: {{examples, patterns, ...}}}}}}")
    specs = []
    for name, body in data["classes"].items():
        if not isinstance(body, dict):
            raise ValueError(f"{path}: class {name!r} must be an object")
        examples = [str(e) for e in body.get("examples") or []]
        try:
            patterns = [re.compile(p, re.IGNORECASE) for p in body.get("patterns") or []]
        except re.error as exc:
            raise ValueError(f"{path}: class {name!r} has a bad pattern: {exc}") from exc
        options = {k: v for k, v in body.items() if k not in ("examples", "patterns")}
        specs.append(ClassSpec(name, examples, patterns, options))
    default = str(data.get("default_class") or specs[0].name)
    if default not in {s.name for s in specs}:
        raise ValueError(f"{path}: default_class {default!r} is not one of the classes")
    return specs, default, float(data.get("min_score", 0.0)), float(data.get("min_margin", 0.0))


class QueryClassifier:
    """Thread-safe; `classify` is blocking only on the first call after a (re)load, which embeds the examples."""

    def __init__(self, embedder: BatchEmbedder, path: Path | None = None, check_every: float = 1.0) -> None:
        self.embedder = embedder
        self.path = path or DEFAULT_FILE
        self.check_every = check_every
        """Seconds between looks at the file's modification time (a stat per turn is cheap, but not free)."""
        self._loaded: Loaded | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self.error: str | None = None
        """Why the last (re)load failed; the classes loaded before it stay in use."""
        self.reloads = 0

    def _mtime(self) -> float:
        return os.stat(self.path).st_mtime

    def load(self) -> Loaded:
        """Read and embed the file now (blocking)."""
        with self._lock:
            mtime = self._mtime()
            specs, default, min_score, min_margin = read_classes(self.path)
            texts = [e for s in specs for e in s.examples]
            owners = np.array([i for i, s in enumerate(specs) for _ in s.examples], dtype=np.int32)
            vectors = self.embedder.embed(texts) if texts else []
            matrix = np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)
            loaded = Loaded(specs, default, min_score, min_margin, matrix, owners, mtime, time.time())
            if self._loaded is not None:
                self.reloads += 1
            self._loaded, self.error, self._checked = loaded, None, time.monotonic()
            return loaded

    def preload(self) -> None:
        """Load the file at start-up; a broken file is logged and shown in /health (turns then go unrouted until
        it is fixed: `current` tries again on each turn)."""
        try:
            self.load()
        except (OSError, ValueError) as exc:
            self.error = f"{self.path}: {exc}"
            log.error("classes file not loaded, turns go unrouted until it is fixed: %s", self.error)

    def current(self) -> Loaded:
        """The loaded classes, read again first if the file changed since (a failed reload keeps the old ones)."""
        loaded = self._loaded
        if loaded is None:
            return self.load()
        now = time.monotonic()
        if now - self._checked >= self.check_every:
            self._checked = now
            try:
                if self._mtime() != loaded.mtime:
                    return self.load()
            except (OSError, ValueError) as exc:
                self.error = f"{self.path}: {exc}"
                log.error("classes file not reloaded, the previous classes stay: %s", self.error)
        return loaded

    def spec(self, label: str) -> ClassSpec | None:
        """The class named `label` in the current file."""
        return next((s for s in self.current().classes if s.name == label), None)

    def classify(self, text: str, vector: list[float] | np.ndarray | None) -> Classification:
        """Patterns first (the first class whose pattern matches wins), then the k nearest examples."""
        loaded = self.current()
        stripped = text.strip()
        if not stripped:
            return Classification(loaded.default, 0.0, "default", confident=False)
        for spec in loaded.classes:
            if any(p.search(stripped) for p in spec.patterns):
                return Classification(spec.name, 1.0, "pattern")
        if vector is None or not len(loaded.matrix):
            return Classification(loaded.default, 0.0, "default", confident=False)
        sims = loaded.matrix @ np.asarray(vector, dtype=np.float32)
        scores: dict[str, float] = {}
        for i, spec in enumerate(loaded.classes):
            own = sims[loaded.owners == i]
            if len(own):
                k = min(KNN, len(own))
                scores[spec.name] = float(np.mean(np.partition(own, len(own) - k)[-k:]))
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
        margin = ranked[0][1] - ranked[1][1] if len(ranked) > 1 else ranked[0][1]
        confident = ranked[0][1] >= loaded.min_score and margin >= loaded.min_margin
        return Classification(ranked[0][0], round(margin, 4), "knn", scores, confident)

    def public(self) -> dict[str, Any]:
        """What /health shows: the file, its classes and examples, when it was loaded, the last reload error."""
        loaded = self._loaded
        return {
            "file": str(self.path),
            "loaded": loaded is not None,
            "classes": {s.name: len(s.examples) for s in loaded.classes} if loaded else {},
            "loaded_at": loaded.loaded_at if loaded else None,
            "reloads": self.reloads,
            "error": self.error,
        }
