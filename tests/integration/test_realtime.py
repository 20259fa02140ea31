"""Realtime voice turns over `GET /orchestrate` (issue 19, seed 003), on the real service with the `websockets`
client and a slow scripted inference node: whole turns, barge-in that keeps only what was heard, takeover,
bad frames, auth, and one conversation shared with the OpenAI route."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.fake_backend import FakeBackend, default_responder
from tests.integration.realtime_client import is_state, of_type, open_voice, read_until, send, states, streamed
from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration
STORY = " ".join(f"Sentence number {i} is here." for i in range(40))  # ~1000 characters, ~150 pieces


LIGHTHOUSE = "The lighthouse keeper fed the gulls at dawn. Then a zeppelin dropped marmalade on Quibbleton."
LIGHTHOUSE_HEARD = LIGHTHOUSE[: LIGHTHOUSE.index(" Then")]  # the tail's words appear nowhere else


def story_responder(body: dict) -> str:
    """A long reply to "tell me a long story", a short one about the lighthouse; the scripted echo otherwise."""
    last = str((body.get("messages") or [{}])[-1].get("content"))
    if "long story" in last:
        return json.dumps({"assistant_response": STORY, "tool_calls": []})
    if last.endswith("the lighthouse"):
        return json.dumps({"assistant_response": LIGHTHOUSE, "tool_calls": []})
    return default_responder(body)


@pytest.fixture(scope="module")
def node():
    with FakeBackend(story_responder) as backend:
        backend.chunk_delay = 0.03  # a slow node: a long reply takes seconds, time enough to barge in
        yield backend


SETTINGS = {"REALTIME_SILENCE_TIMEOUT_MS": "3000", "REALTIME_STABLE_MS": "0", "VAD_MIN_CONFIDENCE": "0.5",
            "REALTIME_MAX_FRAME_BYTES": "4096"}


@pytest.fixture(scope="module")
def service(node, tmp_path_factory):
    env = {"INFERENCE_BASE_URL": node.base_url, **SETTINGS}
    with ServiceProcess(tmp_path_factory.mktemp("realtime"), env) as svc:
        yield svc


def session_id() -> str:
    return f"voice-{uuid.uuid4().hex[:10]}"


def history(service: ServiceProcess, session: str) -> list[dict]:
    """The session's stored messages (GET /sessions/{id}/messages waits for a turn in progress)."""
    reply = httpx.get(f"{service.base_url}/sessions/{session}/messages", timeout=30)
    return reply.json()["messages"] if reply.status_code == 200 else []


def wait_for(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"not true after {timeout} s")


def test_a_spoken_turn_partials_replace_finals_append(service):
    session = session_id()
    with open_voice(service.base_url, session) as ws:
        assert read_until(ws, is_state("LISTENING"))[0] == {"type": "session", "session_id": session,
                                                           "project_id": None}
        send(ws, {"type": "stt_fragment", "session_id": session, "text": "Hello there.", "is_final": True})
        send(ws, {"type": "stt_fragment", "session_id": session, "text": "book a", "is_final": False})
        send(ws, {"type": "stt_fragment", "session_id": session, "text": "book a flight", "is_final": False})
        send(ws, {"type": "vad_end", "session_id": session, "confidence": 0.95})
        send(ws, {"type": "vad_end", "session_id": session, "confidence": 0.95})  # a repeated one changes nothing
        frames = read_until(ws, is_state("IDLE"))
    ready = next(f for f in frames if f["type"] == "response_ready")
    assert ready["text"] == "You said: Hello there. book a flight"  # the second partial replaced the first
    assert streamed(frames) == ready["text"]
    assert " ".join(f["text"] for f in frames if f["type"] == "speak") == ready["text"]
    assert states(frames) == ["THINKING", "SPEAKING", "IDLE"]
    assert ready["thinking_ms"] > 0 and ready["timings"]["speculative_recall"] is True
    assert [(m["role"], m["content"]) for m in history(service, session)] == [
        ("user", "Hello there. book a flight"), ("assistant", "You said: Hello there. book a flight")]


def test_a_low_confidence_vad_end_is_ignored(service):
    session = session_id()
    with open_voice(service.base_url, session) as ws:
        send(ws, {"type": "stt_fragment", "text": "not done yet", "is_final": True})
        send(ws, {"type": "vad_end", "confidence": 0.2})  # not sure: still listening
        send(ws, {"type": "stt_fragment", "text": "now done", "is_final": True})
        send(ws, {"type": "vad_end", "confidence": 0.9})
        frames = read_until(ws, of_type("response_ready"))
    assert frames[-1]["text"] == "You said: not done yet now done"
    assert [f for f in frames if f["type"] == "response_ready"] == [frames[-1]]


