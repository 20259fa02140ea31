"""What recall put in each turn's prompt, kept beside the turn's episode (`memory.db`, table `turn_recalls`).

One row per episode, written in the episode's own transaction (uncommitted with it, committed with it,
discarded with it and deleted with its session), so the record of a turn exists exactly when the turn does
and survives restarts. It is a JSON document: the episodes recall found (their text as it went into the
prompt, the fused score and its parts, whether the budget let it in), the entities, whether the rolling
summary was in the prompt, and whether recall was degraded. The web page shows it beside each reply.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from memory.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS turn_recalls (
    episode_id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
"""


def ensure_schema(db: Database) -> None:
    """Create the table (idempotent)."""
    db.executescript(SCHEMA)


def write(conn: sqlite3.Connection, episode_id: str, record: dict[str, Any]) -> None:
    """Store one turn's record, inside the caller's transaction (the episode's insert)."""
    conn.execute("INSERT INTO turn_recalls (episode_id, record) VALUES (?, ?)"
                 " ON CONFLICT (episode_id) DO UPDATE SET record = excluded.record",  # both dialects
                 (episode_id, json.dumps(record, ensure_ascii=False)))


def delete_session(conn: sqlite3.Connection, session_id: str, uncommitted_only: bool = False) -> None:
    """Remove the records of a session's episodes (or of its uncommitted ones), inside the caller's
    transaction, before the episodes themselves are deleted."""
    where = "session_id = ?" + (" AND committed = 0" if uncommitted_only else "")
    conn.execute(f"DELETE FROM turn_recalls WHERE episode_id IN (SELECT id FROM episodes WHERE {where})",
                 (session_id,))


def session_turns(db: Database, session_id: str) -> list[dict[str, Any]]:
    """The session's committed turns, oldest first: `turn` (1-based, in the order they were stored),
    `messageId` (the reply), `userMessageId`, `createdAt` (epoch seconds) and `record` (None for turns
    stored before records were kept)."""
    rows = db.query(
        "SELECT e.ai_msg_id, e.user_msg_id, e.created_at, r.record FROM episodes e"
        " LEFT JOIN turn_recalls r ON r.episode_id = e.id"
        " WHERE e.session_id = ? AND e.committed = 1 ORDER BY e.seq", (session_id,))
    return [{"turn": n, "messageId": row["ai_msg_id"], "userMessageId": row["user_msg_id"],
             "createdAt": row["created_at"], "record": json.loads(row["record"]) if row["record"] else None}
            for n, row in enumerate(rows, start=1)]


def build_record(recalled: dict[str, Any], placed: dict[str, Any] | None, summary: str | None) -> dict[str, Any]:
    """The record of one turn from recall's output and what assemble placed in the prompt (`placed`:
    `{"episodes": n, "entities": n, "summary": bool}`; None when assemble did not say)."""
    texts = list(recalled.get("episodes") or [])
    details = list(recalled.get("episode_hits") or [])
    in_prompt = len(texts) if placed is None else int(placed.get("episodes") or 0)
    episodes = []
    for i, text in enumerate(texts):
        detail = details[i] if i < len(details) else {}
        episodes.append({"id": detail.get("id"), "sessionId": detail.get("sessionId"), "text": text,
                         "score": detail.get("score"), "scoreParts": detail.get("scoreParts"),
                         "inPrompt": i < in_prompt})
    entity_texts = list(recalled.get("entities") or [])
    entity_details = list(recalled.get("entity_hits") or [])
    entities_in = len(entity_texts) if placed is None else int(placed.get("entities") or 0)
    entities = [{**(entity_details[i] if i < len(entity_details) else {}), "text": text,
                 "inPrompt": i < entities_in} for i, text in enumerate(entity_texts)]
    summary_used = bool(summary) if placed is None else bool(placed.get("summary"))
    return {"episodes": episodes, "entities": entities, "summaryUsed": summary_used,
            "degraded": bool(recalled.get("degraded")), "error": recalled.get("error")}
