"""`POST /v1/chat/completions` (and `/stream`): OpenAI clients, with memory."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from server.deps import RuntimeDep
from server.idempotency import idempotent
from server.protocols.openai import format as fmt
from server.protocols.openai.schemas import ChatCompletionRequest
from server.runtime import Runtime
from server.turns.session_ids import derive_session_id, project_from_headers, request_owner, session_from_headers
from server.turns.types import TurnEvent, TurnRequest

router = APIRouter(tags=["openai"])


def _turn_request(body: ChatCompletionRequest, request: Request, stream: bool) -> TurnRequest:
    system = body.system_text()
    conversation = body.conversation()
    owner = request_owner(request)
    session_id = session_from_headers(request.headers)
    if session_id is None:
        session_id = derive_session_id(system, conversation, owner)
    tools = [t.model_dump(exclude_none=True) for t in body.tools or []]
    return TurnRequest(session_id, conversation, system, tools, body.configurable(), stream,
                       project_id=project_from_headers(request.headers), owner=owner)


def _headers(session_id: str, meta: dict) -> dict[str, str]:
    headers = {"X-Session-Id": session_id}
    if meta.get("recall_degraded"):
        headers["X-Recall-Degraded"] = "true"
    if meta.get("cache") in ("hit", "miss"):  # only for turns the semantic cache could answer
        headers["X-Cache"] = meta["cache"]
    return headers


async def _first_event(runtime: Runtime, turn: TurnRequest) -> tuple[AsyncIterator[TurnEvent], TurnEvent]:
    events = runtime.turns.events(turn)
    return events, await anext(events)


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request, runtime: RuntimeDep):
    """OpenAI chat completion; `stream: true` answers with `chat.completion.chunk` server-sent events.
    With an `Idempotency-Key`, a retried non-streaming request gets the first response back."""
    if body.stream:
        return await _complete(body, request, runtime, stream=True)
    return await idempotent(runtime, request, lambda: _complete(body, request, runtime, stream=False))


@router.post("/v1/chat/completions/stream", response_model=None)
async def chat_completions_stream(body: ChatCompletionRequest, request: Request, runtime: RuntimeDep):
    """The same, always streaming (seed 000's route)."""
    return await _complete(body, request, runtime, stream=True)


async def _complete(body: ChatCompletionRequest, request: Request, runtime: Runtime, stream: bool):
    turn = _turn_request(body, request, stream)
    model = body.model or runtime.settings.inference_model
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    events, first = await _first_event(runtime, turn)
    request.state.turn = first.meta  # timings and tokens for the request's log line (filled as the run goes)
    if first.kind == "error":
        raise first.failure
    if not stream:
        message = first.reply
        return JSONResponse(fmt.completion(completion_id, model, message, first.meta.get("usage")),
                            headers=_headers(turn.session_id, first.meta))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    async def sse() -> AsyncIterator[str]:
        event: TurnEvent | None = first
        yield fmt.sse(fmt.chunk(completion_id, model, {"role": "assistant", "content": ""}))
        while event is not None:
            if event.kind == "text":
                yield fmt.sse(fmt.chunk(completion_id, model, {"content": event.text}))
            elif event.kind == "error":
                err = event.failure
                yield fmt.sse(err.body())
                break
            else:
                message = event.reply
                if message.tool_calls:
                    calls = [{"index": i, **c} for i, c in enumerate(fmt.tool_calls_out(message))]
                    yield fmt.sse(fmt.chunk(completion_id, model, {"tool_calls": calls}))
                yield fmt.sse(fmt.chunk(completion_id, model, {}, fmt.finish_reason(message)))
                if include_usage:
                    usage = event.meta.get("usage") or {}
                    yield fmt.sse(fmt.chunk(completion_id, model, {}, usage=usage, choices=False))
                break
            event = await anext(events, None)
        yield fmt.sse("[DONE]")

    # Headers go out before the run ends: recall has already run by the first event.
    return StreamingResponse(sse(), media_type="text/event-stream",
                             headers={**_headers(turn.session_id, first.meta), "Cache-Control": "no-cache"})
