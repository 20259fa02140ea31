"""The web page at `/` in a real Chromium that cannot reach the internet, against the real service on the
scripted inference node: chat with streamed replies, reload, projects, rename/move/delete, the memory panel
(what recall put in a reply's prompt, entities, search), stop, an API-key-protected service, phone width."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fake_backend import default_responder
from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration

# Every distinct text the streaming reply showed, in order (installed before a message is sent).
WATCH_STREAM = """() => {
  window.__partials = [];
  new MutationObserver(() => {
    const body = document.querySelector('.message.assistant.streaming .body');
    const text = body && body.textContent;
    if (text && window.__partials.at(-1) !== text) window.__partials.push(text);
  }).observe(document.getElementById('messages'), {childList: true, subtree: true, characterData: true});
}"""


def expect(target):
    """Playwright's auto-waiting assertions (imported late: without Playwright the fixtures skip or fail first)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


@pytest.fixture
def api(browser_service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=browser_service.base_url, timeout=30) as client:
        yield client


def open_page(page, service: ServiceProcess) -> None:
    page.goto(service.base_url + "/", wait_until="networkidle")


def send(page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")


def no_page_errors(page) -> None:
    assert page.record.external == []
    assert [line for line in page.record.console if line.startswith(("error", "pageerror"))] == []


def test_a_reply_streams_in_renders_markdown_safely_and_is_there_after_a_reload(browser_service, browser_page,
                                                                                backend):
    page = browser_page
    open_page(page, browser_service)
    page.locator("#new-session").click()
    expect(page.locator("#session-bar")).to_be_visible()
    page.evaluate(WATCH_STREAM)
    backend.chunk_delay = 0.03  # pieces of 7 characters, so the page has time to show each
    try:
        send(page, "hello from the web page")
        reply = page.locator(".message.assistant").last
        expect(reply).to_contain_text("You said: hello from the web page")
    finally:
        backend.chunk_delay = 0.0
    partials = page.evaluate("window.__partials")
    final = "You said: hello from the web page"
    shown = [p for p in partials if p != "thinking…"]
    assert len(shown) >= 3 and all(final.startswith(p) for p in shown), partials  # it grew, piece by piece

    send(page, "**bold** and `code` and <img src=x onerror=alert(1)> [docs](http://127.0.0.1/docs)")
    reply = page.locator(".message.assistant").last
    expect(reply.locator("strong")).to_have_text("bold")
    expect(reply.locator("code")).to_have_text("code")
    expect(reply.locator("a")).to_have_attribute("href", "http://127.0.0.1/docs")
    assert reply.locator("img").count() == 0 and "<img src=x" in reply.inner_text()  # shown, never run

    send(page, "please read the file")  # the scripted node answers with a read_file call
    expect(page.locator(".message.assistant").last.locator(".tool-call")).to_contain_text('read_file({"path":')

    page.reload(wait_until="networkidle")
    expect(page.locator(".message.assistant").last.locator(".tool-call")).to_contain_text("src/main.py")
    expect(page.locator(".message.user")).to_have_count(3)
    expect(page.locator(".message.user .body").first).to_have_text("hello from the web page")
    expect(page.locator(".message.assistant").first).to_contain_text(final)
    # The session was named after its first exchange, and the list shows it.
    expect(page.locator("button.session.active")).to_contain_text("Talk about hello from the")
    no_page_errors(page)


def test_sessions_by_project_search_rename_move_and_delete(browser_service, browser_page, api):
    for project in ("alpha", "beta"):
        assert api.post("/projects", json={"id": project, "name": project.title()}).status_code == 201
    for sid, project in (("s-alpha", "alpha"), ("s-beta", "beta")):
        assert api.post("/sessions", json={"id": sid, "name": f"{project.title()} talk",
                                           "projectId": project}).status_code == 201
    page = browser_page
    open_page(page, browser_service)
    sessions = page.locator("#session-list")
    expect(sessions.locator(".group h3", has_text="Alpha")).to_be_visible()
    page.get_by_label("Project", exact=True).select_option(label="Beta")  # switch projects
    expect(sessions).to_contain_text("Beta talk")
    expect(sessions).not_to_contain_text("Alpha talk")
    page.get_by_label("Project", exact=True).select_option(label="All projects")
    page.get_by_label("Search sessions").fill("alph")
    expect(sessions.locator("button.session")).to_have_count(1)
    expect(sessions).to_contain_text("Alpha talk")
    page.get_by_label("Search sessions").fill("")

    sessions.get_by_role("button", name="Alpha talk").click()
    expect(page.locator("#session-name")).to_have_text("Alpha talk")
    page.once("dialog", lambda dialog: dialog.accept("Renamed talk"))
    page.get_by_role("button", name="Rename").click()
    expect(page.locator("#session-name")).to_have_text("Renamed talk")
    page.get_by_label("Move to project").select_option(label="Beta")
    expect(sessions.locator(".group", has_text="Beta").locator("button.session")).to_have_count(2)
    moved = api.get("/sessions/s-alpha").json()
    assert (moved["name"], moved["projectId"]) == ("Renamed talk", "beta")

    page.once("dialog", lambda dialog: dialog.dismiss())  # "Cancel" keeps it
    page.get_by_role("button", name="Delete").click()
    expect(page.locator("#session-name")).to_have_text("Renamed talk")
    assert api.get("/sessions/s-alpha").status_code == 200
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(sessions).not_to_contain_text("Renamed talk")
    expect(page.locator(".messages")).to_contain_text("Session deleted")
    assert api.get("/sessions/s-alpha").status_code == 404
    no_page_errors(page)


def test_the_memory_panel_shows_what_recall_gave_a_reply_and_edits_entities(browser_service, browser_page, api):
    assert api.post("/projects", json={"id": "home", "name": "Home"}).status_code == 201
    seeded = api.post("/chat", json={"sessionId": "home-earlier", "projectId": "home",
                                     "message": "The spare key is under the blue flower pot"})
    assert seeded.status_code == 200, seeded.text
    entity = api.post("/entities", json={"name": "Pixel", "type": "pet", "notes": "a grey cat", "projectId": "home"})
    assert entity.status_code == 201, entity.text

    page = browser_page
    open_page(page, browser_service)
    page.get_by_label("Project", exact=True).select_option(label="Home")
    page.locator("#new-session").click()
    expect(page.get_by_label("Move to project")).to_have_value("home")
    send(page, "Where is the spare key? Ask Pixel.")
    reply = page.locator(".message.assistant").last
    expect(reply).to_contain_text("You said: Where is the spare key?")
    reply.get_by_role("button", name="memory: 1 recalled episode").click()
    recall = page.locator("#recall")
    expect(recall.locator(".recalled-episode")).to_have_count(1)
    expect(recall.locator(".recalled-episode")).to_contain_text("blue flower pot")
    expect(recall.locator(".recalled-episode")).to_contain_text("from home-earlier")
    expect(recall.locator(".recalled-episode .why")).to_contain_text("words: rank 1")
    expect(recall).to_contain_text("summary not used")
    expect(recall).to_contain_text("Pixel (pet): a grey cat")
    expect(recall).not_to_contain_text("recall degraded")

    entity_id = entity.json()["id"]
    row = page.locator(f'#entities .entity[data-id="{entity_id}"]')
    expect(row).to_contain_text("a grey cat")
    row.get_by_role("button", name="Edit").click()
    row.get_by_label("Entity notes").fill("a black cat")
    row.get_by_role("button", name="Save").click()
    expect(page.locator("#entities")).to_contain_text("a black cat")
    stored = api.get("/entities", params={"projectId": "home"}).json()["entities"]
    assert [(e["name"], e["notes"]) for e in stored] == [("Pixel", "a black cat")]

    page.get_by_label("Memory search").fill("flower pot")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#memory-results")).to_contain_text("blue flower pot")
    no_page_errors(page)


def test_stop_cancels_the_turn_and_nothing_of_it_is_stored(browser_service, browser_page, backend, api):
    release = threading.Event()

    def held(body):
        reply = default_responder(body)
        if "tell me a long story" not in json.dumps(body.get("messages", [])[-1:]):
            return reply
        return {"content": reply, "hold": release}  # stalls half-way until released

    page = browser_page
    open_page(page, browser_service)
    page.locator("#new-session").click()
    expect(page.locator("#session-bar")).to_be_visible()
    session_id = page.evaluate("decodeURIComponent(location.hash.split('=')[1])")
    backend.responder = held
    try:
        send(page, "tell me a long story")
        expect(page.locator(".message.assistant.streaming")).to_contain_text("You said")  # half of it shown
        page.get_by_role("button", name="Stop").click()
        expect(page.locator(".message.assistant").last).to_contain_text("[stopped: this turn was not stored]")
        expect(page.get_by_role("button", name="Send")).to_be_visible()
        # The node's reply stays held until the service has cancelled the turn: released earlier, it could
        # complete first on a loaded machine, and a complete reply is kept by design.
        deadline = time.monotonic() + 20
        while 'outcome="cancelled"' not in api.get("/metrics").text and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        release.set()
        backend.responder = default_responder
    deadline = time.monotonic() + 20
    while api.get(f"/sessions/{session_id}/messages").json()["messages"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert api.get(f"/sessions/{session_id}/messages").json()["messages"] == []
    assert api.get(f"/sessions/{session_id}/turns").json()["turns"] == []
    no_page_errors(page)


def test_a_service_with_api_keys_asks_for_one_and_keeps_it_for_the_tab(backend, browser_page, tmp_path):
    env = {"INFERENCE_BASE_URL": backend.base_url, "API_KEYS": "web-secret"}
    (tmp_path / "keyed").mkdir()
    with ServiceProcess(tmp_path / "keyed", env) as service:
        page = browser_page
        open_page(page, service)
        dialog = page.locator("#key-dialog")
        expect(dialog).to_be_visible()
        page.get_by_label("API key").fill("not-the-key")
        page.get_by_role("button", name="Use this key").click()
        expect(dialog).to_contain_text("That key was refused")
        page.get_by_label("API key").fill("web-secret")
        page.get_by_role("button", name="Use this key").click()
        expect(dialog).to_be_hidden()
        page.locator("#new-session").click()
        send(page, "hello with a key")  # typed at once: it goes to the session being created, not a second one
        expect(page.locator(".message.assistant").last).to_contain_text("You said: hello with a key")
        sessions = httpx.get(service.base_url + "/sessions", headers={"Authorization": "Bearer web-secret"}).json()
        assert sessions["total"] == 1
        page.reload(wait_until="networkidle")  # the key is kept for the tab: not asked again
        expect(page.locator(".message.assistant").last).to_contain_text("You said: hello with a key")
        expect(dialog).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('orchestrator.apiKey')") == "web-secret"
    # The browser logs each 401 it was answered; nothing else may go wrong.
    assert page.record.external == []
    assert [line for line in page.record.console
            if line.startswith(("error", "pageerror")) and "401" not in line] == []


def test_errors_are_shown_in_words_and_the_page_fits_a_phone(browser_service, browser_page):
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(browser_service.base_url + "/#session=no-such-session", wait_until="networkidle")
    expect(page.locator("#error")).to_contain_text("No session 'no-such-session'")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
    expect(page.locator("#sessions")).to_be_hidden()  # a drawer on a phone
    page.get_by_role("button", name="Sessions", exact=True).click()
    expect(page.locator("#new-session")).to_be_visible()
    page.locator("#new-session").click()
    expect(page.locator("#sessions")).to_be_hidden()
    send(page, "hello from a phone")
    expect(page.locator(".message.assistant").last).to_contain_text("You said: hello from a phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
