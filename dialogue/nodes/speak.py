"""speak: the next participant's turn, generated from its own view of the conversation."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig

from dialogue.deps import DialogueDeps
from dialogue.state import DialogueState, Turn
from dialogue.view import speaker_index, speaker_view
from graph.contract import parse_reply
from inference.backends import CircuitOpenError


def failure_reason(exc: BaseException, endpoint: str) -> str:
    """What failed, naming the participant's node."""
    if isinstance(exc, CircuitOpenError):
        return f"circuit open for {endpoint} after repeated failures (retry in {exc.retry_after:.0f} s)"
    return f"{endpoint} failed: {type(exc).__name__}: {exc}"


def unwrap_contract(text: str) -> str:
    """The reply's text. A node used to the chat graph's JSON contract may answer in it out of habit (or be
    constrained to it): its `assistant_response` is the turn. Only replies that name the field are parsed,
    so a turn that merely quotes some JSON stays as it is."""
    return parse_reply(text).text if '"assistant_response"' in text else text


def make_speak(deps: DialogueDeps):
    """Build the speak node."""

    async def speak(state: DialogueState, config: RunnableConfig) -> dict[str, Any]:
        """Generate one turn. A failure of the node (after its retries, or with its circuit open) ends the
        dialogue with the reason instead of raising: the checkpoint then says why it stopped."""
        turns = state.get("turns") or []
        participants = state["participants"]
        participant = participants[speaker_index(turns)]
        messages = speaker_view(state["topic"], participants, turns, deps.rules.end_signal)
        try:
            reply = await deps.models.generate(participant, messages)
        except Exception as exc:
            endpoint = deps.models.endpoint(participant)
            return {"ending_reason": "error", "error": f"{participant['name']}: {failure_reason(exc, endpoint)}"}
        text, signalled = deps.rules.strip_signal(unwrap_contract(reply.text))
        if not text:
            return {"ending_reason": "empty_reply", "end_signalled": signalled}
        turn = Turn(speaker=participant["name"], text=text, tokens=reply.tokens, latency_ms=reply.latency_ms)
        return {"turns": [turn], "end_signalled": signalled}

    return speak
