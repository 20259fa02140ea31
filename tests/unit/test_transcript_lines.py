"""The lines an import reads: both body forms, line numbers of bad lines, stable ids, episodes as turns make them."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from server.turns.importer import exchanges
from server.turns.transcript_lines import LineError, message_id, parse, timestamp_of


def test_openai_form_and_jsonl_give_the_same_messages():
    messages = [{"role": "user", "content": "hi", "name": "Ann", "timestamp": "2023-05-08T13:56:00Z"},
                {"role": "assistant", "content": "hello", "timestamp": 1683554200}]
    as_json = parse(json.dumps({"messages": messages}, indent=2))
    as_jsonl = parse("\n".join(json.dumps(m) for m in messages) + "\n\n")
    assert as_json.messages == as_jsonl.messages
    assert [timestamp_of(m, 0.0) for m in as_json.messages] == [1683554160.0, 1683554200.0]
    assert as_json.messages[0].name == "Ann"


def test_export_records_are_read_beside_the_messages():
    text = "\n".join(json.dumps(x) for x in (
        {"type": "session", "id": "s", "summary": "they met"}, {"type": "message", "role": "user", "content": "a"},
        {"type": "entity", "name": "Lyon", "entityType": "place", "notes": "a city"}))
    transcript = parse(text)
    assert transcript.session is not None and transcript.session.summary == "they met"
    assert [e.name for e in transcript.entities] == ["Lyon"] and len(transcript.messages) == 1


@pytest.mark.parametrize(("bad", "why"), [("{not json", "not JSON"), ('{"role": "narrator", "content": "x"}', "role"),
                                          ('{"role": "user"}', "content"), ("[1]", "not a JSON object"),
                                          ('{"type": {}, "content": "x"}', "unknown type"),
                                          ('{"role": "user", "content": "x", "timestamp": "yesterday"}', "timestamp")])
def test_a_bad_line_is_named_by_its_number(bad, why):
    lines = [json.dumps({"role": "user", "content": f"m{i}"}) for i in range(30)]
    lines[16] = bad
    with pytest.raises(LineError) as caught:
        parse("\n".join(lines))
    assert caught.value.line == 17 and str(caught.value).startswith("line 17:") and why in str(caught.value)


def test_a_bad_message_of_the_json_form_is_named_by_its_place():
    with pytest.raises(LineError, match="^message 2:"):
        parse(json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]}))


def test_derived_ids_are_stable_and_tell_places_apart():
    m = parse('{"role": "user", "content": "same"}\n{"role": "user", "content": "same"}').messages
    assert message_id(m[0], 0) == message_id(m[0], 0) != message_id(m[1], 1)
    assert message_id(m[0].model_copy(update={"id": "mine"}), 0) == "mine"


def test_exchanges_pair_user_messages_with_the_reply_that_follows():
    msgs = [(HumanMessage("a", id="1"), 10.0), (HumanMessage("b", id="2"), 11.0), (AIMessage("c", id="3"), 12.0),
            (AIMessage("d", id="4"), 13.0), (HumanMessage("e", id="5"), 14.0)]
    got = [(e.user_text, e.assistant_text, e.user_msg_id, e.ai_msg_id, e.created_at)
           for e in exchanges("s", "default", msgs)]
    assert got == [("a\nb", "c", "1", "3", 10.0), ("", "d", None, "4", 13.0), ("e", "", "5", "5", 14.0)]
