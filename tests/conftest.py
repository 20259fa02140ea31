"""Shared fixtures: real temporary stores, settings that never read the developer's `.env`."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings
from tests.fake_backend import FakeBackend


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on temporary directories, pointed at a port nothing listens on."""
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        chroma_dir=tmp_path / "chroma",
        inference_base_url="http://127.0.0.1:9/v1",
        inference_max_retries=0,
    )


@pytest.fixture(scope="module")
def backend():
    """A scripted OpenAI-compatible inference node on 127.0.0.1, one per test module."""
    with FakeBackend() as node:
        yield node
