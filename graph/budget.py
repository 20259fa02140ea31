"""Fitting a prompt into the inference node's context: token estimates, compact tool lists, trimmed text.

Clients such as Claude Code send system prompts of tens of thousands of characters and dozens of tool
definitions on every call; a local model's context holds a fraction of that. What gives way, in order:
tool descriptions (the schemas stay), the client's system prompt (down to a share of the budget), the
oldest turns, the client's system prompt again, and memory (only added where room is left). The
current user message is never dropped.
"""

from __future__ import annotations

import json
import re
from typing import Any

CHARS_PER_TOKEN = 3.5  # a conservative average for English and code with BPE tokenizers
TOOL_DESCRIPTION_CHARS = 200
"""Longest tool description kept once descriptions have to be shortened."""
CLIENT_SYSTEM_SHARE = 0.4
"""Share of the budget the client's system prompt keeps before older turns are dropped."""
_SCHEMA_NOISE = ("description", "examples", "example", "$schema", "title", "default")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def estimate_tokens(text: str) -> int:
    """A cheap token estimate, good enough to keep a prompt inside a context window."""
    return int(len(text) / CHARS_PER_TOKEN) + 4


def short_description(text: str, limit: int = TOOL_DESCRIPTION_CHARS) -> str:
    """The first sentence of a description (at most `limit` characters), on one line."""
    text = " ".join((text or "").split())
    match = _SENTENCE_END.search(text)
    first = text[: match.start()] if match else text
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def bare_schema(schema: Any) -> Any:
    """A JSON schema without descriptions, examples and titles: types, properties, required, enums stay."""
    if isinstance(schema, dict):
        return {k: bare_schema(v) for k, v in schema.items() if k not in _SCHEMA_NOISE or not _is_text(v)}
    if isinstance(schema, list):
        return [bare_schema(v) for v in schema]
    return schema


def _is_text(value: Any) -> bool:
    # "description" can also be a property *named* description (a dict): that one stays.
    return not isinstance(value, dict)


def describe_tools(tools: list[dict[str, Any]], level: int = 0) -> str:
    """The offered tools, one per line with their JSON-schema parameters.

    `level` 0: as given; 1: descriptions cut to their first sentence; 2: also the schemas' own
    descriptions and examples left out.
    """
    if not tools:
        return "(none: keep tool_calls empty)"
    lines = []
    for tool in tools:
        fn = tool.get("function", tool)
        params = fn.get("parameters") or {}
        if level >= 2:
            params = bare_schema(params)
        desc = " ".join((fn.get("description") or "").split())
        if level >= 1:
            desc = short_description(desc)
        params_json = json.dumps(params, ensure_ascii=False, separators=(",", ":"))
        lines.append(f"- {fn.get('name')}: {desc} Parameters: {params_json}")
    return "\n".join(lines)


def trim_text(text: str, max_tokens: int) -> str:
    """`text` within `max_tokens`: its beginning and its end (where clients put the environment),
    with a marker saying how much of the middle was left out."""
    if estimate_tokens(text) <= max_tokens:
        return text
    keep = max(0, int((max_tokens - 40) * CHARS_PER_TOKEN))  # the marker and the estimate's +4 fit in 40
    head, tail = text[: keep * 2 // 3], text[len(text) - keep // 3 :] if keep // 3 else ""
    cut = len(text) - len(head) - len(tail)
    return f"{head}\n[… {cut} characters of the client's instructions left out to fit the context …]\n{tail}"
