"""Take docs/web-page.png: the web page against the real service on the scripted test node, in Debian's Chromium.

    PYTHONPATH=. .venv/bin/python docs/web_page_screenshot.py

A project with an earlier session holding a fact, a new session that asks about it, and the memory panel open on
the reply's recall. Not a test: the browser tests are in tests/integration/test_web_page.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx

from tests.fake_backend import FakeBackend
from tests.integration import browser
from tests.integration.servers import ServiceProcess

OUT = Path(__file__).parent / "web-page.png"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, FakeBackend() as node, \
            ServiceProcess(Path(tmp), {"INFERENCE_BASE_URL": node.base_url}) as service:
        api = httpx.Client(base_url=service.base_url, timeout=30)
        api.post("/projects", json={"id": "garden", "name": "Garden"})
        api.post("/projects", json={"id": "work", "name": "Work"})
        api.post("/chat", json={"sessionId": "keys", "projectId": "garden",
                                "message": "The spare key is under the blue flower pot"})
        api.post("/chat", json={"sessionId": "deploy", "projectId": "work", "message": "We deploy with `make ship`"})
        api.post("/entities", json={"name": "Pixel", "type": "pet", "notes": "a grey cat who guards the shed",
                                    "projectId": "garden"})
        with browser.chromium() as chromium, browser.offline_page(chromium) as (page, _):
            page.set_viewport_size({"width": 1280, "height": 760})
            page.goto(service.base_url + "/", wait_until="networkidle")
            page.get_by_label("Project", exact=True).select_option(label="Garden")
            page.locator("#new-session").click()
            page.get_by_label("Message").fill("Where is the spare key? **Pixel** may know.")
            page.get_by_label("Message").press("Enter")
            page.get_by_role("button", name="memory: 1 recalled episode").click()
            page.wait_for_timeout(1600)  # the session's name arrives just after its first reply
            page.screenshot(path=str(OUT))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
