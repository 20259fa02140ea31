"""Fixtures for browser tests: the real service on the scripted inference node, and an offline Chromium page.

    def test_docs(browser_service, browser_page):
        browser_page.goto(browser_service.base_url + "/docs")

On failure, a screenshot and the page's record (aborted external requests, console) are saved in the
test's tmp dir, and their paths printed with the failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration import browser
from tests.integration.servers import ServiceProcess

REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    """Keep each phase's report on the item, so a fixture's teardown knows whether the test failed."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Any]:
    """A headless Debian Chromium per test module (a page per test). Not per session: while Playwright's sync
    API is open, its event loop owns the thread and every later anyio test fails to start its own."""
    with browser.chromium() as instance:
        yield instance


@pytest.fixture(scope="module")
def browser_service(backend, tmp_path_factory) -> Iterator[ServiceProcess]:
    """The real service (`python -m server`) on 127.0.0.1, answering through the scripted inference node."""
    with ServiceProcess(tmp_path_factory.mktemp("browser"), {"INFERENCE_BASE_URL": backend.base_url}) as svc:
        yield svc


@pytest.fixture
def browser_page(chromium_browser, request: pytest.FixtureRequest, tmp_path) -> Iterator[Any]:
    """A Playwright page that can reach only this machine; `browser_page.record` says what else it tried."""
    with browser.offline_page(chromium_browser) as (page, record):
        page.record = record
        yield page
        reports = request.node.stash.get(REPORTS, {})
        if any(r.failed for r in reports.values()):
            shot, log = tmp_path / "failure.png", tmp_path / "failure-page.txt"
            page.screenshot(path=str(shot), full_page=True)
            record.dump(log)
            print(f"browser failure: screenshot {shot}, page record {log}")
