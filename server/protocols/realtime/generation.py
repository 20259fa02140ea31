"""One reply in flight on a voice socket: its turn run through the shared turn engine (TurnRunner.events, the
same run as every other door's), its tokens sent as `response_delta` and whole sentences as `speak`, and how
much of it the user has heard (from `playback`), which is what a barge-in keeps."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, cast

from langchain_core.messages import AIMessage, HumanMessage

from nodes.recall import PREFETCH_KEY, RecallPrefetch
from server.errors import ApiError
from server.protocols.realtime import messages as msg
from server.turns.types import TurnEvent, TurnRequest

if TYPE_CHECKING:
    from server.protocols.realtime.voice import VoiceSocket


class Generation:
    """The answer to one user turn. Started at once; `task` ends when the reply is stored or failed, or is
    cancelled by a barge-in (the turn engine then cancels the run and the inference request with it)."""

    def __init__(self, voice: VoiceSocket, text: str, ended_at: float, prefetch: RecallPrefetch | None) -> None:
        self.voice = voice
        self.user = HumanMessage(text, id=f"in-{uuid.uuid4().hex}")
        self.ended_at = ended_at
        """perf_counter() when the user's turn ended (vad_end, silence, a typed turn): thinking starts."""
        self.prefetch = prefetch
        self.streamed = ""
        self.heard_chars = 0
        self.first_token_at: float | None = None
        self.completed = False
        """The reply was stored whole (a barge-in after this cuts the stored reply: TurnRunner.truncate_reply)."""
        self.reply_id: str | None = None
        """The stored reply's message id, once completed."""
        self.sentences = msg.Sentences()
        self.task = asyncio.create_task(self._run())

    def played(self, spoken_chars: int | None, played_ms: float | None, chars_per_second: float) -> None:
        """The speaker reports its progress: characters, or milliseconds at the configured speech rate."""
        if spoken_chars is not None:
            self.heard_chars = max(self.heard_chars, spoken_chars)
        elif played_ms is not None:
            self.heard_chars = max(self.heard_chars, int(played_ms * chars_per_second / 1000))

    def heard(self) -> str:
        """The part of the reply the user has heard: at most what was streamed."""
        return self.streamed[: self.heard_chars]

    def wholly_heard(self) -> bool:
        """The speaker has played all of the reply (so far)."""
        return self.heard_chars >= len(self.streamed)

    async def _run(self) -> None:
        voice = self.voice
        configurable: dict[str, Any] = {PREFETCH_KEY: self.prefetch} if self.prefetch is not None else {}
        request = TurnRequest(voice.session_id, [self.user], stream=True, project_id=voice.project_id,
                              owner=voice.owner, configurable=configurable)
        try:
            # Closed on cancel: the engine then cancels the run (and its inference request) and rolls it back.
            turn = cast(AsyncGenerator[TurnEvent, None], voice.runtime.turns.events(request))
            async with aclosing(turn) as events:
                async for event in events:
                    if event.kind == "text":
                        await self._token(event.text)
                    elif event.kind == "final":
                        await self._final(event)
                    else:
                        await self._failed(event.failure)
        except ApiError as exc:  # no turn at all (a 400, another key's session, a busy session)
            await self._failed(exc)
        await voice.generation_ended(self)

    async def _token(self, text: str) -> None:
        voice = self.voice
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
            voice.hub.thinking.observe(self.first_token_at - self.ended_at)
            await voice.set_state("SPEAKING")
        self.streamed += text
        await voice.emit({"type": "response_delta", "text": text})
        for sentence in self.sentences.feed(text):
            await voice.emit({"type": "speak", "text": sentence})

    async def _final(self, event: TurnEvent) -> None:
        self.completed = True
        reply: AIMessage = event.reply
        self.reply_id = reply.id
        now = time.perf_counter()
        if self.first_token_at is None:  # nothing streamed (a reply that is only tool calls): thinking ends now
            self.first_token_at = now
            self.streamed = reply.text
            for sentence in self.sentences.feed(reply.text):
                await self.voice.emit({"type": "speak", "text": sentence})
        for sentence in self.sentences.flush():
            await self.voice.emit({"type": "speak", "text": sentence})
        meta = event.meta
        frame: dict[str, Any] = {
            "type": "response_ready", "text": reply.text, "message_id": reply.id,
            "thinking_ms": round((self.first_token_at - self.ended_at) * 1000, 2),
            "timings": {"recall_ms": meta.get("recall_ms"), "inference_ms": meta.get("inference_ms"),
                        "total_ms": round((now - self.ended_at) * 1000, 2),
                        "speculative_recall": self.prefetch is not None},
        }
        if reply.tool_calls:
            frame["tool_calls"] = [{"id": c["id"], "name": c["name"], "arguments": c["args"]}
                                   for c in reply.tool_calls]
        await self.voice.emit(frame)

    async def _failed(self, error: ApiError) -> None:
        await self.voice.emit(msg.error(error.code or error.type, error.message))
