"""LangServe routes at `/agent`: the playground and `RemoteRunnable` clients, over the same graph and turns.

Kept in one removable module (LangServe is in maintenance mode upstream). The served runnable takes
`{"messages": [...]}` (plus optional `system` and `tools`) and streams the answer as `AIMessageChunk`s of
response text; the final chunk carries the tool calls. It runs through the same TurnRunner as the OpenAI
routes, so a session is one conversation whichever door it comes through.
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from langchain_core.messages import AIMessageChunk, AnyMessage, convert_to_messages
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langserve import add_routes
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from server.errors import ApiError
from server.protocols.langserve_playground import AgentOutput
from server.protocols.langserve_requests import check_agent_request
from server.turns.access import check_reachable
from server.turns.session_ids import project_from_headers, request_owner, session_from_headers, validate_session_id
from server.turns.storable import body_problem
from server.turns.types import TurnRequest

# The chat playground posts to `stream_log` and reads the schemas under `c/{config_hash}/`: both are needed.
ENDPOINTS = ("invoke", "batch", "stream", "stream_log", "stream_events", "playground",
             "input_schema", "output_schema", "config_schema", "config_hashes")
STREAM_ENDPOINTS = ("stream", "stream_log", "stream_events")
INFERENCE_KEYS = ("model", "temperature", "max_tokens", "top_p", "stop")


class AgentInput(BaseModel):
    """What `/agent` accepts: `messages`; also `system` (the client's own system prompt) and `tools` (tools
    offered, in OpenAI function format)."""

    messages: list[AnyMessage] = Field(description="The turn's new messages (earlier ones are remembered).")
    # Accepted but left out of the JSON schema: the chat playground offers its chat only to a one-key input.
    system: SkipJsonSchema[str | None] = None
    tools: SkipJsonSchema[list[dict[str, Any]] | None] = None


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
    from the API key. A session that is busy (reject mode) or another key's is refused here, before a
    stream's response starts, so the client gets a plain 409 or 404."""
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
        await _refuse_unstorable(request)
        await _refuse_early(request.app.state.runtime, configurable)
    return {**config, "configurable": configurable}


async def _refuse_unstorable(request: Request) -> None:
    """Input the service cannot store (server/turns/storable.py) is a 400 naming the field, before a stream starts."""
    try:
        body = await request.json()
    except ValueError:
        return  # LangServe answers a body that is not JSON
    problem = body_problem(body)
    if problem:
        raise ApiError(400, problem[1], param=problem[0])


async def _refuse_early(runtime: Any, configurable: dict[str, Any]) -> None:
    """The turn's own checks, run ahead (the turn repeats them: a race still ends in an `error` event)."""
    session_id, owner = configurable["thread_id"], configurable["owner"]
    if owner is not None:
        await asyncio.to_thread(check_reachable, runtime.deps.sessions, session_id, configurable.get("project_id"),
                                owner)
    runtime.turns.refuse_if_busy(session_id)


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
                raise event.failure
            else:
                message = event.reply
                calls = [{"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                         for i, c in enumerate(message.tool_calls)]
                yield AIMessageChunk(content="", tool_call_chunks=calls, id=message.id,
                                     response_metadata={"session_id": turn.session_id})

    return RunnableLambda(agent, name="agent")


def install_langserve(app: FastAPI, path: str = "/agent") -> None:
    """Mount `/agent/invoke`, `/batch`, `/stream`, `/stream_log`, `/stream_events`, `/playground`, the
    schemas, and their `/agent/c/{config_hash}/...` twins (the playground's)."""
    add_routes(
        app,
        make_agent_runnable(app),
        path=path,
        input_type=AgentInput,
        output_type=AgentOutput,
        playground_type="chat",
        per_req_config_modifier=per_request_config,
        enabled_endpoints=list(ENDPOINTS),  # type: ignore[arg-type]  # LangServe's Literal of endpoint names
        dependencies=[Depends(check_agent_request)],  # bad input is a 400 before LangServe parses it
    )
    streams = {f"{path}/{name}" for name in STREAM_ENDPOINTS} | {f"{path}/c/{{config_hash}}/{name}"
                                                               for name in STREAM_ENDPOINTS}
    for i, route in enumerate(app.router.routes):  # the serving routes; the documented twins never run
        if isinstance(route, APIRoute) and route.path in streams and not route.include_in_schema:
            app.router.routes[i] = APIRoute(route.path, _api_errors_in_stream(route.endpoint), methods=route.methods,
                                            name=route.name, include_in_schema=False, dependencies=route.dependencies)


def _api_errors_in_stream(endpoint: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """LangServe ends a failed stream with `event: error` and status 500 whatever failed, then re-raises
    (a second, "response already started" error in the log). Here an ApiError's event carries its own status
    and message (409 session_busy, 404, 502...), and the error ends the stream instead of escaping it."""

    @functools.wraps(endpoint)
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        response = await endpoint(*args, **kwargs)
        response.body_iterator = _with_api_errors(response.body_iterator)
        return response

    return wrapped


async def _with_api_errors(events: AsyncIterator[dict]) -> AsyncIterator[dict]:
    """Hold back LangServe's error event until the exception behind it is known."""
    held = None
    try:
        async for event in events:
            if isinstance(event, dict) and event.get("event") == "error":
                held = event  # LangServe raises the cause next
                continue
            yield event
    except ApiError as exc:
        yield {"event": "error", "data": json.dumps({"status_code": exc.status, "message": exc.message})}
        return
    except Exception:
        if held is not None:
            yield held
        raise
    if held is not None:
        yield held
