"""OpenAI response shapes: `chat.completion` and `chat.completion.chunk`."""

from __future__ import annotations

import json
import time
from typing import Any

from langchain_core.messages import AIMessage


def finish_reason(message: AIMessage) -> str:
    """`tool_calls`, `length` or `stop`."""
    if message.tool_calls:
        return "tool_calls"
    if (message.response_metadata or {}).get("finish_reason") == "length":
        return "length"
    return "stop"


def tool_calls_out(message: AIMessage) -> list[dict[str, Any]]:
    """Tool calls in OpenAI's shape (`arguments` is a JSON string)."""
    return [
        {"id": c["id"], "type": "function",
         "function": {"name": c["name"], "arguments": json.dumps(c.get("args") or {}, ensure_ascii=False)}}
        for c in message.tool_calls
    ]


def usage_out(usage: dict[str, Any] | None) -> dict[str, int]:
    """Token usage as OpenAI reports it."""
    usage = usage or {}
    prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(completion_id: str, model: str, message: AIMessage, usage: dict | None) -> dict[str, Any]:
    """A whole `chat.completion`."""
    out: dict[str, Any] = {"role": "assistant", "content": message.text}
    if message.tool_calls:
        out["tool_calls"] = tool_calls_out(message)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": out, "finish_reason": finish_reason(message), "logprobs": None}],
        "usage": usage_out(usage),
    }


def chunk(completion_id: str, model: str, delta: dict[str, Any], finish: str | None = None,
          usage: dict | None = None, choices: bool = True) -> dict[str, Any]:
    """One `chat.completion.chunk`; the usage chunk has no choices."""
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}] if choices else [],
    }
    if usage is not None:
        body["usage"] = usage_out(usage)
    return body


def sse(data: dict[str, Any] | str) -> str:
    """One server-sent event line."""
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"
