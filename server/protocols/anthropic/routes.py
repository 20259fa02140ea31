"""`POST /v1/messages` and `/v1/messages/count_tokens`: the Anthropic Messages API, with memory.

Claude Code (`ANTHROPIC_BASE_URL=http://host:8000`) and the `anthropic` SDKs talk to the same graph as
every other route. The session is `X-Claude-Code-Session-Id` (or `X-Session-Id`, or the session in
`metadata.user_id`; a conversation other than the one stored there gets a session beside it, see
server/turns/conversations.py), or one derived from the conversation's start; the project is `X-Project-Id`,
else the working directory the client reports in its system prompt, so each repository has its own memory.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from langchain_core.messages import BaseMessage

from server.deps import RuntimeDep
from server.errors import ApiError
from server.idempotency import idempotent
from server.protocols.anthropic import format as fmt
from server.protocols.anthropic.schemas import MessagesRequest, project_from_directory, working_directory
from server.runtime import Runtime
from server.turns.conversations import conversation_session
from server.turns.preview import preview
from server.turns.session_ids import (
    derive_session_id,
    project_from_headers,
    request_owner,
    session_from_headers,
    validate_session_id,
)
from server.turns.types import TurnEvent, TurnRequest

router = APIRouter(tags=["anthropic"])
PING_SECONDS = 5.0
"""A streamed reply sends a `ping` after this long without an event (and answers errors that come
sooner with a status code instead of a stream)."""
_METADATA_SESSION = re.compile(r"session_([A-Za-z0-9-]{8,100})")


def _ended() -> TurnEvent:
    """What a turn's events ending without a reply reads as (the runner always sends one)."""
    return TurnEvent("error", error=ApiError(500, "The turn ended without a reply; see the server log."))


def node_model(requested: str) -> str | None:
    """The inference node's model for a requested name: Claude names (what Claude Code asks for by
    default) mean the configured INFERENCE_MODEL; any other name is passed to the node as is."""
    return None if requested.lower().startswith("claude") else requested


def _session_id(body: MessagesRequest, request: Request, system: str | None, messages: list[BaseMessage],
                owner: str | None) -> tuple[str, bool]:
    """The session and whether the client named it (a header, or `metadata.user_id`)."""
    named = session_from_headers(request.headers)
    if named:
        return named, True
    match = _METADATA_SESSION.search((body.metadata.user_id or "") if body.metadata else "")
    if match:
        return validate_session_id(f"cc-{match.group(1)}", param="metadata.user_id"), True
    return derive_session_id(system, messages, owner), False


async def turn_request(runtime: Runtime, body: MessagesRequest, request: Request, stream: bool) -> TurnRequest:
    """The turn a Messages request asks for; on a named session, in the session of its own conversation
    (server/turns/conversations.py)."""
    client_system = body.system_text()
    system = "\n\n".join(p for p in (client_system, body.tool_instruction()) if p) or None
    project = project_from_headers(request.headers)
    if project is None and (cwd := working_directory(client_system)):
        project = project_from_directory(cwd)
    owner = request_owner(request)
    messages = body.conversation()
    session_id, named = _session_id(body, request, client_system, messages, owner)
    side = None
    if named:
        session_id, side = await conversation_session(runtime.deps.sessions, session_id, client_system, messages,
                                                   owner)
    return TurnRequest(session_id, messages, system, body.tool_dicts(), body.configurable(node_model(body.model)),
                       stream, project_id=project, owner=owner, side_session=side)


def _headers(session_id: str, meta: dict) -> dict[str, str]:
    headers = {"X-Session-Id": meta.get("session_id") or session_id}  # where the turn went (a side session?)
    if meta.get("recall_degraded"):
        headers["X-Recall-Degraded"] = "true"
    if meta.get("cache") in ("hit", "miss"):  # only for turns the semantic cache could answer
        headers["X-Cache"] = meta["cache"]
    return headers


def _estimated_input(meta: dict) -> int:
    return int((meta.get("prompt") or {}).get("tokens_sent") or 0)


