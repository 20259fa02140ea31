"""Dialogues as fine-tuning data, one JSON object a line: OpenAI's `messages` format or ShareGPT.

The first participant's turns are the user's (`human`), the second's the assistant's (`gpt`); the second
participant's persona is the system prompt. A trailing turn of the first participant is left out, so every
record ends on an assistant turn (what a fine-tuning set trains on).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from server.dialogues.store import DialogueRow

ExportFormat = Literal["openai", "sharegpt"]


@dataclass(frozen=True)
class ExportFilter:
    """Which finished dialogues to export."""

    min_turns: int | None = None
    min_distinct_2: float | None = None
    max_repetition: float | None = None
    ending_reason: str | None = None

    def accepts(self, row: DialogueRow) -> bool:
        metrics, turns = row.metrics or {}, row.turns or []
        if len(turns) < 2:
            return False  # nothing to train on
        if self.min_turns is not None and len(turns) < self.min_turns:
            return False
        if self.min_distinct_2 is not None and metrics.get("distinct_2", 0.0) < self.min_distinct_2:
            return False
        if self.max_repetition is not None and metrics.get("repetition_score", 0.0) > self.max_repetition:
            return False
        return self.ending_reason is None or row.ending_reason == self.ending_reason


def _paired(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return turns[: len(turns) - len(turns) % 2]


def openai_record(row: DialogueRow) -> dict[str, Any]:
    """`{"messages": [{"role": "system"|"user"|"assistant", "content"}]}`."""
    persona = row.request["participants"][1].get("persona")
    messages = [{"role": "system", "content": persona}] if persona else []
    messages += [{"role": "user" if i % 2 == 0 else "assistant", "content": turn["text"]}
                 for i, turn in enumerate(_paired(row.turns or []))]
    return {"messages": messages}


def sharegpt_record(row: DialogueRow) -> dict[str, Any]:
    """`{"id", "conversations": [{"from": "system"|"human"|"gpt", "value"}]}`."""
    persona = row.request["participants"][1].get("persona")
    conversations = [{"from": "system", "value": persona}] if persona else []
    conversations += [{"from": "human" if i % 2 == 0 else "gpt", "value": turn["text"]}
                      for i, turn in enumerate(_paired(row.turns or []))]
    return {"id": row.id, "topic": row.topic, "conversations": conversations}


def export_line(row: DialogueRow, fmt: ExportFormat) -> str:
    """One JSONL line."""
    record = openai_record(row) if fmt == "openai" else sharegpt_record(row)
    return json.dumps(record, ensure_ascii=False) + "\n"
