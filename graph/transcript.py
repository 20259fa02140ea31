"""A session's messages as chat turns: the one rendering the prompt (assemble) and the summary (summarise) share."""

from __future__ import annotations

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, ToolMessage

import prompts
from graph.contract import render_reply


def _text(message: BaseMessage) -> str:
    return message.text if isinstance(message.content, list) else str(message.content)


def to_chat(message: AnyMessage) -> tuple[str, str] | None:
    """A state message as (role, text) for the prompt; assistant turns in contract form."""
    if isinstance(message, HumanMessage):
        return "user", _text(message)
    if isinstance(message, AIMessage):
        return "assistant", render_reply(_text(message), message.tool_calls)
    if isinstance(message, ToolMessage):
        content = prompts.render(
            "tool_result", call_id=message.tool_call_id, name=message.name or "tool", content=_text(message)
        )
        return "user", content
    return None


def merge_turns(turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    """Messages with consecutive same-role turns merged (strict templates require alternation)."""
    merged: list[list[str]] = []
    for role, text in turns:
        if merged and merged[-1][0] == role:
            merged[-1][1] += "\n\n" + text
        else:
            merged.append([role, text])
    return [{"role": r, "content": t} for r, t in merged]
