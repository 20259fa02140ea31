"""The lines an import reads and an export writes: one JSON object a line (or OpenAI's `{"messages": [...]}`).

A line is a message (`{"role", "content", "name"?, "timestamp"?, "id"?}`; `"type": "message"` optional), or one of
the records an export adds around them: `{"type": "session", "summary", ...}` and `{"type": "entity", ...}`.
Every line is checked before anything is stored, so a malformed one fails the whole import with its number.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ImportedMessage(BaseModel):
    """One message of an imported conversation."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["message"] = "message"
    role: Literal["user", "assistant"]
    content: str
    name: str | None = Field(None, description="The speaker's name, kept on the message.")
    timestamp: datetime | None = Field(None, description="When it was said (ISO 8601 or UNIX seconds); "
                                       "default: the time of the import.")
    id: str | None = Field(None, description="Its id; default: one derived from its place and text, so a "
                           "retried import of the same file is recognised.")


class SessionRecord(BaseModel):
    """An export's first line: the session, with the summary of what its checkpoint folded away."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["session"]
    id: str | None = None
    name: str | None = None
    projectId: str | None = None
    summary: str | None = None


class EntityRecord(BaseModel):
    """An entity remembered from the session."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["entity"]
    name: str
    entityType: str = "other"
    notes: str = ""


class LineError(ValueError):
    """A line that is not a message nor a record: its 1-based number and why."""

    def __init__(self, line: int, reason: str, where: str = "line") -> None:
        super().__init__(f"{where} {line}: {reason}")
        self.line = line


class Transcript(BaseModel):
    """What a file holds, checked."""

    messages: list[ImportedMessage] = []
    session: SessionRecord | None = None
    entities: list[EntityRecord] = []


RECORDS: dict[str, type[BaseModel]] = {"message": ImportedMessage, "session": SessionRecord, "entity": EntityRecord}


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def _record(obj: object, number: int, where: str, out: Transcript) -> None:
    if not isinstance(obj, dict):
        raise LineError(number, "not a JSON object", where)
    kind = obj.get("type", "message")
    model = RECORDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise LineError(number, f"unknown type {kind!r} (message, session or entity)", where)
    try:
        record = model.model_validate(obj)
    except ValidationError as exc:
        raise LineError(number, _reason(exc), where) from None
    if isinstance(record, ImportedMessage):
        out.messages.append(record)
    elif isinstance(record, SessionRecord):
        out.session = record
    else:
        assert isinstance(record, EntityRecord)
        out.entities.append(record)


def parse(text: str) -> Transcript:
    """A body or file: `{"messages": [...]}` (numbered `message N`) or JSONL (`line N`); blank lines skipped.
    Raises LineError for the first bad line."""
    out = Transcript()
    stripped = text.strip()
    if stripped.startswith("{"):
        try:  # JSONL of several lines is not one JSON value: it fails here at once, on "extra data"
            whole = json.loads(stripped)
        except json.JSONDecodeError:
            whole = None
        if isinstance(whole, dict) and isinstance(whole.get("messages"), list):
            for i, obj in enumerate(whole["messages"], 1):
                _record(obj, i, "message", out)
            return out
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LineError(number, f"not JSON ({exc.msg})") from None
        _record(obj, number, "line", out)
    return out


def timestamp_of(message: ImportedMessage, default: float) -> float:
    """The message's time as UNIX seconds (a time without a zone is UTC)."""
    if message.timestamp is None:
        return default
    ts = message.timestamp
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


def iso(ts: float) -> str:
    """UNIX seconds as ISO 8601 (UTC), as the API writes times."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def message_id(message: ImportedMessage, ordinal: int) -> str:
    """The message's own id, or one derived from its place and content: the same file gives the same ids."""
    if message.id:
        return message.id
    stamp = message.timestamp.isoformat() if message.timestamp else ""
    key = f"{ordinal}\x1f{message.role}\x1f{message.name or ''}\x1f{stamp}\x1f{message.content}"
    return "imp-" + hashlib.sha256(key.encode()).hexdigest()[:24]
