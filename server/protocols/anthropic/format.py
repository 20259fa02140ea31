"""Anthropic response shapes: a whole `message`, and the events of a streamed one."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage


def stop_reason(message: AIMessage) -> str:
    """`tool_use`, `max_tokens` or `end_turn`."""
    if message.tool_calls:
        return "tool_use"
    if (message.response_metadata or {}).get("finish_reason") == "length":
        return "max_tokens"
    return "end_turn"


def usage_out(usage: dict[str, Any] | None, estimated_input: int = 0) -> dict[str, int]:
    """Token usage as Anthropic reports it; the node's counts, else the prompt's estimate."""
    usage = usage or {}
    return {"input_tokens": int(usage.get("input_tokens") or estimated_input),
            "output_tokens": int(usage.get("output_tokens") or 0)}


def tool_use_blocks(message: AIMessage) -> list[dict[str, Any]]:
    """The message's tool calls as `tool_use` blocks."""
    return [{"type": "tool_use", "id": c["id"] or "", "name": c["name"], "input": c.get("args") or {}}
            for c in message.tool_calls]


def message_out(message_id: str, model: str, message: AIMessage, usage: dict[str, int]) -> dict[str, Any]:
    """A whole `message`: a text block (when there is text), then one `tool_use` block per call."""
    content: list[dict[str, Any]] = []
    if message.text or not message.tool_calls:
        content.append({"type": "text", "text": message.text})
    content += tool_use_blocks(message)
    return {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason(message), "stop_sequence": None, "usage": usage}


def event(kind: str, data: dict[str, Any]) -> str:
    """One server-sent event, named as Anthropic names them."""
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data}, ensure_ascii=False)}\n\n"


def message_start(message_id: str, model: str, input_tokens: int) -> str:
    return event("message_start", {"message": {
        "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 0}}})


def block_start(index: int, block: dict[str, Any]) -> str:
    return event("content_block_start", {"index": index, "content_block": block})


def text_delta(index: int, text: str) -> str:
    return event("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": text}})


def input_json_delta(index: int, partial_json: str) -> str:
    return event("content_block_delta", {"index": index,
                                         "delta": {"type": "input_json_delta", "partial_json": partial_json}})


def block_stop(index: int) -> str:
    return event("content_block_stop", {"index": index})


def message_delta(message: AIMessage, usage: dict[str, int]) -> str:
    return event("message_delta", {"delta": {"stop_reason": stop_reason(message), "stop_sequence": None},
                                   "usage": usage})


def message_stop() -> str:
    return event("message_stop", {})


def ping() -> str:
    return event("ping", {})


def error_event(body: dict[str, Any]) -> str:
    """An `error` event; `body` is an Anthropic error body (`{"type": "error", "error": {...}}`)."""
    return event("error", {"error": body["error"]})
