"""The service's browser clients in a real Chromium that cannot reach the internet: the LangServe chat
playground (type a message, read the answer) and the API docs (Swagger UI at /docs)."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration


def expect(target):
    """Playwright's auto-waiting assertions (imported late: without Playwright the fixtures skip or fail first)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def operations(service: ServiceProcess) -> list[tuple[str, str]]:
    """(method, path) of every operation the OpenAPI document lists."""
    spec = httpx.get(service.base_url + "/openapi.json", timeout=30).json()
    return [(method, path) for path, item in spec["paths"].items() for method in item
            if method in ("get", "post", "put", "patch", "delete")]


# The conversation as shown, top to bottom (the page lays its messages out in reverse DOM order): [role, text].
TRANSCRIPT = """() => [...document.querySelectorAll('select')]
    .sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)
    .map(role => [role.value, role.closest('.group').querySelector('textarea').value])"""


def send(page, text: str, answer: str) -> list[list[str]]:
    """Type a message into the playground, send it, wait for `answer` to be the last message; the transcript."""
    box = page.get_by_placeholder("Send a message...")
    box.fill(text)
    with page.expect_response(lambda r: r.url.endswith("/stream_log") and r.request.method == "POST") as sent:
        box.press("Enter")
    assert sent.value.status == 200
    page.wait_for_function(f"(answer) => ({TRANSCRIPT})().at(-1)?.join(':') === 'ai:' + answer", arg=answer)
    page.wait_for_load_state("networkidle")  # the stream has closed: the page takes a new message again
    return page.evaluate(TRANSCRIPT)


def test_playground_chat_answers_what_is_typed_and_keeps_the_conversation(browser_service, browser_page, backend):
    page = browser_page
    # The page sends with the keys its schemas name: typing before they arrive posts `{"undefined": [...]}`.
    page.goto(browser_service.base_url + "/agent/playground/", wait_until="networkidle")
    first = send(page, "hello from the playground", "You said: hello from the playground")
    assert first == [["human", "hello from the playground"], ["ai", "You said: hello from the playground"]]

    second = send(page, "and now a second message", "You said: and now a second message")
    assert second[2:] == [["human", "and now a second message"], ["ai", "You said: and now a second message"]]
    assert "hello from the playground" in backend.turn_prompts()[-1]  # the earlier exchange went with it
    assert page.record.external == []
    assert [line for line in page.record.console if line.startswith(("error", "pageerror"))] == []


def test_docs_show_every_operation_without_the_internet(browser_service, browser_page):
    page = browser_page
    page.goto(browser_service.base_url + "/docs")
    listed = operations(browser_service)
    expect(page.locator('.opblock-summary-path[data-path="/v1/chat/completions"]').first).to_be_visible()
    expect(page.locator(".opblock")).to_have_count(len(listed))
    assert page.record.external == []
