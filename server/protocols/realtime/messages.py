"""The frames of `GET /orchestrate`: what a client may send (validated), and what the server sends back.

Client frames are JSON text objects told apart by `type`; a frame that is not JSON, names no known type or
breaks its schema is answered with an `error` frame (the socket stays open).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients (seed 003's) add fields of their own


class SttFragment(_Frame):
    """A piece of transcript: a partial replaces the previous partial, a final is appended to the utterance."""

    type: Literal["stt_fragment"]
    session_id: str | None = None
    text: str = Field(max_length=20_000)
    is_final: bool = False
    timestamp: float | None = None


class VadEnd(_Frame):
    """The voice-activity detector says the user stopped; ignored below VAD_MIN_CONFIDENCE."""

    type: Literal["vad_end"]
    session_id: str | None = None
    confidence: float = Field(1.0, ge=0, le=1)


class TextTurn(_Frame):
    """A typed turn: answered at once, no VAD."""

    type: Literal["text"]
    session_id: str | None = None
    text: str = Field(min_length=1, max_length=100_000, pattern=r"\S")


class Playback(_Frame):
    """How much of the answer the speaker has played: characters, or milliseconds of speech."""

    type: Literal["playback"]
    session_id: str | None = None
    spoken_chars: int | None = Field(None, ge=0)
    played_ms: float | None = Field(None, ge=0)


class Interrupt(_Frame):
    """Explicit barge-in."""

    type: Literal["interrupt"]
    session_id: str | None = None


ClientFrame = Annotated[SttFragment | VadEnd | TextTurn | Playback | Interrupt, Field(discriminator="type")]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(ClientFrame)
KNOWN_TYPES = ("stt_fragment", "vad_end", "text", "playback", "interrupt")


class FrameError(Exception):
    """A client frame the server cannot act on: answered with `{"type": "error", "code", "message"}`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_frame(raw: str) -> SttFragment | VadEnd | TextTurn | Playback | Interrupt:
    """The client frame in `raw`, or FrameError (bad_json, unknown_type, invalid_frame)."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise FrameError("bad_json", f"the frame is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FrameError("bad_json", "a frame is a JSON object with a `type`")
    kind = data.get("type")
    if kind not in KNOWN_TYPES:
        raise FrameError("unknown_type", f"unknown frame type {kind!r}; known: {', '.join(KNOWN_TYPES)}")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'frame'}: {e['msg']}" for e in exc.errors())
        raise FrameError("invalid_frame", f"invalid {kind} frame: {problems}") from None


def state(name: str) -> dict[str, Any]:
    """IDLE, LISTENING, THINKING, SPEAKING or INTERRUPT: sent on every transition."""
    return {"type": "state", "state": name}


def error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


class Sentences:
    """Cuts streamed text into whole sentences for `speak` frames (a TTS engine cannot speak half a word)."""

    ENDS = ".!?…。！？\n"

    def __init__(self) -> None:
        self.pending = ""

    def feed(self, text: str) -> list[str]:
        """The sentences `text` completes: each ends with a terminator followed by whitespace, or a newline."""
        self.pending += text
        out: list[str] = []
        start = 0
        for i, ch in enumerate(self.pending):
            if ch in self.ENDS and (ch == "\n" or (i + 1 < len(self.pending) and self.pending[i + 1].isspace())):
                sentence = self.pending[start : i + 1].strip()
                if sentence:
                    out.append(sentence)
                start = i + 1
        self.pending = self.pending[start:]
        return out

    def flush(self) -> list[str]:
        """What is left when the reply ends."""
        rest, self.pending = self.pending.strip(), ""
        return [rest] if rest else []