async def _paced(events: AsyncIterator[TurnEvent]) -> AsyncIterator[TurnEvent | None]:
    """The turn's events, with None whenever PING_SECONDS pass without one (time for a `ping`)."""
    pending: asyncio.Future | None = None
    try:
        while True:
            pending = pending or asyncio.ensure_future(anext(events, None))
            done, _ = await asyncio.wait({pending}, timeout=PING_SECONDS)
            if not done:
                yield None
                continue
            event, pending = pending.result(), None
            if event is None:
                return
            yield event
    finally:
        if pending is not None:
            pending.cancel()


async def _next(paced: AsyncIterator[TurnEvent | None]) -> TurnEvent | None:
    """The next event; a turn refused (nothing to answer, session busy) reads as an error event."""
    try:
        return await anext(paced, _ended())
    except ApiError as exc:
        return TurnEvent("error", error=exc)


@router.post("/v1/messages", response_model=None)
async def create_message(body: MessagesRequest, request: Request, runtime: RuntimeDep):
    """Anthropic's Messages API (`?beta=true` too, as Claude Code calls it); `stream: true` answers with
    Anthropic's server-sent events. A non-streaming retry with the same `Idempotency-Key` is answered
    with the first response."""
    if body.stream:
        return await _respond(body, request, runtime)
    return await idempotent(runtime, request, lambda: _respond(body, request, runtime))


async def _respond(body: MessagesRequest, request: Request, runtime: Runtime):
    if body.max_tokens is None:
        raise ApiError(400, "max_tokens: Field required", param="max_tokens")
    turn = await turn_request(runtime, body, request, body.stream)
    message_id = f"msg_{uuid.uuid4().hex[:24]}"
    paced = _paced(runtime.turns.events(turn))
    first = await _next(paced)
    while first is None and not body.stream:  # nothing to stream pings to: wait for the reply
        first = await _next(paced)
    if first is not None:
        request.state.turn = first.meta  # for the request's log line
        if first.kind == "error":
            raise first.failure
    if not body.stream:
        assert first is not None  # a reply or an error always comes
        message = first.reply
        usage = fmt.usage_out(first.meta.get("usage"), _estimated_input(first.meta))
        return JSONResponse(fmt.message_out(message_id, body.model, message, usage),
                            headers=_headers(turn.session_id, first.meta))

    async def sse() -> AsyncIterator[str]:
        event, index, text_open = first, -1, False
        yield fmt.message_start(message_id, body.model, _estimated_input(event.meta) if event else 0)
        yield fmt.ping()
        while True:
            if event is None:
                yield fmt.ping()
            elif event.kind == "text":
                request.state.turn = event.meta
                if not text_open:
                    index, text_open = index + 1, True
                    yield fmt.block_start(index, {"type": "text", "text": ""})
                yield fmt.text_delta(index, event.text)
            elif event.kind == "error":
                request.state.turn = event.meta
                yield fmt.error_event(event.failure.anthropic_body())
                return
            else:
                request.state.turn = event.meta
                message = event.reply
                if not text_open and (message.text or not message.tool_calls):
                    index, text_open = index + 1, True
                    yield fmt.block_start(index, {"type": "text", "text": ""})
                    if message.text:
                        yield fmt.text_delta(index, message.text)
                if text_open:
                    yield fmt.block_stop(index)
                for block in fmt.tool_use_blocks(message):
                    index += 1
                    yield fmt.block_start(index, {**block, "input": {}})
                    yield fmt.input_json_delta(index, json.dumps(block["input"], ensure_ascii=False))
                    yield fmt.block_stop(index)
                yield fmt.message_delta(message, fmt.usage_out(event.meta.get("usage"), _estimated_input(event.meta)))
                yield fmt.message_stop()
                return
            event = await _next(paced)

    session_headers = _headers(turn.session_id, first.meta if first else {})
    return StreamingResponse(sse(), media_type="text/event-stream",
                             headers={**session_headers, "Cache-Control": "no-cache"})


@router.post("/v1/messages/count_tokens")
async def count_tokens(body: MessagesRequest, request: Request, runtime: RuntimeDep) -> dict[str, int]:
    """An estimate of the prompt this request would send to the inference node: the client's system
    prompt and tools as trimmed to fit the context, the session's recent turns, and recalled memory."""
    turn = await turn_request(runtime, body, request, stream=False)
    assembled = await preview(runtime, turn)
    return {"input_tokens": int(assembled["prompt_stats"]["tokens_sent"])}
