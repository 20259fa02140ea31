"""Voice mode of the web page in a real Chromium, against the real service's `GET /orchestrate`: a spoken
question gets a spoken answer, talking over the answer barges in (only what was heard is kept), and a browser
without speech recognition or synthesis shows the toggle disabled with the reason.

Headless Chromium has no microphone and no speaker, so `fake_speech.js` replaces the browser's two device
APIs (SpeechRecognition emits the phrases a test says; speechSynthesis "speaks" word by word and records it);
the page's code, the WebSocket and the service are real."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fake_backend import default_responder
from tests.integration.servers import ServiceProcess
from tests.integration.test_web_page import expect, no_page_errors, open_page

pytestmark = pytest.mark.integration
FAKE_SPEECH = Path(__file__).with_name("fake_speech.js")
STORY = " ".join(f"Sentence number {i} is here." for i in range(40))  # ~1000 characters, ~150 streamed pieces
# Every state the voice badge showed, in order.
WATCH_STATES = """() => {
  window.__states = [];
  new MutationObserver(() => window.__states.push(document.getElementById('voice-state').textContent))
    .observe(document.getElementById('voice-state'), {childList: true, characterData: true, subtree: true});
}"""


def story_responder(body: dict) -> str:
    """A long reply to "tell me a long story"; the scripted echo otherwise."""
    last = str((body.get("messages") or [{}])[-1].get("content"))
    if "long story" in last:
        return json.dumps({"assistant_response": STORY, "tool_calls": []})
    return default_responder(body)


@pytest.fixture
def api(browser_service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=browser_service.base_url, timeout=30) as client:
        yield client


def start_voice(page, service) -> str:
    """Open the page on a new session and turn voice mode on; the session's id."""
    page.add_init_script(path=str(FAKE_SPEECH))
    open_page(page, service)
    page.locator("#new-session").click()
    expect(page.locator("#session-bar")).to_be_visible()
    page.evaluate(WATCH_STATES)
    voice = page.get_by_role("button", name="Voice")
    expect(voice).to_be_enabled()
    voice.click()
    expect(voice).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_label("Voice state")).to_have_text("listening")
    page.wait_for_function("window.__speech.listening")
    return page.evaluate("decodeURIComponent(location.hash.split('=')[1])")


def stored(api: httpx.Client, session: str) -> list[tuple]:
    messages = api.get(f"/sessions/{session}/messages").json()["messages"]
    return [(m["role"], m["content"], m.get("interrupted")) for m in messages]


def test_a_spoken_question_gets_a_spoken_answer(browser_service, browser_page, api):
    page = browser_page
    session = start_voice(page, browser_service)
    page.evaluate("__say('what is the weather like')")
    answer = "You said: what is the weather like"
    expect(page.locator(".message.user .body").last).to_have_text("what is the weather like")
    page.wait_for_function(f"__speech.spoken.some(r => r.ended && r.text === {json.dumps(answer)})")
    expect(page.locator(".message.assistant").last).to_contain_text(answer)
    assert [r["text"] for r in page.evaluate("__speech.spoken")] == [answer]  # spoken once, whole
    assert stored(api, session) == [("user", "what is the weather like", None), ("assistant", answer, None)]
    # The conversation is reloaded once the turn is stored: the reply gets its memory link like a typed one.
    expect(page.locator(".message.assistant").last.locator(".show-recall")).to_be_visible()
    expect(page.get_by_label("Voice state")).to_have_text("idle")
    states = page.evaluate("window.__states")
    assert states.index("thinking") < states.index("speaking") < states.index("idle"), states

    page.get_by_role("button", name="Voice").click()  # off: the microphone stops
    expect(page.get_by_role("button", name="Voice")).to_have_attribute("aria-pressed", "false")
    page.wait_for_function("!window.__speech.listening")
    expect(page.locator("#error")).to_be_hidden()
    no_page_errors(page)


