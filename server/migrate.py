"""`orchestrator migrate --from-sqlite DATA_DIR`: move an embedded store into the Postgres + Chroma-server profile.

What moves: the memory tables (sessions, projects, entities, episodes and what hangs off them; the dialogue
jobs), every checkpoint with its pending writes, and every vector collection with its embeddings (nothing is
embedded again). The target is the profile the settings name (DATABASE_URL, CHROMA_URL); its schema is made by
the stores themselves, so the copy follows their columns.

Idempotent: rows are inserted with `ON CONFLICT DO NOTHING`, checkpoints are upserts keyed by their ids and
vectors are upserts by episode id, so a run cut half-way is finished by running it again, and a second run of
a finished one adds nothing. An episode a crash left uncommitted (memory/episodes.py) is not moved: it never
was part of memory. Stop the embedded service first: it holds the data directory's lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
from langchain_core.runnables import RunnableConfig
from psycopg.types.json import Jsonb
from tqdm import tqdm

from config.settings import Settings
from memory.pg import PgDatabase

FIRST = ("projects", "sessions", "entities", "episodes", "turn_recalls")
"""Tables copied first, in this order (what others refer to before what refers to it); the rest follow."""
SKIPPED_SUFFIXES = ("_fts", "_fts_data", "_fts_idx", "_fts_docsize", "_fts_config", "_fts_content")


@dataclass
class Moved:
    """What a run copied (rows new to the target) and found already there."""

    rows: Counter = field(default_factory=Counter)
    existing: Counter = field(default_factory=Counter)
    checkpoints: int = 0
    writes: int = 0
    vectors: int = 0

    def summary(self) -> str:
        tables = ", ".join(f"{t} {n}" + (f" (+{self.existing[t]} already there)" if self.existing[t] else "")
                           for t, n in self.rows.items())
        return (f"moved: {tables or 'no rows'}; checkpoints {self.checkpoints} ({self.writes} pending writes); "
                f"vectors {self.vectors}")


def _source_tables(conn: sqlite3.Connection) -> list[str]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    names = [n for n in names if not n.startswith("sqlite_") and not n.endswith(SKIPPED_SUFFIXES)]
    return [t for t in FIRST if t in names] + sorted(n for n in names if n not in FIRST)


def _target_columns(db: PgDatabase, table: str) -> dict[str, str]:
    rows = db.query("SELECT column_name, data_type, is_generated FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = ?", (table,))
    return {r["column_name"]: r["data_type"] for r in rows if r["is_generated"] != "ALWAYS"}


def _adapt(value: Any, data_type: str) -> Any:
    """A SQLite value as the target column takes it (SQLite keeps booleans as 0/1 and JSON as text)."""
    if value is None:
        return None
    if data_type == "boolean":
        return bool(value)
    if data_type in ("json", "jsonb"):
        return Jsonb(value) if not isinstance(value, str) else value
    if data_type == "bytea" and isinstance(value, str):
        return value.encode()
    return value


def copy_table(source: sqlite3.Connection, target: PgDatabase, table: str, moved: Moved,
               batch: int = 1000) -> None:
    """Insert the source's rows the target lacks (by its primary or unique keys)."""
    columns = _target_columns(target, table)
    if not columns:
        return  # the target profile keeps no such table (e.g. SQLite-only bookkeeping)
    present = [r[1] for r in source.execute(f"PRAGMA table_info({table})")]
    shared = [c for c in present if c in columns]
    where = " WHERE committed = 1" if table == "episodes" and "committed" in present else ""
    if table == "turn_recalls" and "episode_id" in present and _has_table(source, "episodes"):
        where = " WHERE episode_id IN (SELECT id FROM episodes WHERE committed = 1)"
    total = source.execute(f"SELECT count(*) FROM {table}{where}").fetchone()[0]
    insert = (f"INSERT INTO {table} ({', '.join(shared)}) VALUES ({', '.join('?' * len(shared))}) "
              "ON CONFLICT DO NOTHING")
    cursor = source.execute(f"SELECT {', '.join(shared)} FROM {table}{where}")
    with tqdm(total=total, desc=table, unit="row", leave=False) as bar:
        while rows := cursor.fetchmany(batch):
            values = [tuple(_adapt(v, columns[c]) for v, c in zip(row, shared, strict=True)) for row in rows]
            with target.transaction() as conn:
                added = sum(conn.execute(insert, row).rowcount for row in values)
            moved.rows[table] += added
            moved.existing[table] += len(values) - added
            bar.update(len(values))
    if table == "episodes" and "seq" in shared:
        # Rows came with their own seq: move the identity past them so new episodes never collide.
        target.query("SELECT setval(pg_get_serial_sequence('episodes', 'seq'), "
                     "greatest((SELECT max(seq) FROM episodes), 1))")


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None


