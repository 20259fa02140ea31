"""The state machine of one voice socket: IDLE → LISTENING (fragments) → THINKING (the user's turn ended) →
SPEAKING (tokens) → IDLE, and INTERRUPT when the user barges in.

Frames are handled one at a time (the silence timer takes the same lock); the reply runs in its own task
(generation.py), so a barge-in can arrive while it streams. A barge-in cancels the reply at once, waits for
the turn engine to roll the run back, and stores only what the user heard (TurnRunner.end_interrupted). A
reply already complete whose audio still plays (the client reports `playback` and has not played all of it)
is cut back the same way once stored (TurnRunner.truncate_reply).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from config.settings import Settings
from nodes.recall import RecallPrefetch
from server.protocols.realtime import messages as msg
from server.protocols.realtime.generation import Generation
from server.protocols.realtime.hub import RealtimeHub
from server.runtime import Runtime

log = logging.getLogger(__name__)
TAKEN_OVER = 4000
"""Close code of a socket whose session another connection took over."""


class VoiceSocket:
    """One client's voice session on one WebSocket."""

    def __init__(self, websocket: WebSocket, runtime: Runtime, hub: RealtimeHub, settings: Settings,
                 session_id: str, project_id: str | None, owner: str | None, scope: str) -> None:
        self.websocket = websocket
        self.runtime = runtime
        self.hub = hub
        self.settings = settings
        self.session_id = session_id
        self.project_id = project_id
        self.owner = owner
        self.scope = scope
        self.state = "IDLE"
        self.finals: list[str] = []
        self.partial = ""
        self.generation: Generation | None = None
        self.playing: Generation | None = None
        """The last reply, complete, that the speaker may still be playing (until `playback` covers it)."""
        self.reports_playback = False
        """The client sends `playback`: what it has not yet reported played, the user has not heard. A client
        that never does (text, a TTS without progress) is taken to have heard each complete reply whole."""
        self.prefetch: RecallPrefetch | None = None
        self.closed = False
        self._act = asyncio.Lock()
        self._send = asyncio.Lock()
        self._silence: asyncio.Task | None = None
        self._stable: asyncio.Task | None = None

    # -- output -------------------------------------------------------------------------------------------
    async def emit(self, frame: dict[str, Any]) -> None:
        """Send a frame; a socket that is gone drops it (the reader notices the close)."""
        if self.closed:
            return
        async with self._send:
            try:
                await self.websocket.send_json(frame)
            except Exception:  # the client left mid-send
                self.closed = True

    async def set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            await self.emit(msg.state(state))

    # -- input --------------------------------------------------------------------------------------------
    async def handle(self, raw: str) -> None:
        """One client frame."""
        try:
            frame = msg.parse_frame(raw)
            if frame.session_id not in (None, self.session_id):
                raise msg.FrameError("wrong_session", f"this socket serves session {self.session_id!r}, not "
                                     f"{frame.session_id!r}")
        except msg.FrameError as exc:
            await self.emit(msg.error(exc.code, exc.message))
            return
        async with self._act:
            if isinstance(frame, msg.SttFragment):
                await self._fragment(frame)
            elif isinstance(frame, msg.VadEnd):
                if frame.confidence < self.settings.vad_min_confidence:
                    return  # not sure the user stopped: still listening
                await self._end_turn()
            elif isinstance(frame, msg.TextTurn):
                await self._barge_in()
                self._forget_utterance()  # the typed turn supersedes anything half-spoken
                await self._answer(frame.text.strip(), time.perf_counter())
            elif isinstance(frame, msg.Playback):
                self.reports_playback = True
                target = self.generation or self.playing
                if target is not None:
                    target.played(frame.spoken_chars, frame.played_ms, self.settings.realtime_chars_per_second)
                if self.playing is not None and self.playing.wholly_heard():
                    self.playing = None  # all of it was played: a later barge-in has nothing to cut
            elif await self._barge_in():  # interrupt
                await self.set_state("LISTENING")

    async def _fragment(self, frame: msg.SttFragment) -> None:
        await self._barge_in()  # the user speaks over the reply
        if frame.is_final:
            if frame.text.strip():
                self.finals.append(frame.text.strip())
            self.partial = ""
        else:
            self.partial = frame.text.strip()
        await self.set_state("LISTENING")
        self._cancel(self._silence)
        if frame.is_final and self.settings.realtime_silence_timeout_ms:
            self._silence = asyncio.create_task(self._silence_ends_turn())
        self._speculate()

    def utterance(self) -> str:
        """What the user has said this turn: the finals, then the current partial."""
        return " ".join([*self.finals, *([self.partial] if self.partial else [])])

    async def _silence_ends_turn(self) -> None:
        await asyncio.sleep(self.settings.realtime_silence_timeout_ms / 1000)
        async with self._act:
            if self.state == "LISTENING" and not self.partial:
                await self._end_turn()

    async def _end_turn(self) -> None:
        """The user's turn ended (vad_end or silence): answer what they said."""
        ended_at = time.perf_counter()
        text = self.utterance()
        self._forget_utterance()
        if not text:  # a VAD end with nothing transcribed (or a repeated one): nothing to answer
            if self.generation is None:
                await self.set_state("IDLE")
            return
        await self._answer(text, ended_at)

    def _forget_utterance(self) -> None:
        self.finals, self.partial = [], ""
        self._cancel(self._silence)
        self._cancel(self._stable)

    async def _answer(self, text: str, ended_at: float) -> None:
        prefetch = self.prefetch if self.prefetch is not None and self.prefetch.query == text else None
        self.prefetch = None
        self.playing = None
        await self.set_state("THINKING")
        self.generation = Generation(self, text, ended_at, prefetch)

    # -- speculative recall -------------------------------------------------------------------------------
    def _speculate(self) -> None:
        """Recall starts on a transcript that has stayed the same for REALTIME_STABLE_MS, so most of it is done
        when the turn ends; the turn reuses it if the final utterance is the same text (nodes/recall.py)."""
        if not self.settings.realtime_speculative_recall:
            return
        self._cancel(self._stable)
        if self.settings.realtime_stable_ms:
            self._stable = asyncio.create_task(self._prefetch_when_stable(self.utterance()))
        else:
            self._prefetch(self.utterance())

    async def _prefetch_when_stable(self, text: str) -> None:
        await asyncio.sleep(self.settings.realtime_stable_ms / 1000)
        self._prefetch(text)

    def _prefetch(self, text: str) -> None:
        if text and (self.prefetch is None or self.prefetch.query != text):
            self.prefetch = RecallPrefetch.start(self.runtime.deps, self.scope, text)

    # -- barge-in -----------------------------------------------------------------------------------------
    async def _barge_in(self) -> bool:
        """Cut the reply in flight, or the complete one still playing, if any: True if there was one."""
        generation = self.generation or self._still_playing()
        self.generation = self.playing = None
        if generation is None:
            return False
        self.hub.barge_ins.inc()
        await self.set_state("INTERRUPT")
        await self._stop(generation)
        return True

    async def _stop(self, generation: Generation) -> None:
        """Cancel the generation (the run and its inference request with it) and keep what was heard."""
        if not generation.task.done():
            generation.task.cancel()
            await asyncio.wait({generation.task})
            self.hub.cancelled.inc()
        try:
            if not generation.completed:
                await self.runtime.turns.end_interrupted(self.session_id, generation.user, generation.heard())
            elif generation.reply_id and self.reports_playback and not generation.wholly_heard():
                await self.runtime.turns.truncate_reply(self.session_id, generation.reply_id, generation.heard())
        except Exception:
            log.exception("session %s: storing the heard part of an interrupted reply failed", self.session_id)
            await self.emit(msg.error("storage_error", "the interrupted reply could not be stored"))

    def _still_playing(self) -> Generation | None:
        """The complete reply the client has not reported played to the end (None if it does not report)."""
        playing = self.playing
        if playing is None or not self.reports_playback or playing.wholly_heard():
            return None
        return playing

    async def generation_ended(self, generation: Generation) -> None:
        """The reply is stored (or failed): back to IDLE, unless a newer turn has started."""
        if self.generation is generation:
            self.generation = None
            if generation.completed:
                self.playing = generation  # a barge-in while it still plays cuts it back to what was heard
            await self.set_state("IDLE")

    # -- end ----------------------------------------------------------------------------------------------
    async def take_over(self) -> None:
        """Another connection took this session: end the reply (keeping what was heard), close with a reason."""
        async with self._act:
            await self.emit(msg.error("taken_over", "another connection took over this session"))
            await self.shutdown()
            self.closed = True
            if self.websocket.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await self.websocket.close(TAKEN_OVER, "another connection took over this session")

    async def shutdown(self) -> None:
        """The socket is closing: timers stop, a reply in flight is cut (what was heard is kept)."""
        self._cancel(self._silence)
        self._cancel(self._stable)
        generation, self.generation, self.playing = self.generation, None, None
        if generation is not None:
            await self._stop(generation)

    @staticmethod
    def _cancel(task: asyncio.Task | None) -> None:
        if task is not None and task is not asyncio.current_task():
            task.cancel()