def test_speaking_over_the_answer_barges_in_and_only_what_was_heard_is_kept(browser_service, browser_page,
                                                                           backend, api):
    page = browser_page
    session = start_voice(page, browser_service)
    backend.responder = story_responder
    backend.chunk_delay = 0.03  # a slow node: the story streams for seconds, time enough to talk over it
    try:
        page.evaluate("__say('tell me a long story')")
        # The second sentence is being spoken, the node is still generating: the user talks over it.
        page.wait_for_function("__speech.spoken.some(r => r.text.startsWith('Sentence number 1 '))")
        page.evaluate("__say('wait stop')")
        answer = "You said: wait stop"
        page.wait_for_function(f"__speech.spoken.some(r => r.ended && r.text === {json.dumps(answer)})")
        expect(page.get_by_label("Voice state")).to_have_text("idle")
    finally:
        backend.responder = default_responder
        backend.chunk_delay = 0.0
    spoken = page.evaluate("__speech.spoken")
    told = [i for i, r in enumerate(spoken) if r["text"] in STORY]
    last = spoken[told[-1]]
    heard = STORY[: STORY.index(last["text"]) + len(last["spoken"])]
    assert 0 < len(heard) < len(STORY) and len(told) < 40
    # The speaker stopped: no sentence of the story was spoken after the barge-in, and it was cut.
    assert told == list(range(len(told))) and spoken[len(told)]["text"] == answer, spoken
    assert page.evaluate("__speech.cancels") >= 1
    assert stored(api, session) == [("user", "tell me a long story", None), ("assistant", heard, True),
                                    ("user", "wait stop", None), ("assistant", answer, None)]
    first = page.locator(".message.assistant").first
    expect(first).to_contain_text("[interrupted: only what was heard is kept]")
    assert "Sentence number 39" not in first.inner_text()
    expect(page.locator(".message.assistant").last).to_contain_text(answer)
    assert "interrupted" in page.evaluate("window.__states")
    no_page_errors(page)


@pytest.mark.parametrize(("remove", "reason"), [
    ("['SpeechRecognition', 'webkitSpeechRecognition']", "needs speech recognition"),
    ("['speechSynthesis']", "needs speech synthesis"),
])
def test_a_browser_without_speech_apis_shows_the_toggle_disabled_and_why(browser_service, browser_page,
                                                                          remove, reason):
    page = browser_page
    page.add_init_script(f"for (const name of {remove}) "
                         "Object.defineProperty(window, name, {value: undefined, configurable: true});")
    open_page(page, browser_service)
    voice = page.get_by_role("button", name="Voice")
    expect(voice).to_be_disabled()
    assert reason in (voice.get_attribute("title") or "")
    expect(page.locator("#voice-note")).to_contain_text(f"Voice mode {reason}")
    no_page_errors(page)


def test_voice_mode_on_a_service_with_api_keys_sends_the_tabs_key(backend, browser_page, tmp_path):
    env = {"INFERENCE_BASE_URL": backend.base_url, "API_KEYS": "voice-secret"}
    (tmp_path / "keyed").mkdir()
    with ServiceProcess(tmp_path / "keyed", env) as service:
        page = browser_page
        page.add_init_script("sessionStorage.setItem('orchestrator.apiKey', 'voice-secret')")  # given once before
        session = start_voice(page, service)  # the socket opens only with the key (an api-key.<key> subprotocol)
        page.evaluate("__say('hello with a key')")
        page.wait_for_function("__speech.spoken.some(r => r.ended && r.text === 'You said: hello with a key')")
        messages = httpx.get(f"{service.base_url}/sessions/{session}/messages",
                             headers={"Authorization": "Bearer voice-secret"}).json()["messages"]
        assert [m["content"] for m in messages] == ["hello with a key", "You said: hello with a key"]
        expect(page.locator("#error")).to_be_hidden()
        no_page_errors(page)
