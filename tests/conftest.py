"""Shared fixtures: real temporary stores, settings that never read the developer's `.env`."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from config.settings import Settings
from graph.builder import build_graph
from graph.wiring import build_deps
from tests.fake_backend import FakeBackend


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


PROFILES = ["embedded", "postgres"]
"""The storage profiles: the tests of a module that sets `STORAGE_PROFILES = True` and take `settings` (or
whose service takes `storage_env`) run on both: the SQLite files and embedded Chroma, then a fresh Postgres
database and the Chroma server."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if getattr(metafunc.module, "STORAGE_PROFILES", False) and "settings" in metafunc.fixturenames:
        metafunc.parametrize("settings", PROFILES, indirect=True)


@pytest.fixture
def settings(request, tmp_path: Path) -> Settings:
    """Settings on temporary directories, pointed at a port nothing listens on; on the embedded profile unless
    the test is parametrised with PROFILES."""
    shared = {}
    if getattr(request, "param", "embedded") == "postgres":
        shared = shared_storage(request)
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        chroma_dir=tmp_path / "chroma",
        inference_base_url="http://127.0.0.1:9/v1",
        inference_max_retries=0,
        **shared,
    )


def shared_storage(request) -> dict[str, str]:
    """A fresh Postgres database and an emptied Chroma server, as settings."""
    server = request.getfixturevalue("chroma_server")
    server.reset()
    return {"database_url": request.getfixturevalue("postgres").database(), "chroma_url": server.url}


@pytest.fixture(scope="module", params=PROFILES)
def storage_env(request) -> dict[str, str]:
    """The environment of a real service (tests/integration) on each profile, one module run per profile."""
    if request.param == "embedded":
        return {}
    return {key.upper(): value for key, value in shared_storage(request).items()}


@pytest.fixture(scope="module")
def backend():
    """A scripted OpenAI-compatible inference node on 127.0.0.1, one per test module."""
    with FakeBackend() as node:
        yield node


@pytest.fixture
async def compiled(settings):
    """A factory of (deps, compiled graph) over one temp SQLite checkpointer, closed afterwards."""
    conns, opened = [], []

    async def make(model):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        deps = build_deps(settings, model)
        opened.append(deps)
        conn = await aiosqlite.connect(settings.data_dir / "checkpoints.db")
        conns.append(conn)
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        return deps, build_graph(deps).compile(checkpointer=saver)

    yield make
    for conn in conns:
        await conn.close()
    for deps in opened:
        deps.vectors.close()


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster for the whole run (tests/engines.py); `postgres.database()` gives each
    test its own empty database."""
    from tests.engines import PostgresCluster, postgres_bin
    from tests.integration.servers import unavailable

    if postgres_bin() is None:
        unavailable("the PostgreSQL server (apt-get install postgresql)")
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """`chroma run` on a free port for the whole run (tests/engines.py)."""
    from tests.engines import ChromaServer

    with ChromaServer(tmp_path_factory.mktemp("chroma-server")) as server:
        yield server


@pytest.fixture(scope="session")
def embedder():
    """The packaged MiniLM, loaded once for the whole run (tests that wrap its `_encode` put it back)."""
    from memory.embedder import Embedder

    model = Embedder()
    model.load()
    return model


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    """A fresh empty `Database` of each dialect: a temp SQLite file, then a new database on the session's
    PostgreSQL cluster. A store test that takes this fixture runs on both profiles."""
    from memory.db import SqliteDatabase
    from memory.pg import PgDatabase

    if request.param == "sqlite":
        db = SqliteDatabase(tmp_path / "memory.db")
    else:
        db = PgDatabase(request.getfixturevalue("postgres").database(), max_size=4)
    yield db
    db.close()


@pytest.fixture(params=["embedded", "server"])
def vector_store(request, tmp_path):
    """An empty vector index of each kind: the embedded one (a child process over a temp CHROMA_DIR), then the
    session's Chroma server's (emptied first). A test that takes this fixture runs on both."""
    from memory.remote_vectors import RemoteVectors
    from memory.vector_process import VectorIndex

    if request.param == "embedded":
        vectors = VectorIndex(tmp_path / "chroma")
    else:
        server = request.getfixturevalue("chroma_server")
        server.reset()
        vectors = RemoteVectors(server.url)
    yield vectors
    vectors.close()
