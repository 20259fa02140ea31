"""Checks a LangServe `/agent` request before LangServe reads it, so bad input is a 400 naming the field.

LangServe trusts its envelope and LangChain's message constructors: `"config": null`, `"inputs": null`, a
message without `type`, a tool message without `tool_call_id` or `invalid_tool_calls` with unknown keys all
raised TypeError/KeyError inside it, which reached the client as a 500. Here each message is parsed the way
LangServe and the runnable will parse it (pydantic's `AnyMessage`, then `convert_to_messages` on its dump),
and any failure is the client's: a 400 in the route's error shape."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from langchain_core.messages import AnyMessage, convert_to_messages
from pydantic import TypeAdapter, ValidationError

from server.errors import ApiError

CHECKED_ENDPOINTS = ("invoke", "batch", "stream", "stream_log", "stream_events")
EVENT_FILTERS = ("include_names", "include_types", "include_tags", "exclude_names", "exclude_types", "exclude_tags")
_MESSAGE = TypeAdapter(AnyMessage)
# What LangChain's constructors and validators raise on a malformed message (not only ValidationError).
_PARSE_ERRORS = (ValidationError, TypeError, ValueError, KeyError, AttributeError, NotImplementedError)


async def check_agent_request(request: Request) -> None:
    """A FastAPI dependency of the `/agent` routes: raises ApiError(400) for a body LangServe cannot run."""
    endpoint = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    if request.method != "POST" or endpoint not in CHECKED_ENDPOINTS:
        return
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError) as exc:  # empty, not UTF-8, NUL bytes, not JSON, nested too deep
        raise ApiError(400, f"The body is not valid JSON: {_reason(exc)}", param="body") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.", param="body")
    _check_optional(body, "kwargs", dict, "an object")
    if endpoint == "batch":
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise ApiError(400, "`inputs` must be a list of inputs.", param="inputs")
        for i, value in enumerate(inputs):
            check_input(value, f"inputs[{i}]")
        config = body.get("config")
        configs = config if isinstance(config, list) else [config]
        if "config" in body and not all(isinstance(c, dict) for c in configs):
            raise ApiError(400, "`config` must be an object or a list of objects.", param="config")
        return
    if "input" not in body:
        raise ApiError(400, "`input` is required: {\"messages\": [...]}.", param="input")
    check_input(body["input"], "input")
    _check_optional(body, "config", dict, "an object")
    if endpoint in ("stream_events", "stream_log"):
        for name in EVENT_FILTERS:
            value = body.get(name)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise ApiError(400, f"`{name}` must be a list of strings.", param=name)


def check_input(value: Any, where: str) -> None:
    """An agent input: `{"messages": [...], "system"?: str, "tools"?: [...]}`, every message parseable."""
    if not isinstance(value, dict):
        raise ApiError(400, f"`{where}` must be an object: {{\"messages\": [...]}}.", param=where)
    messages = value.get("messages")
    if not isinstance(messages, list):
        raise ApiError(400, f"`{where}.messages` must be a list of messages.", param=f"{where}.messages")
    for i, message in enumerate(messages):
        field = f"{where}.messages[{i}]"
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise ApiError(400, f"`{field}` must be an object with a `type` (human, ai, system, tool) and "
                           "`content`.", param=field)
        try:
            convert_to_messages([_MESSAGE.validate_python(message).model_dump()])
        except _PARSE_ERRORS as exc:
            raise ApiError(400, f"`{field}` is not a valid {message['type']!r} message: {_reason(exc)}",
                           param=field) from exc


def _check_optional(body: dict[str, Any], name: str, kind: type, what: str) -> None:
    if name in body and not isinstance(body[name], kind):
        raise ApiError(400, f"`{name}` must be {what} (or left out).", param=name)


def _reason(exc: BaseException) -> str:
    """The first problem, in a line."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        return f"{where}: {err.get('msg')}" if where else str(err.get("msg"))
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
