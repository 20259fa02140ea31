"""What an episode is: the exchange written (`Episode`), the row read back (`StoredEpisode`), the text that is
indexed (`render_document`), and the indexes its table has on either dialect (`EPISODE_INDEXES`). The store that
keeps them is memory/episodes.py; each dialect's table is in memory/fts5.py and memory/pg_lexical.py."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

EPISODE_INDEXES = """CREATE INDEX IF NOT EXISTS episodes_by_session ON episodes(session_id, seq);
CREATE INDEX IF NOT EXISTS episodes_pending ON episodes(seq) WHERE indexed = 0;
CREATE INDEX IF NOT EXISTS episodes_unrefined ON episodes(seq) WHERE indexed = 1;
CREATE INDEX IF NOT EXISTS episodes_by_reply ON episodes(ai_msg_id);
CREATE INDEX IF NOT EXISTS episodes_by_scope ON episodes(scope, seq);
CREATE INDEX IF NOT EXISTS episodes_by_date ON episodes(scope, created_at);
"""
"""The episodes table's indexes, the same on both dialects: a session's, the unembedded rows, those waiting
for their context vector (memory/indexer.py), by reply, a scope's in order and by date (memory/dates.py)."""


def render_document(user_text: str, assistant_text: str, created_at: float,
                    speakers: tuple[str | None, str | None] = (None, None)) -> str:
    """The text that is indexed: dated, with speaker labels (both measurably improve recall); an imported
    conversation's speakers by name."""
    day = datetime.fromtimestamp(created_at, UTC).strftime("%Y-%m-%d")
    user, assistant = speakers[0] or "User", speakers[1] or "Assistant"
    return f"[{day}] {user}: {user_text.strip()}\n{assistant}: {assistant_text.strip()}"


@dataclass(frozen=True)
class Episode:
    """One stored exchange."""

    session_id: str
    scope: str
    user_text: str
    assistant_text: str
    user_msg_id: str | None = None
    ai_msg_id: str | None = None
    created_at: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    recall: dict | None = None
    """What recall put in this turn's prompt (memory/turn_recalls.py), stored with the episode."""
    speakers: tuple[str | None, str | None] = (None, None)
    """Names the document labels the two sides with (an import's `name`s); None: User and Assistant."""

    @property
    def document(self) -> str:
        """The indexed text of this episode."""
        return render_document(self.user_text, self.assistant_text, self.created_at, self.speakers)


@dataclass(frozen=True)
class StoredEpisode:
    """An episode as read back for recall or indexing."""

    id: str
    session_id: str
    scope: str
    document: str
    ai_msg_id: str | None
    created_at: float
    score: float = 0.0
    user_text: str = ""


def stored_episode(row, score: float = 0.0) -> StoredEpisode:
    """An episode row (any dialect's) as read back."""
    return StoredEpisode(
        id=row["id"],
        session_id=row["session_id"],
        scope=row["scope"],
        document=row["document"],
        ai_msg_id=row["ai_msg_id"],
        created_at=row["created_at"],
        score=score,
        user_text=row["user_text"],
    )
