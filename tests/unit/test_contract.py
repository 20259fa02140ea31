"""The JSON contract parser: every shape a model may produce becomes text + tool calls, never an error."""

import json

import pytest

from graph.contract import contract_schema, parse_reply, render_reply
from graph.stream_text import ResponseTextExtractor

CALL = {"id": "call_1", "name": "read_file", "arguments": {"path": "src/main.py"}}
VALID = json.dumps({"assistant_response": "Reading it.", "tool_calls": [CALL]})


def test_valid_json():
    reply = parse_reply(VALID)
    assert reply.status == "ok"
    assert reply.text == "Reading it."
    assert reply.tool_calls == [{"id": "call_1", "name": "read_file", "args": {"path": "src/main.py"}}]


def test_fenced_json():
    reply = parse_reply(f"```json\n{VALID}\n```")
    assert (reply.status, reply.text, reply.tool_calls[0]["name"]) == ("repaired", "Reading it.", "read_file")


def test_prose_around_json():
    reply = parse_reply(f"Sure! Here you go: {VALID} Hope that helps.")
    assert reply.status == "repaired"
    assert reply.text == "Reading it."
    assert len(reply.tool_calls) == 1


def test_truncated_json_keeps_the_text_it_had():
    reply = parse_reply('{"assistant_response": "The answer is 4\\nand then some')
    assert reply.status == "truncated"
    assert reply.text == "The answer is 4\nand then some"
    assert reply.tool_calls == []


def test_wrong_types_are_coerced_or_dropped():
    raw = json.dumps({"assistant_response": 42, "tool_calls": [{"name": ""}, {"name": "ls", "arguments": "{\"a\": 1}"},
                                                                  "junk"]})
    reply = parse_reply(raw)
    assert reply.text == "42"
    assert [c["name"] for c in reply.tool_calls] == ["ls"]
    assert reply.tool_calls[0]["args"] == {"a": 1}
    assert reply.tool_calls[0]["id"].startswith("call_")
    assert reply.status == "repaired" and len(reply.problems) == 2


def test_tool_calls_not_a_list():
    reply = parse_reply(json.dumps({"assistant_response": "hi", "tool_calls": {"name": "x"}}))
    assert reply.text == "hi" and reply.tool_calls == [] and reply.problems


def test_native_tool_calls_are_accepted():
    native = [{"id": "call_9", "name": "grep", "args": {"pattern": "TODO"}}]
    reply = parse_reply("Searching.", native)
    assert reply.status == "native"
    assert reply.text == "Searching."
    assert reply.tool_calls == native


@pytest.mark.parametrize("raw", ["Just plain text.", "{not json", "", "[1, 2]", '{"other": 1}'])
def test_not_the_contract_falls_back_to_raw_text(raw):
    reply = parse_reply(raw)
    assert reply.status == "fallback"
    assert reply.text == raw.strip()
    assert reply.tool_calls == []


def test_render_round_trips():
    calls = [{"id": "c1", "name": "ls", "args": {"dir": "."}}]
    reply = parse_reply(render_reply("done", calls))
    assert reply.text == "done" and reply.tool_calls == calls


def test_schema_is_bounded():
    schema = contract_schema(100, 3)
    assert schema["properties"]["assistant_response"]["maxLength"] == 100
    assert schema["properties"]["tool_calls"]["maxItems"] == 3


def test_extractor_streams_only_the_response_text_char_by_char():
    raw = json.dumps({"assistant_response": 'Say "hi"\n\tthen \u00e9\U0001F600 \\ done', "tool_calls": [CALL]})
    extractor = ResponseTextExtractor()
    out = "".join(extractor.feed(ch) for ch in raw)
    assert out == 'Say "hi"\n\tthen \u00e9\U0001F600 \\ done'
    assert extractor.finished


def test_extractor_with_fence_and_prose_before():
    extractor = ResponseTextExtractor()
    chunks = ["Here:\n```json\n{\"assis", "tant_response\": \"Hel", "lo\", \"tool_calls\": []}\n```"]
    assert "".join(extractor.feed(c) for c in chunks) == "Hello"


def test_extractor_without_contract_yields_nothing():
    extractor = ResponseTextExtractor()
    assert extractor.feed("plain words") == "" and not extractor.started
