"""Fixtures shared by the integration tests."""

import pytest

from tests.fake_backend import FakeBackend


@pytest.fixture(scope="module")
def backend():
    """A scripted OpenAI-compatible inference node on 127.0.0.1, one per test module."""
    with FakeBackend() as node:
        yield node
