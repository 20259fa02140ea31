"""`GET /orchestrate`: the WebSocket of realtime voice turns (seed 003), on the same turn engine, sessions and
memory as every other door."""

from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from memory.sessions import scope_of
from server.errors import ApiError
from server.protocols.realtime import messages as msg
from server.protocols.realtime.auth import PROTOCOL, check_access, offered_protocols
from server.protocols.realtime.hub import RealtimeHub
from server.protocols.realtime.voice import VoiceSocket
from server.runtime import Runtime
from server.storage_outage import refused_on_outage
from server.turns.access import check_reachable
from server.turns.session_ids import validate_session_id

router = APIRouter(tags=["realtime"])
POLICY_VIOLATION = 1008
TOO_BIG = 1009


async def _session_scope(runtime: Runtime, session_id: str, project_id: str | None, owner: str | None) -> str:
    """The memory scope the session's turns recall from (an existing session keeps its own project); 404 as
    ApiError for another key's session or project."""
    sessions = runtime.deps.sessions
    await asyncio.to_thread(check_reachable, sessions, session_id, project_id, owner)
    row = await asyncio.to_thread(sessions.get, session_id)
    if row is not None:
        return scope_of(row["project_id"], row.get("owner"))
    return scope_of(project_id, owner)


@router.websocket("/orchestrate")
async def orchestrate(websocket: WebSocket) -> None:
    """Voice turns: `stt_fragment`, `vad_end`, `text`, `playback` and `interrupt` frames in; `state`,
    `response_delta`, `speak`, `response_ready` and `error` frames out (README, "Realtime voice")."""
    settings = websocket.app.state.settings
    runtime: Runtime = websocket.app.state.runtime
    hub: RealtimeHub = websocket.app.state.realtime
    access = check_access(settings, websocket)
    await websocket.accept(subprotocol=PROTOCOL if PROTOCOL in offered_protocols(websocket) else None)
    if not access.allowed:
        await websocket.close(POLICY_VIOLATION, "missing or invalid API key (api_key query parameter or an "
                              "api-key.<key> subprotocol)")
        return
    params = websocket.query_params
    try:
        session_id = validate_session_id(params.get("session_id") or f"voice-{uuid.uuid4().hex[:16]}",
                                         "session_id")
        project_id = params.get("project_id") or None
        if project_id is not None:
            validate_session_id(project_id, "project_id")
        with refused_on_outage():  # the database down: an error frame saying so, not a dropped socket
            scope = await _session_scope(runtime, session_id, project_id, access.owner)
    except ApiError as exc:
        await websocket.send_json(msg.error(exc.code or exc.type, exc.message))
        await websocket.close(POLICY_VIOLATION, (exc.code or exc.type)[:120])
        return
    voice = VoiceSocket(websocket, runtime, hub, settings, session_id, project_id, access.owner, scope)
    await hub.attach(voice)
    try:
        await voice.emit({"type": "session", "session_id": session_id, "project_id": project_id})
        await voice.set_state("LISTENING")
        await _serve(websocket, voice, settings.realtime_max_frame_bytes)
    finally:
        hub.detach(voice)
        await voice.shutdown()


async def _serve(websocket: WebSocket, voice: VoiceSocket, max_bytes: int) -> None:
    """Read frames until the client leaves, is taken over, or sends one too big."""
    while not voice.closed:
        try:
            message = await websocket.receive()
        except (WebSocketDisconnect, RuntimeError):  # closed meanwhile (a takeover)
            return
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text")
        if raw is None:
            data = message.get("bytes") or b""
            if len(data) > max_bytes:
                raw = None
            else:
                try:
                    raw = data.decode("utf-8")
                except UnicodeDecodeError:
                    await voice.emit(msg.error("bad_json", "binary frames must be UTF-8 JSON"))
                    continue
        if raw is None or len(raw.encode("utf-8")) > max_bytes:
            voice.closed = True
            if websocket.application_state == WebSocketState.CONNECTED:
                await websocket.close(TOO_BIG, f"frame over {max_bytes} bytes (REALTIME_MAX_FRAME_BYTES)")
            return
        await voice.handle(raw)
