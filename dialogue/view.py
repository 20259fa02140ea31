"""What a speaker sees: the conversation from its own side (its turns as assistant, the other's as user)."""

from __future__ import annotations

from typing import Any

from dialogue.state import Participant, Turn
from prompts import render, template


def speaker_index(turns: list[Turn]) -> int:
    """Who speaks next: the first participant opens, then they alternate."""
    return len(turns) % 2


def speaker_view(topic: str, participants: list[Participant], turns: list[Turn], end_signal: str
                 ) -> list[dict[str, Any]]:
    """The prompt of the next speaker. The opener starts from an instruction naming the topic (as user),
    so that every view alternates user/assistant and ends on a user message."""
    index = speaker_index(turns)
    me, other = participants[index], participants[1 - index]
    system = render("dialogue_system", persona=me.get("persona") or template("dialogue_persona"),
                    name=me["name"], other=other["name"], topic=topic, end_signal=end_signal)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    if index == 0:
        messages.append({"role": "user", "content": render("dialogue_opening", other=other["name"], topic=topic)})
    for turn in turns:
        role = "assistant" if turn["speaker"] == me["name"] else "user"
        messages.append({"role": role, "content": turn["text"]})
    return messages
