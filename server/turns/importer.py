"""Importing a conversation as if its turns had happened here, and exporting one as the lines import reads.

An import makes no inference call. It stores what a turn stores, in the turn's order (server/turns/commit.py):
the episodes are written uncommitted (one transaction), the messages go into the session's checkpoint through
the compiled graph (`aupdate_state` as the graph's last node, so no node is left to run), then the episodes are
committed and counted on the session in one transaction. A failure before the commit discards them; a crash
between the two is settled by start-up repair like a turn's. Messages already stored (by id) are skipped, so a
retried import stores nothing twice. Embedding is the indexer's (batches of 64); the import waits for it so
that what it imported is recalled as soon as it answers. The summary is not recomputed: the next turn's
summarise folds the history as usual (the imported one is kept if the file carries one).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from memory.episodes import Episode
from memory.sessions import SessionStore, scope_of
from server.turns.access import open_session
from server.turns.runner import TurnRunner
from server.turns.transcript_lines import ImportedMessage, Transcript, iso, message_id, timestamp_of

AS_NODE = "summarise"
"""The graph's last node: a checkpoint written as it has nothing left to run (persist would route onwards)."""


@dataclass
class ImportResult:
    """What an import stored."""

    session_id: str
    project_id: str | None
    imported: int = 0
    skipped: int = 0
    episodes: int = 0
    entities: int = 0
    message_ids: list[str] = field(default_factory=list)


def to_message(message: ImportedMessage, msg_id: str, ts: float) -> BaseMessage:
    """The checkpoint's message: the speaker in `name`, the time in `additional_kwargs["timestamp"]`."""
    kind = HumanMessage if message.role == "user" else AIMessage
    return kind(content=message.content, id=msg_id, name=message.name, additional_kwargs={"timestamp": iso(ts)})


def exchanges(session_id: str, scope: str, messages: list[tuple[BaseMessage, float]]) -> list[Episode]:
    """Episodes as turns make them: the user messages since the last reply, then the reply; dated by the
    exchange's first message. Trailing user messages without a reply are an episode too (their last id stands
    where a reply's would: start-up repair keeps the episode if the checkpoint holds that message)."""
    out: list[Episode] = []
    pending: list[tuple[BaseMessage, float]] = []

    def close(reply: tuple[BaseMessage, float] | None) -> None:
        first = pending[0] if pending else reply
        assert first is not None
        last = reply or pending[-1]
        out.append(Episode(session_id=session_id, scope=scope,
                           user_text="\n".join(m.text for m, _ in pending),
                           assistant_text=reply[0].text if reply else "",
                           user_msg_id=pending[0][0].id if pending else None, ai_msg_id=last[0].id,
                           created_at=first[1],
                           speakers=(pending[0][0].name if pending else None, reply[0].name if reply else None)))
        pending.clear()

    for item in messages:
        if isinstance(item[0], AIMessage):
            close(item)
        else:
            pending.append(item)
    if pending:
        close(None)
    return out


async def import_transcript(runner: TurnRunner, session_id: str, project_id: str | None, owner: str | None,
                            transcript: Transcript, ordinal_base: int = 0) -> ImportResult:
    """Store the transcript's messages (those not yet stored) in the session, opened on first use in
    `project_id`. `ordinal_base` is the first message's place in its file (ids derived from a place)."""
    deps, now = runner.deps, time.time()
    async with runner.exclusive(session_id):
        session = await asyncio.to_thread(open_session, deps.sessions, session_id, project_id, owner)
        scope = scope_of(session["project_id"], session.get("owner"))
        result = ImportResult(session_id, session["project_id"])
        config: Any = {"configurable": {"thread_id": session_id}}
        state = await runner.graph.aget_state(config)
        held = {m.id for m in state.values.get("messages", [])}
        held |= await asyncio.to_thread(deps.episodes.message_ids, session_id)
        fresh: list[tuple[BaseMessage, float]] = []
        for i, message in enumerate(transcript.messages):
            msg_id = message_id(message, ordinal_base + i)
            result.message_ids.append(msg_id)
            if msg_id in held:
                result.skipped += 1
                continue
            held.add(msg_id)
            ts = timestamp_of(message, now)
            fresh.append((to_message(message, msg_id, ts), ts))
        update: dict[str, Any] = {}
        if fresh:
            update["messages"] = [m for m, _ in fresh]
        if transcript.session and transcript.session.summary and not state.values.get("summary"):
            update["summary"] = transcript.session.summary
        episodes = exchanges(session_id, scope, fresh)
        if update:
            await asyncio.to_thread(deps.episodes.add_uncommitted, episodes)
            try:
                await runner.graph.aupdate_state(config, update, as_node=AS_NODE)
            except BaseException:
                await asyncio.to_thread(deps.episodes.discard_uncommitted, session_id)
                raise
            last = max((ts for _, ts in fresh), default=now)
            await asyncio.to_thread(deps.episodes.commit_session, session_id, None,
                                    lambda conn, n: SessionStore.count_turns(conn, session_id, n, max(last, now)))
        for entity in transcript.entities:
            await asyncio.to_thread(deps.admin.upsert_entity, scope, entity.name, entity.entityType, entity.notes,
                                    session_id)
    result.imported, result.episodes, result.entities = len(fresh), len(episodes), len(transcript.entities)
    if episodes:
        deps.indexer.schedule()
        await deps.indexer.drain()  # recalled by vector too once the import answers
    return result


async def export_session(runner: TurnRunner, row: dict) -> list[dict[str, Any]]:
    """The session as import reads it: a `session` line (with the summary), its messages with their times
    (those the summary folded out of the checkpoint come back from their episodes, oldest first), its
    entities."""
    session_id = row["id"]
    state = await runner.settled_state(session_id)
    stored = await asyncio.to_thread(runner.deps.episodes.for_session, session_id, 1_000_000)
    ids = await asyncio.to_thread(runner.deps.episodes.replies, session_id)
    messages: list[BaseMessage] = state.values.get("messages", [])
    held = {m.id for m in messages}
    when: dict[str, float] = {}
    lines: list[dict[str, Any]] = [{"type": "session", "id": session_id, "name": row.get("name"),
                                    "projectId": row.get("project_id"), "summary": state.values.get("summary")}]
    for episode in stored:
        user_id, assistant_text = ids.get(episode.ai_msg_id, (None, ""))
        for msg_id in (user_id, episode.ai_msg_id):
            if msg_id:
                when[msg_id] = episode.created_at
        if episode.ai_msg_id in held or user_id in held:
            continue
        if episode.user_text:
            lines.append({"type": "message", "id": user_id, "role": "user", "content": episode.user_text,
                          "timestamp": iso(episode.created_at)})
        if assistant_text:
            lines.append({"type": "message", "id": episode.ai_msg_id, "role": "assistant",
                          "content": assistant_text, "timestamp": iso(episode.created_at)})
    for message in messages:
        if message.type not in ("human", "ai"):
            continue  # tool results and system prompts are a turn's machinery, not the conversation
        line: dict[str, Any] = {"type": "message", "id": message.id,
                                "role": "user" if message.type == "human" else "assistant", "content": message.text}
        if message.name:
            line["name"] = message.name
        stamp = message.additional_kwargs.get("timestamp") or (iso(when[message.id]) if message.id in when
                                                               else None)
        if stamp:
            line["timestamp"] = stamp
        lines.append(line)
    for entity in await asyncio.to_thread(runner.deps.entities.of_session, session_id):
        lines.append({"type": "entity", "name": entity.name, "entityType": entity.type, "notes": entity.notes})
    return lines
