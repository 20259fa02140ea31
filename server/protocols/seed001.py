"""Seed 001's chat routes: `POST /chat` and `POST /chat/stream` (`data: {"text"}` … `data: {"done"}`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from langchain_core.messages import AIMessage, HumanMessage

from server.api.schemas import ChatRequest
from server.deps import RuntimeDep
from server.idempotency import idempotent
from server.runtime import Runtime
from server.turns.session_ids import request_owner
from server.turns.types import TurnEvent, TurnRequest

router = APIRouter(tags=["chat"])


def _turn(body, request: Request, stream: bool) -> TurnRequest:
    configurable = {"model": body.model} if body.model else {}
    return TurnRequest(body.sessionId, [HumanMessage(body.message)], configurable=configurable, stream=stream,
                       project_id=body.projectId, owner=request_owner(request))


def token_count(message: AIMessage, usage: dict | None) -> int:
    """Tokens of the reply as the inference node counted them (an estimate when it did not say)."""
    if usage and usage.get("output_tokens"):
        return int(usage["output_tokens"])
    return max(1, len(message.text) // 4) if message.text else 0


async def _first(runtime: Runtime, turn: TurnRequest) -> tuple[AsyncIterator[TurnEvent], TurnEvent]:
    events = runtime.turns.events(turn)
    first = await anext(events)
    if first.kind == "error":
        raise first.failure
    return events, first


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


@router.post("/chat", response_model=None)
async def chat(body: ChatRequest, request: Request, runtime: RuntimeDep) -> Response:
    """One turn; the session (and project) are created on first use. `Idempotency-Key` makes retries safe."""
    return await idempotent(runtime, request, lambda: _chat(body, request, runtime))


async def _chat(body: ChatRequest, request: Request, runtime: Runtime) -> JSONResponse:
    _, final = await _first(runtime, _turn(body, request, stream=False))
    request.state.turn = final.meta
    message = final.reply
    return JSONResponse({
        "sessionId": body.sessionId,
        "response": message.text,
        "toolCalls": [{"id": c["id"], "name": c["name"], "arguments": c["args"]} for c in message.tool_calls],
        "model": body.model or runtime.settings.inference_model,
        "tokenCount": token_count(message, final.meta.get("usage")),
    })


@router.post("/chat/stream")
async def chat_stream(body: ChatRequest, request: Request, runtime: RuntimeDep) -> StreamingResponse:
    """The same turn as server-sent events; the episode is stored before the `done` event."""
    events, first = await _first(runtime, _turn(body, request, stream=True))
    request.state.turn = first.meta
    model = body.model or runtime.settings.inference_model

    async def stream() -> AsyncIterator[str]:
        event = first
        while event is not None:
            if event.kind == "text":
                yield _sse({"text": event.text})
            elif event.kind == "error":
                yield _sse({"error": event.failure.message})
                return
            else:
                message = event.reply
                if message.tool_calls:
                    calls = [{"id": c["id"], "name": c["name"], "arguments": c["args"]} for c in message.tool_calls]
                    yield _sse({"toolCalls": calls})
                yield _sse({"done": True, "model": model, "tokenCount": token_count(message, event.meta.get("usage"))})
                return
            event = await anext(events, None)  # type: ignore[arg-type]  # None: the events ended

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Session-Id": body.sessionId})