def test_silence_after_a_final_fragment_ends_the_turn(service):
    session = session_id()
    with open_voice(service.base_url, session) as ws:
        send(ws, {"type": "stt_fragment", "text": "are you there", "is_final": True})
        frames = read_until(ws, of_type("response_ready"))  # no vad_end: REALTIME_SILENCE_TIMEOUT_MS ends it
    assert frames[-1]["text"] == "You said: are you there"
    assert "THINKING" in states(frames)


def test_a_typed_turn(service):
    session = session_id()
    with open_voice(service.base_url, session) as ws:
        send(ws, {"type": "text", "text": "typed hello"})
        frames = read_until(ws, is_state("IDLE"))
    ready = next(f for f in frames if f["type"] == "response_ready")
    assert ready["text"] == "You said: typed hello" and ready["timings"]["speculative_recall"] is False


@pytest.mark.parametrize(("playback", "chars"), [({"spoken_chars": 23}, 23),
                                                  ({"played_ms": 2000}, 30)])  # at REALTIME_CHARS_PER_SECOND=15
def test_barge_in_keeps_exactly_what_was_heard(service, node, playback, chars):
    session = session_id()
    aborted = node.aborted
    with open_voice(service.base_url, session) as ws:
        send(ws, {"type": "stt_fragment", "text": "tell me a long story", "is_final": True})
        send(ws, {"type": "vad_end", "confidence": 1.0})
        frames = _read_streamed(ws, 40)
        send(ws, {"type": "playback", **playback})
        send(ws, {"type": "interrupt"})
        after = read_until(ws, is_state("LISTENING"))
        assert states(after)[-2:] == ["INTERRUPT", "LISTENING"]
        # The generation is cancelled: the node sees its connection closed.
        wait_for(lambda: node.aborted > aborted)
        heard = streamed(frames + after)[:chars]
        assert heard == STORY[:chars]
        stored = history(service, session)
        assert [(m["role"], m["content"], m.get("interrupted")) for m in stored] == [
            ("user", "tell me a long story", None), ("assistant", heard, True)]
        assert not any(f["type"] == "response_ready" for f in frames + after)
        # The next turn answers normally, with the heard part in its context.
        send(ws, {"type": "text", "text": "hello again"})
        ready = read_until(ws, of_type("response_ready"))[-1]
    assert ready["text"] == "You said: hello again"
    assert heard in node.turn_prompts()[-1] and STORY[:60] not in node.turn_prompts()[-1]
    assert len(history(service, session)) == 4
    metrics = httpx.get(f"{service.base_url}/metrics", timeout=30).text
    assert _counter(metrics, "barge_ins_total") >= 1
    assert _counter(metrics, "cancelled_generations_total") >= 1
    assert _counter(metrics, "thinking_seconds_count") >= 1


def _read_streamed(ws, chars: int) -> list[dict]:
    """Frames until at least `chars` characters of the reply have streamed."""
    frames: list[dict] = []
    while len(streamed(frames)) < chars:
        frames += read_until(ws, of_type("response_delta"))
    return frames


def _counter(metrics: str, name: str) -> float:
    line = next(x for x in metrics.splitlines() if x.startswith(f"orchestrator_realtime_{name}"))
    return float(line.split()[-1])


def test_barge_in_before_anything_was_played_stores_nothing(service, node):
    session = session_id()
    aborted = node.aborted
    with open_voice(service.base_url, session) as ws:
        send(ws, {"type": "text", "text": "tell me a long story"})
        read_until(ws, of_type("response_delta"))
        send(ws, {"type": "stt_fragment", "text": "wait", "is_final": False})  # the user speaks over it
        after = read_until(ws, is_state("LISTENING"))
        assert "INTERRUPT" in states(after)
        wait_for(lambda: node.aborted > aborted)
        assert history(service, session) == []
        send(ws, {"type": "stt_fragment", "text": "wait stop", "is_final": True})
        send(ws, {"type": "vad_end", "confidence": 0.9})
        ready = read_until(ws, of_type("response_ready"))[-1]
    assert ready["text"] == "You said: wait stop"
    assert [m["content"] for m in history(service, session)] == ["wait stop", "You said: wait stop"]


