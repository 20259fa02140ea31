"""`orchestrator serve --workers N`: more than one worker only on storage the workers can share, said clearly;
the embedded profile's directory locks are not taken for what lives in Postgres or a Chroma server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from memory.datadir_lock import directory_locks

ROOT = Path(__file__).resolve().parents[2]


def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`orchestrator serve …` in a directory without a .env, with only the given storage settings."""
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CHROMA_URL")}
    return subprocess.run([sys.executable, "-c", "from server.cli import main; main()", "serve", *args],
                          cwd=tmp_path, env={**clean, "PYTHONPATH": str(ROOT), **env}, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("env, missing", [({}, "DATABASE_URL and CHROMA_URL"),
                                          ({"DATABASE_URL": "postgresql://db/x"}, "CHROMA_URL"),
                                          ({"CHROMA_URL": "http://chroma:8000"}, "DATABASE_URL")])
def test_several_workers_are_refused_without_shared_storage(tmp_path, env, missing):
    done = serve(tmp_path, "--workers", "2", **env)
    assert done.returncode == 1
    assert f"serve: --workers 2 needs storage the workers share: set {missing} (Postgres and a Chroma server" in \
        done.stderr


def test_zero_workers_is_refused(tmp_path):
    done = serve(tmp_path, "--workers", "0")
    assert done.returncode == 1 and "--workers must be 1 or more" in done.stderr


def test_directory_locks_only_for_what_lives_in_the_directories(settings):
    def held(**update):
        locks = directory_locks(settings.model_copy(update=update))
        try:
            return sorted(lock.setting for lock in locks)
        finally:
            for lock in locks:
                lock.release()

    assert held() == ["CHROMA_DIR", "DATA_DIR"]
    assert held(database_url="postgresql://db/x") == ["CHROMA_DIR"]  # the embedded Chroma dir still needs it
    assert held(database_url="postgresql://db/x", chroma_url="http://chroma:8000") == []
    first = directory_locks(settings)
    try:  # a second process on the same directories is still refused on the embedded profile
        with pytest.raises(RuntimeError, match="already in use by another orchestrator process"):
            directory_locks(settings)
    finally:
        for lock in first:
            lock.release()
