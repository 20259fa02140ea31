"""Which embedding model a store's vectors were made with, kept in the store, checked at start-up.

Vectors of two models are not comparable: a store embedded with one model and queried with another recalls
noise without any error. So the store records its model (a name and `onnx_embedding.model_key`, a digest of
the model's files that does not depend on where they are installed) the first time it is opened, and a later
start with another model (EMBEDDING_MODEL_PATH) is refused with a message naming both and the way out:
`orchestrator reembed` (server/reembed.py), which embeds everything again with the configured model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from memory.db import Database
from memory.embedder import packaged_model_path
from memory.onnx_embedding import model_key

SCHEMA = "CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
KEY = "embedding_model"


@dataclass(frozen=True)
class ModelIdentity:
    """A model's name (for people) and its files' digest (what decides whether vectors are comparable)."""

    name: str
    key: str

    def __str__(self) -> str:
        return f"{self.name} [{self.key}]"


class EmbeddingModelMismatch(RuntimeError):
    """The store's vectors were made with another model than the configured one."""

    def __init__(self, stored: ModelIdentity, configured: ModelIdentity) -> None:
        super().__init__(
            f"The memory store was embedded with {stored}, but EMBEDDING_MODEL_PATH now gives {configured}: "
            "vectors of two models cannot be compared. Either start with the store's model again, or embed "
            "the store anew with the configured one: stop the service and run `orchestrator reembed`.")
        self.stored = stored
        self.configured = configured


def identity_of(model_path: Path) -> ModelIdentity:
    """The identity of the model files under `model_path`."""
    try:
        packaged = packaged_model_path().resolve() == model_path.resolve()
    except RuntimeError:  # the package is not installed: the model is named by its path
        packaged = False
    return ModelIdentity("all-MiniLM-L6-v2" if packaged else str(model_path), model_key(model_path))


def stored_identity(db: Database) -> ModelIdentity | None:
    """The model the store's vectors were made with; None for a store that has not recorded one."""
    db.executescript(SCHEMA)
    rows = db.query("SELECT value FROM store_meta WHERE key = ?", (KEY,))
    if not rows:
        return None
    value = json.loads(rows[0]["value"])
    return ModelIdentity(value["name"], value["key"])


def record(db: Database, identity: ModelIdentity) -> None:
    """Record `identity` as the store's model (after a re-embed, or on first use)."""
    db.executescript(SCHEMA)
    with db.transaction() as conn:
        conn.execute("DELETE FROM store_meta WHERE key = ?", (KEY,))
        conn.execute("INSERT INTO store_meta (key, value) VALUES (?, ?)",
                     (KEY, json.dumps({"name": identity.name, "key": identity.key})))


def check(db: Database, model_path: Path) -> ModelIdentity:
    """Refuse (EmbeddingModelMismatch) a store made with another model than the one at `model_path`; a store
    that recorded none (new, or made before this check: MiniLM was then the only model) takes this one."""
    configured = identity_of(model_path)
    stored = stored_identity(db)
    if stored is None:
        record(db, configured)
    elif stored.key != configured.key:
        raise EmbeddingModelMismatch(stored, configured)
    return configured