def _complete_lighthouse_reply(ws) -> dict:
    """Ask for the lighthouse reply and wait until it is complete and stored (its audio still to play)."""
    send(ws, {"type": "text", "text": "tell me about the lighthouse"})
    frames = read_until(ws, is_state("IDLE"))
    ready = next(f for f in frames if f["type"] == "response_ready")
    assert ready["text"] == LIGHTHOUSE
    return ready


def memory_search(service: ServiceProcess, query: str) -> list[dict]:
    reply = httpx.post(f"{service.base_url}/memory/search", json={"query": query, "k": 50}, timeout=30)
    assert reply.status_code == 200
    return reply.json()["results"]


def test_a_barge_in_while_a_complete_reply_plays_keeps_what_was_heard(service, node):
    session = session_id()
    with open_voice(service.base_url, session) as ws:
        ready = _complete_lighthouse_reply(ws)
        send(ws, {"type": "playback", "spoken_chars": len(LIGHTHOUSE_HEARD)})
        send(ws, {"type": "interrupt"})
        assert states(read_until(ws, is_state("LISTENING"))) == ["INTERRUPT", "LISTENING"]
        stored = history(service, session)
        assert [(m["role"], m["content"], m.get("interrupted")) for m in stored] == [
            ("user", "tell me about the lighthouse", None), ("assistant", LIGHTHOUSE_HEARD, True)]
        assert stored[1]["id"] == ready["message_id"]  # the same message, cut back
        # Memory holds the heard words, and nothing of the tail (lexically or through its vector).
        heard_hits = [h for h in memory_search(service, "lighthouse keeper gulls") if h["sessionId"] == session]
        assert len(heard_hits) == 1 and heard_hits[0]["text"].endswith(f"Assistant: {LIGHTHOUSE_HEARD}")
        assert heard_hits[0]["scoreParts"]["lexical"] is not None
        tail_hits = memory_search(service, "zeppelin marmalade Quibbleton")
        assert all("zeppelin" not in h["text"] and h["scoreParts"]["lexical"] is None for h in tail_hits)
        # The episode was embedded again: the vector search finds it, with the heard text.
        wait_for(lambda: any(h["sessionId"] == session and h["scoreParts"]["vector"] is not None
                             for h in memory_search(service, "tell me about the lighthouse")))
        # The next turn's prompt carries the heard part only.
        send(ws, {"type": "text", "text": "and after that"})
        assert read_until(ws, of_type("response_ready"))[-1]["text"] == "You said: and after that"
    prompt = node.turn_prompts()[-1]
    assert LIGHTHOUSE_HEARD in prompt and "zeppelin" not in prompt
    assert [m["content"] for m in history(service, session)] == [
        "tell me about the lighthouse", LIGHTHOUSE_HEARD, "and after that", "You said: and after that"]


def test_a_complete_reply_nothing_of_which_was_played_is_taken_back(service):
    session = session_id()
    with open_voice(service.base_url, session) as ws:
        _complete_lighthouse_reply(ws)
        send(ws, {"type": "playback", "spoken_chars": 0})
        send(ws, {"type": "stt_fragment", "text": "hold on", "is_final": False})  # the user speaks over it
        assert "INTERRUPT" in states(read_until(ws, is_state("LISTENING")))
        assert history(service, session) == []
        assert not [h for h in memory_search(service, "lighthouse keeper gulls") if h["sessionId"] == session]
        info = httpx.get(f"{service.base_url}/sessions/{session}", timeout=30).json()
        assert (info["episodeCount"], info["turnCount"], info["messageCount"]) == (0, 0, 0)
        send(ws, {"type": "stt_fragment", "text": "hold on please", "is_final": True})
        send(ws, {"type": "vad_end", "confidence": 0.9})
        assert read_until(ws, of_type("response_ready"))[-1]["text"] == "You said: hold on please"
    assert [m["content"] for m in history(service, session)] == ["hold on please", "You said: hold on please"]


def test_a_client_that_reports_no_playback_keeps_complete_replies_whole(service):
    session = session_id()
    with open_voice(service.base_url, session) as ws:
        _complete_lighthouse_reply(ws)
        send(ws, {"type": "interrupt"})  # nothing in flight, and no playback to say what was heard
        send(ws, {"type": "text", "text": "next one"})
        assert read_until(ws, of_type("response_ready"))[-1]["text"] == "You said: next one"
    assert [m["content"] for m in history(service, session)][:2] == ["tell me about the lighthouse", LIGHTHOUSE]


