"""The Postgres profile's wiring: DATABASE_URL (a fresh database of the test cluster) opens the memory database
on Postgres, its absence the SQLite file in DATA_DIR."""

from __future__ import annotations

import pytest

from config.settings import Settings
from graph.wiring import open_database
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
