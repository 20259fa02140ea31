"""Drive the real service in a real browser: Debian's Chromium through Playwright, offline.

Never a downloaded browser: Playwright launches `/usr/bin/chromium` (the Makefile's test step installs it with
apt where it is missing). Every request that would leave the machine is aborted and recorded, so a page that
needs the internet fails here as it does for a user without one. The fixtures that use this live in
`tests/integration/conftest.py`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.integration.servers import unavailable

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
# No sandbox (CI runs as root), no GPU, and none of Chromium's own calls home (updates, sync, field trials).
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright `Browser`), closed on exit."""
    if not CHROMIUM.exists():
        unavailable(f"Chromium at {CHROMIUM} (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the `playwright` package (the dev extra)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageRecord:
    """What a page did besides rendering: requests refused for leaving the machine, console errors."""

    external: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def dump(self, path: Path) -> None:
        path.write_text("external requests (aborted):\n" + "\n".join(self.external)
                        + "\n\nconsole:\n" + "\n".join(self.console) + "\n")


@contextmanager
def offline_page(browser: Any, timeout_ms: float = 60_000) -> Iterator[tuple[Any, PageRecord]]:
    """A fresh context and page that may only reach this machine; the record of what it tried."""
    record = PageRecord()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(timeout_ms)

    def route(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).hostname not in LOCAL_HOSTS:
            record.external.append(url)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda msg: record.console.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: record.console.append(f"pageerror: {exc}"))
    try:
        yield page, record
    finally:
        context.close()