def test_a_second_connection_takes_the_session_over(service):
    session = session_id()
    with open_voice(service.base_url, session) as first:
        read_until(first, is_state("LISTENING"))
        with open_voice(service.base_url, session) as second:
            read_until(second, is_state("LISTENING"))
            frames = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    frames += read_until(first, lambda f: True)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
            assert {"type": "error", "code": "taken_over",
                    "message": "another connection took over this session"} in frames
            health = httpx.get(f"{service.base_url}/health", timeout=30).json()
            assert health["realtime"]["active_sessions"] >= 1
            send(second, {"type": "text", "text": "still here"})
            assert read_until(second, of_type("response_ready"))[-1]["text"] == "You said: still here"
    wait_for(lambda: httpx.get(f"{service.base_url}/health", timeout=30).json()["realtime"]["active_sessions"] == 0)


def test_bad_frames_get_errors_and_the_socket_stays_open(service):
    with open_voice(service.base_url, session_id()) as ws:
        send_raw = ws.send
        send_raw("this is not json")
        assert read_until(ws, of_type("error"))[-1]["code"] == "bad_json"
        send(ws, {"type": "dance"})
        assert read_until(ws, of_type("error"))[-1]["code"] == "unknown_type"
        send(ws, {"type": "vad_end", "confidence": "very"})
        error = read_until(ws, of_type("error"))[-1]
        assert error["code"] == "invalid_frame" and "confidence" in error["message"]
        send(ws, {"type": "text", "text": "", "session_id": "someone-else"})
        assert read_until(ws, of_type("error"))[-1]["code"] in ("invalid_frame", "wrong_session")
        send(ws, {"type": "text", "text": "still fine"})
        assert read_until(ws, of_type("response_ready"))[-1]["text"] == "You said: still fine"
        send_raw(json.dumps({"type": "text", "text": "x" * 5000}))  # over REALTIME_MAX_FRAME_BYTES
        with pytest.raises(ConnectionClosed) as closed:
            read_until(ws, lambda f: False)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_memory_is_shared_with_the_openai_route(service, node):
    session = session_id()
    body = {"model": "m", "messages": [{"role": "user", "content": "My deploy target is fly.io."}]}
    reply = httpx.post(f"{service.base_url}/v1/chat/completions", json=body, headers={"X-Session-Id": session},
                       timeout=60)
    assert reply.status_code == 200
    with open_voice(service.base_url, session) as ws:
        send(ws, {"type": "text", "text": "where do I deploy"})
        assert read_until(ws, of_type("response_ready"))[-1]["text"] == "You said: where do I deploy"
    assert "fly.io" in node.turn_prompts()[-1]
    body = {"model": "m", "messages": [{"role": "user", "content": "and again"}]}
    httpx.post(f"{service.base_url}/v1/chat/completions", json=body, headers={"X-Session-Id": session}, timeout=60)
    assert "where do I deploy" in node.turn_prompts()[-1]
    assert [m["content"] for m in history(service, session)][::2] == [
        "My deploy target is fly.io.", "where do I deploy", "and again"]


def test_api_keys(node, tmp_path):
    env = {"INFERENCE_BASE_URL": node.base_url, "API_KEYS": "key1,key2", "API_KEY_SCOPED_SESSIONS": "true",
           **SETTINGS}
    with ServiceProcess(tmp_path, env) as svc:
        for params in ({}, {"api_key": "wrong"}):
            with open_voice(svc.base_url, session_id(), **params) as ws, pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=30)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        mine = session_id()
        with open_voice(svc.base_url, mine, api_key="key2") as ws:
            send(ws, {"type": "text", "text": "with a key"})
            assert read_until(ws, of_type("response_ready"))[-1]["text"] == "You said: with a key"
        # API_KEY_SCOPED_SESSIONS: another key cannot reach that session.
        with open_voice(svc.base_url, mine, api_key="key1") as ws:
            assert json.loads(ws.recv(timeout=30))["code"] == "session_not_found"
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        # Browsers cannot set headers: the key as a subprotocol token, and the server answers "realtime".
        with open_voice(svc.base_url, session_id(), subprotocols=["realtime", "api-key.key1"]) as ws:
            assert ws.subprotocol == "realtime"
            send(ws, {"type": "text", "text": "from a browser"})
            assert read_until(ws, of_type("response_ready"))[-1]["text"] == "You said: from a browser"
