"""`GET /sessions/{id}/turns` and `GET /sessions/{id}/turns/{n}/recall`: what recall put in each turn's prompt.

A turn is one run of the graph that ended in a stored reply (one episode); `n` counts a session's turns from 1
in the order they were stored, and `messageId` is the reply's id as `GET /sessions/{id}/messages` shows it, so
a client can match the records to the messages it shows. The records are kept with the episodes
(memory/turn_recalls.py): they outlive the checkpoint's recent window and restarts, and go with the session.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from memory import turn_recalls
from server.api.schemas import ScorePartsPublic, iso
from server.api.sessions import get_session_or_404
from server.deps import OwnerDep, RuntimeDep
from server.errors import ApiError

router = APIRouter(prefix="/sessions", tags=["sessions"])


class RecalledEpisodePublic(BaseModel):
    """An earlier exchange recall found for the turn."""

    id: str | None
    sessionId: str | None = Field(description="The session it was said in (this one or another of the scope).")
    text: str = Field(description="The episode as it went into the prompt.")
    score: float | None = Field(description="Fused rank score, as in POST /memory/search.")
    scoreParts: ScorePartsPublic | None
    inPrompt: bool = Field(description="False when the prompt's token budget left it out.")


class RecalledEntityPublic(BaseModel):
    """A known entity recall placed in the prompt."""

    id: str | None = None
    name: str | None = None
    type: str | None = None
    score: float | None = Field(default=None, description="Similarity to the message; 1.0 when it names it.")
    text: str
    inPrompt: bool


class TurnRecallPublic(BaseModel):
    """What recall put in one turn's prompt."""

    episodes: list[RecalledEpisodePublic]
    entities: list[RecalledEntityPublic]
    summaryUsed: bool = Field(description="Whether the rolling summary was in the prompt.")
    degraded: bool = Field(description="The vector store or the embedder failed: lexical and recent turns only.")
    error: str | None = Field(description="Why recall was degraded.")


class TurnPublic(BaseModel):
    """One stored turn of a session."""

    turn: int = Field(description="1-based, in the order the session's turns were stored.")
    messageId: str | None = Field(description="The reply's message id (GET /sessions/{id}/messages).")
    userMessageId: str | None
    createdAt: str | None
    recall: TurnRecallPublic | None = Field(description="null for turns stored before records were kept.")


class SessionTurns(BaseModel):
    sessionId: str
    turns: list[TurnPublic]


def turn_public(row: dict[str, Any]) -> TurnPublic:
    record = row["record"]
    return TurnPublic(turn=row["turn"], messageId=row["messageId"], userMessageId=row["userMessageId"],
                      createdAt=iso(row["createdAt"]),
                      recall=TurnRecallPublic.model_validate(record) if record is not None else None)


@router.get("/{session_id}/turns")
async def list_turns(session_id: str, runtime: RuntimeDep, owner: OwnerDep) -> SessionTurns:
    """Every stored turn of the session, oldest first, each with what recall put in its prompt."""
    await get_session_or_404(runtime, session_id, owner)
    rows = await asyncio.to_thread(turn_recalls.session_turns, runtime.deps.episodes.db, session_id)
    return SessionTurns(sessionId=session_id, turns=[turn_public(r) for r in rows])


@router.get("/{session_id}/turns/{n}/recall")
async def get_turn_recall(session_id: str, n: Annotated[int, Path(ge=1, le=2**31)], runtime: RuntimeDep,
                          owner: OwnerDep) -> TurnPublic:
    """The session's `n`th turn (1 = its first) with what recall put in its prompt: the episodes with their
    scores, the entities, whether the summary was used and whether recall was degraded."""
    await get_session_or_404(runtime, session_id, owner)
    rows = await asyncio.to_thread(turn_recalls.session_turns, runtime.deps.episodes.db, session_id)
    if n > len(rows):
        raise ApiError(404, f"Session '{session_id}' has {len(rows)} stored turn(s); there is no turn {n}.",
                       param="n")
    return turn_public(rows[n - 1])
