"""Realtime voice pieces that need no server: the client frames, the sentence cutter, and what the turn engine
stores for a reply cut short (TurnRunner.end_interrupted) over a real checkpointer and memory."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import HumanMessage

from graph.config import DEFAULT_SCOPE
from server.protocols.realtime.messages import FrameError, Interrupt, Playback, Sentences, SttFragment, parse_frame
from server.turns.runner import TurnRequest, TurnRunner
from tests.fakes import FakeChatModel, contract
from tests.unit.test_graph import cfg


def test_frames_parse_by_type_and_bad_ones_say_why():
    fragment = parse_frame('{"type": "stt_fragment", "text": "hi", "is_final": true, "extra": 1}')
    assert isinstance(fragment, SttFragment) and fragment.is_final and fragment.text == "hi"
    assert isinstance(parse_frame('{"type": "interrupt"}'), Interrupt)
    assert parse_frame('{"type": "playback", "played_ms": 1500}') == Playback(type="playback", played_ms=1500)
    for raw, code in (("nope", "bad_json"), ("[1]", "bad_json"), ('{"type": "sing"}', "unknown_type"),
                      ('{"text": "no type"}', "unknown_type"),
                      ('{"type": "vad_end", "confidence": 2}', "invalid_frame"),
                      ('{"type": "text", "text": ""}', "invalid_frame"),
                      ('{"type": "text", "text": " "}', "invalid_frame"),
                      ('{"type": "playback", "spoken_chars": -1}', "invalid_frame")):
        with pytest.raises(FrameError) as err:
            parse_frame(raw)
        assert err.value.code == code, raw


def test_sentences_are_cut_where_they_end_and_the_rest_flushed():
    cut = Sentences()
    assert cut.feed("Hello th") == []
    assert cut.feed("ere. How are") == ["Hello there."]
    assert cut.feed(" you? Fine") == ["How are you?"]
    assert cut.feed(" 3.5 times") == []  # a dot inside a number ends nothing
    assert cut.flush() == ["Fine 3.5 times"] and cut.flush() == []


@pytest.mark.anyio
async def test_an_interrupted_turn_keeps_what_was_heard_as_memory(settings, compiled):  # noqa: F811
    model = FakeChatModel([contract("first reply"), contract("Paris is lovely")])
    deps, graph = await compiled(model)
    await asyncio.to_thread(deps.sessions.create, "voice", "named", None)  # no naming call takes a reply
    runner = TurnRunner(graph, deps)
    [e async for e in runner.events(TurnRequest("voice", [HumanMessage("first")]))]
    user = HumanMessage("tell me about the blue lagoon", id="in-cut")
    reply = await runner.end_interrupted("voice", user, "The blue lagoon is")
    assert reply is not None and reply.response_metadata == {"interrupted": True}
    messages = (await graph.aget_state(cfg("voice"))).values["messages"]
    assert [m.text for m in messages] == ["first", "first reply", "tell me about the blue lagoon",
                                          "The blue lagoon is"]
    hits = await asyncio.to_thread(deps.episodes.search, DEFAULT_SCOPE, "blue lagoon", 5)
    assert [h.ai_msg_id for h in hits] == [reply.id]  # committed: recall finds it
    assert (await asyncio.to_thread(deps.sessions.get, "voice"))["turn_count"] == 2
    # Nothing heard: nothing stored; a turn already stored whole is left as it is.
    assert await runner.end_interrupted("voice", HumanMessage("again", id="in-2"), "") is None
    assert await runner.end_interrupted("voice", user, "The blue") is None
    assert len((await graph.aget_state(cfg("voice"))).values["messages"]) == 4
    # The next turn sees the heard part as the assistant's last words.
    [e async for e in runner.events(TurnRequest("voice", [HumanMessage("and Paris?")]))]
    await runner.drain()
    assert "The blue lagoon is" in model.prompt_text(-1)
