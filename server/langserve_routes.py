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

from server.agent_requests import check_agent_request
from server.errors import ApiError, inference_error
from server.session_ids import project_from_headers, request_owner, session_from_headers, validate_session_id
from server.turns import BadTurn, TurnEvent, TurnRequest, busy_error, check_reachable

ENDPOINTS = ("invoke", "batch", "stream", "stream_events", "playground",
             "input_schema", "output_schema", "config_schema")
STREAM_ENDPOINTS = ("stream", "stream_events")
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
        await _refuse_early(request.app.state.runtime, configurable)
    return {**config, "configurable": configurable}


async def _refuse_early(runtime: Any, configurable: dict[str, Any]) -> None:
    """The turn's own checks, run ahead (the turn repeats them: a race still ends in an `error` event)."""
    session_id, owner = configurable["thread_id"], configurable["owner"]
    if owner is not None:
        await asyncio.to_thread(check_reachable, runtime.deps.sessions, session_id, configurable.get("project_id"),
                                owner)
    if runtime.turns.reject_busy and runtime.turns.locks.held(session_id):
        raise busy_error(session_id)


async def _turn_events(runtime: Any, turn: TurnRequest) -> AsyncIterator[TurnEvent]:
    """The turn's events; a request that cannot make a turn is a 400 (ApiErrors pass as they are)."""
    try:
        async for event in runtime.turns.events(turn):
            yield event
    except BadTurn as exc:
        raise ApiError(400, str(exc), param="messages") from exc


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
        async for event in _turn_events(runtime, turn):
            if event.kind == "text":
                yield AIMessageChunk(content=event.text)
            elif event.kind == "error":
                raise inference_error(event.error, runtime.settings.inference_base_url)
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
