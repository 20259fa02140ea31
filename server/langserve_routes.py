"""LangServe routes at `/agent`: the playground and `RemoteRunnable` clients, over the same graph and turns.

Kept in one removable module (LangServe is in maintenance mode upstream). The served runnable takes
`{"messages": [...]}` (plus optional `system` and `tools`) and streams the answer as `AIMessageChunk`s of
response text; the final chunk carries the tool calls. It runs through the same TurnRunner as the OpenAI
routes, so a session is one conversation whichever door it comes through.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from langchain_core.messages import AIMessageChunk, AnyMessage, convert_to_messages
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langserve import add_routes
from pydantic import BaseModel, Field

from server.errors import inference_error
from server.session_ids import project_from_headers, request_owner, session_from_headers, validate_session_id
from server.turns import TurnRequest, check_reachable

ENDPOINTS = ("invoke", "batch", "stream", "stream_events", "playground",
             "input_schema", "output_schema", "config_schema")
INFERENCE_KEYS = ("model", "temperature", "max_tokens", "top_p", "stop")


class AgentInput(BaseModel):
    """What `/agent` accepts."""

    messages: list[AnyMessage] = Field(description="The turn's new messages (earlier ones are remembered).")
    system: str | None = Field(None, description="The client's own system prompt.")
    tools: list[dict[str, Any]] | None = Field(None, description="Tools offered, in OpenAI function format.")


async def _client_thread_id(request: Request) -> str | None:
    """`config.configurable.thread_id` as the client sent it.

    LangServe drops configurable keys the runnable does not declare before the modifier runs, so the
    raw body is read here (Starlette caches it; no second read from the socket).
    """
    try:
        body = await request.json()
    except ValueError:
        return None
    configs = body.get("config") if isinstance(body, dict) else None
    configs = configs if isinstance(configs, list) else [configs]
    for config in configs:
        if isinstance(config, dict):
            value = (config.get("configurable") or {}).get("thread_id")
            if value:
                return validate_session_id(str(value), param="config.configurable.thread_id")
    return None


async def per_request_config(config: dict[str, Any], request: Request) -> dict[str, Any]:
    """The session comes from the server side: a header, the client's thread_id, or a fresh id; the owner
    from the API key. Another key's session is refused here, before a stream's response starts (404)."""
    session = session_from_headers(request.headers)
    if session is None and request.method == "POST":
        session = await _client_thread_id(request)
    configurable = dict(config.get("configurable") or {})
    configurable.pop("project_id", None)
    configurable["thread_id"] = session or f"lc-{uuid.uuid4().hex}"
    configurable["owner"] = request_owner(request)
    project = project_from_headers(request.headers)
    if project:
        configurable["project_id"] = project
    if request.method == "POST":
        await _refuse_early(request.app.state.runtime, configurable)
    return {**config, "configurable": configurable}


async def _refuse_early(runtime: Any, configurable: dict[str, Any]) -> None:
    """The turn's own ownership check, run ahead (the turn repeats it)."""
    session_id, owner = configurable["thread_id"], configurable["owner"]
    if owner is not None:
        await asyncio.to_thread(check_reachable, runtime.deps.sessions, session_id, configurable.get("project_id"),
                                owner)


def make_agent_runnable(app: FastAPI) -> RunnableLambda:
    """The runnable LangServe serves; it finds the live runtime on the app at call time."""

    async def agent(payload: dict[str, Any], config: RunnableConfig) -> AsyncIterator[AIMessageChunk]:
        runtime = app.state.runtime
        data = payload.model_dump() if isinstance(payload, BaseModel) else dict(payload)
        configurable = config.get("configurable") or {}
        turn = TurnRequest(
            session_id=configurable.get("thread_id") or f"lc-{uuid.uuid4().hex}",
            messages=convert_to_messages(data.get("messages") or []),
            system=data.get("system"),
            tools=data.get("tools"),
            configurable={k: configurable[k] for k in INFERENCE_KEYS if k in configurable},
            stream=True,
            project_id=configurable.get("project_id"),
            owner=configurable.get("owner"),
        )
        async for event in runtime.turns.events(turn):
            if event.kind == "text":
                yield AIMessageChunk(content=event.text)
            elif event.kind == "error":
                raise RuntimeError(inference_error(event.error, runtime.settings.inference_base_url).message)
            else:
                message = event.message
                calls = [{"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                         for i, c in enumerate(message.tool_calls)]
                yield AIMessageChunk(content="", tool_call_chunks=calls, id=message.id,
                                     response_metadata={"session_id": turn.session_id})

    return RunnableLambda(agent, name="agent")


def install_langserve(app: FastAPI, path: str = "/agent") -> None:
    """Mount `/agent/invoke`, `/batch`, `/stream`, `/stream_events`, `/playground` and the schemas."""
    add_routes(
        app,
        make_agent_runnable(app),
        path=path,
        input_type=AgentInput,
        output_type=AIMessageChunk,
        playground_type="chat",
        per_req_config_modifier=per_request_config,
        enabled_endpoints=list(ENDPOINTS),
    )
