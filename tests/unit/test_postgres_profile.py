"""The Postgres profile's wiring: DATABASE_URL (a fresh database of the test cluster) opens the memory database
on Postgres, its absence the SQLite file in DATA_DIR; a Postgres that is not there stops the start clearly."""

from __future__ import annotations

import pytest

from config.settings import Settings
from graph.wiring import open_database, redacted
from inference.processes import free_port
from memory.db import SqliteDatabase
from memory.pg import PgDatabase


@pytest.fixture
def pg_settings(settings: Settings, postgres) -> Settings:
    return settings.model_copy(update={"database_url": postgres.database(), "database_pool_size": 4})


def test_database_url_chooses_postgres_and_its_absence_sqlite(settings, pg_settings):
    db = open_database(pg_settings)
    try:
        assert isinstance(db, PgDatabase) and db.dialect == "postgres" and db.pool.max_size == 4
    finally:
        db.close()
    db = open_database(settings)
    try:
        assert isinstance(db, SqliteDatabase) and db.path == str(settings.memory_path)
    finally:
        db.close()


def test_a_postgres_that_is_not_there_stops_the_start_naming_it_without_its_password(settings):
    url = f"postgresql://app:s3cret@127.0.0.1:{free_port()}/memory"  # nothing listens there
    with pytest.raises(RuntimeError) as failed:
        open_database(settings.model_copy(update={"database_url": url}), timeout=1.0)
    message = str(failed.value)
    assert "127.0.0.1" in message and "DATABASE_URL" in message and "s3cret" not in message
    assert redacted(url).startswith("postgresql://app:***@127.0.0.1:")
    assert redacted("postgresql://app@db/memory") == "postgresql://app@db/memory"