def copy_memory(files: Iterable[Path], target: PgDatabase, moved: Moved) -> None:
    """Every table of each SQLite file into the target database."""
    for path in files:
        if not path.exists():
            continue
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            for table in _source_tables(source):
                copy_table(source, target, table, moved)
        finally:
            source.close()


async def copy_checkpoints(path: Path, url: str, moved: Moved) -> None:
    """Every checkpoint (oldest first, so each one's parent is there before it) with its pending writes."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    if not path.exists():
        return
    async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True) as conn, \
            AsyncPostgresSaver.from_conn_string(url) as target:
        await target.setup()
        source = AsyncSqliteSaver(conn)
        threads = [row[0] async for row in await conn.execute("SELECT DISTINCT thread_id FROM checkpoints")]
        for thread in tqdm(threads, desc="checkpoints", unit="session", leave=False):
            tuples = [t async for t in source.alist({"configurable": {"thread_id": thread}})]
            for saved in reversed(tuples):
                configurable = saved.config["configurable"]
                parent = (saved.parent_config or {}).get("configurable", {}).get("checkpoint_id")
                namespace = configurable.get("checkpoint_ns", "")
                put: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": namespace,
                                                        **({"checkpoint_id": parent} if parent else {})}}
                stored = await target.aput(put, saved.checkpoint, saved.metadata,
                                           dict(saved.checkpoint["channel_versions"]))
                by_task: dict[str, list[tuple[str, Any]]] = {}
                for task_id, channel, value in saved.pending_writes or []:
                    by_task.setdefault(task_id, []).append((channel, value))
                for task_id, writes in by_task.items():
                    await target.aput_writes(stored, writes, task_id)
                    moved.writes += len(writes)
                moved.checkpoints += 1


def copy_vectors(chroma_dir: Path, url: str, moved: Moved, batch: int = 500) -> None:
    """Every collection of the embedded Chroma directory into the server, embeddings as stored."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    if not chroma_dir.exists():
        return
    quiet = ChromaSettings(anonymized_telemetry=False)
    source = chromadb.PersistentClient(str(chroma_dir), settings=quiet)
    host, _, port = url.split("://", 1)[-1].rstrip("/").rpartition(":")
    target = chromadb.HttpClient(host=host, port=int(port), ssl=url.startswith("https"), settings=quiet)
    for listed in tqdm(source.list_collections(), desc="vectors", unit="collection", leave=False):
        collection = source.get_collection(listed.name)
        into = target.get_or_create_collection(collection.name, metadata=collection.metadata)
        offset = 0
        while True:
            got = collection.get(include=["embeddings", "documents", "metadatas"], limit=batch, offset=offset)
            if not got["ids"]:
                break
            into.upsert(ids=got["ids"], embeddings=got["embeddings"], documents=got["documents"],
                        metadatas=got["metadatas"])
            moved.vectors += len(got["ids"])
            offset += len(got["ids"])


def migrate(data_dir: Path, chroma_dir: Path, settings: Settings) -> Moved:
    """Move the embedded store in `data_dir` (+ `chroma_dir`) into the profile `settings` name."""
    if not settings.database_url or not settings.chroma_url:
        raise SystemExit("migrate needs the target: set DATABASE_URL and CHROMA_URL")
    if not (data_dir / "memory.db").exists():
        raise SystemExit(f"no embedded store in {data_dir} (memory.db is missing)")
    moved = Moved()
    target = PgDatabase(settings.database_url, max_size=2)
    try:
        make_schema(target)
        copy_memory([data_dir / "memory.db", data_dir / "dialogues.db"], target, moved)
    finally:
        target.close()
    asyncio.run(copy_checkpoints(data_dir / "checkpoints.db", settings.database_url, moved))
    copy_vectors(chroma_dir, settings.chroma_url, moved)
    return moved


def make_schema(db: PgDatabase) -> None:
    """The target's tables, made by the stores that own them (as a worker does at start-up)."""
    from memory import turn_recalls
    from memory.entities import EntityStore
    from memory.episodes import EpisodeStore
    from memory.idempotency import IdempotencyStore
    from memory.semantic_cache import SemanticCache
    from memory.sessions import SessionStore
    from server.dialogues.store import DialogueStore

    SessionStore(db)
    EpisodeStore(db)
    EntityStore(db)
    IdempotencyStore(db)
    SemanticCache(db)
    DialogueStore(db)
    turn_recalls.ensure_schema(db)
