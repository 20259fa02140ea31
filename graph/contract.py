"""The JSON response contract (seed 000): parsing a model reply into text and tool calls, never failing.

    {"assistant_response": "text for the client", "tool_calls": [{"id": "call_1", "name": "...", "arguments": {}}]}
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from graph.stream_text import ResponseTextExtractor

Status = Literal["ok", "repaired", "native", "truncated", "fallback"]

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


class ContractToolCall(BaseModel):
    """One tool call as the contract spells it."""

    id: str | None = None
    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)

    @field_validator("arguments", mode="before")
    @classmethod
    def _arguments_from_string(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        return value


class ContractReply(BaseModel):
    """The whole reply."""

    assistant_response: str = ""
    tool_calls: list[ContractToolCall] = Field(default_factory=list)

    @field_validator("assistant_response", mode="before")
    @classmethod
    def _text_from_anything(cls, value: Any) -> Any:
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@dataclass
class ParsedReply:
    """The outcome of parsing: what the client gets, and how it was obtained."""

    text: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    status: Status = "ok"
    problems: list[str] = field(default_factory=list)


def _tool_call_dict(call: ContractToolCall) -> dict[str, Any]:
    return {"id": call.id or f"call_{uuid.uuid4().hex[:24]}", "name": call.name, "args": call.arguments}


def _validate(obj: Any) -> tuple[ParsedReply | None, list[str]]:
    """Validate a decoded object; invalid tool calls are dropped one by one rather than failing the reply."""
    if not isinstance(obj, dict) or not ({"assistant_response", "tool_calls"} & obj.keys()):
        return None, []
    problems: list[str] = []
    raw_calls = obj.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        problems.append("tool_calls is not a list")
        raw_calls = []
    calls: list[dict[str, Any]] = []
    for i, raw in enumerate(raw_calls):
        try:
            calls.append(_tool_call_dict(ContractToolCall.model_validate(raw)))
        except (ValidationError, ValueError, TypeError) as exc:
            problems.append(f"tool_calls[{i}] dropped: {str(exc).splitlines()[0]}")
    try:
        text = ContractReply.model_validate({"assistant_response": obj.get("assistant_response")}).assistant_response
    except ValidationError as exc:  # pragma: no cover - the validator accepts any JSON value
        problems.append(str(exc).splitlines()[0])
        text = ""
    if not text and not calls:  # nothing usable: not the contract after all
        return None, problems
    return ParsedReply(text=text, tool_calls=calls, problems=problems), problems


def _json_candidates(text: str) -> list[Any]:
    """Every JSON object that can be decoded from `text`: inside code fences first, then anywhere."""
    found: list[Any] = []
    decoder = json.JSONDecoder()
    for block in _FENCE.findall(text):
        try:
            found.append(json.loads(block.strip()))
        except ValueError:
            pass
    for match in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        found.append(obj)
    return found


def parse_reply(content: str, native_tool_calls: Sequence[Mapping[str, Any]] | None = None) -> ParsedReply:
    """Turn a model's reply into text + tool calls. Never raises.

    Native OpenAI tool calls are accepted as they are. Otherwise the contract JSON is looked for as the
    whole reply, in a code fence, or inside prose; a reply cut off mid-JSON keeps the text it had; a reply
    that ignores the contract becomes the answer as it is, with no tool calls.
    """
    content = content or ""
    stripped = content.strip()
    if native_tool_calls:
        inner = parse_reply(content) if stripped else ParsedReply(text="")
        text = inner.text if inner.status != "fallback" else stripped
        calls = [dict(c) for c in native_tool_calls] + inner.tool_calls
        return ParsedReply(text=text, tool_calls=calls, status="native")
    try:
        whole = json.loads(stripped)
    except ValueError:
        whole = None
    reply, _ = _validate(whole)
    if reply is not None:
        reply.status = "ok" if not reply.problems else "repaired"
        return reply
    for candidate in _json_candidates(stripped):
        reply, _ = _validate(candidate)
        if reply is not None:
            reply.status = "repaired"
            return reply
    if '"assistant_response"' in stripped:
        extractor = ResponseTextExtractor()
        partial = extractor.feed(stripped)
        if extractor.started:
            return ParsedReply(text=partial, status="truncated", problems=["reply ended inside the JSON"])
    return ParsedReply(text=stripped, status="fallback", problems=["reply did not follow the JSON contract"])


def render_reply(text: str, tool_calls: Sequence[Mapping[str, Any]]) -> str:
    """An assistant turn written back in contract form, as the model is asked to reply."""
    calls = [{"id": c.get("id"), "name": c["name"], "arguments": c.get("args", {})} for c in tool_calls]
    return json.dumps({"assistant_response": text, "tool_calls": calls}, ensure_ascii=False)


# The longest `maxLength` the schema carries. llama.cpp turns `maxLength: n` into n nested optional
# repetitions, and its grammar parser refuses more than ~1000 (measured with llama-cpp-python 0.3.36: 1000
# parses, 1001 does not); the embedded node then crashed on a NULL grammar. Above this the string is
# unbounded and only the token limit ends it (a reply cut inside the JSON keeps its text: "truncated").
MAX_BOUNDED_TEXT_CHARS = 768


def reply_text_limit(max_tokens: int) -> int | None:
    """The `maxLength` of the answer for a reply limit of `max_tokens`: ~3 characters a token, so the string
    closes before the limit cuts the JSON; None (unbounded) when that is more than the grammar can carry."""
    chars = max(200, 3 * max_tokens)
    return chars if chars <= MAX_BOUNDED_TEXT_CHARS else None


def contract_schema(max_text_chars: int | None = MAX_BOUNDED_TEXT_CHARS, max_tool_calls: int = 8,
                    tool_names: list[str] | None = None) -> dict[str, Any]:
    """The contract as a JSON schema, bounded (so a constrained small model cannot loop forever) as far as
    a grammar can be: `max_text_chars` above MAX_BOUNDED_TEXT_CHARS (or None) leaves the answer unbounded.
    With `tool_names` (the client's declared tools), a call's name can only be one of them."""
    answer: dict[str, Any] = {"type": "string"}
    if max_text_chars is not None and max_text_chars <= MAX_BOUNDED_TEXT_CHARS:
        answer["maxLength"] = max_text_chars
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "assistant_response": answer,
            "tool_calls": {
                "type": "array",
                "maxItems": max_tool_calls,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "name": {"type": "string"},
                        "arguments": {"type": "object"},
                    },
                    "required": ["name", "arguments"],
                },
            },
        },
        "required": ["assistant_response", "tool_calls"],
    }
    if tool_names:
        schema["properties"]["tool_calls"]["items"]["properties"]["name"] = {"type": "string", "enum": tool_names}
    return schema


def contract_response_format(mode: str, max_text_chars: int | None = MAX_BOUNDED_TEXT_CHARS,
                             tool_names: list[str] | None = None) -> dict[str, Any] | None:
    """The `response_format` that constrains a reply to the contract, in the form the node understands.

    `schema`: OpenAI's `json_schema` (OpenAI, vLLM, llama.cpp's own server); `schema-embedded`:
    llama-cpp-python's server, which takes `json_object` with a `schema`. Other modes: none.
    `max_text_chars` (see `reply_text_limit`) keeps the answer short enough for the JSON to close before the
    token limit; `tool_names` limits calls to the declared tools.
    """
    schema = contract_schema(max_text_chars, tool_names=tool_names)
    if mode == "schema":
        return {"type": "json_schema", "json_schema": {"name": "assistant_contract", "schema": schema}}
    if mode == "schema-embedded":
        return {"type": "json_object", "schema": schema}
    return None
