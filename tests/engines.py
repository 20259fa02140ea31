"""Real engines the Postgres/Chroma-server profile is tested on, started for the tests and stopped after them:
a throwaway PostgreSQL cluster (Debian's `postgresql` package: `initdb` + `pg_ctl` in a temp dir, on a free
port) and a Chroma server (`chroma run`, which ships with the chromadb package).

PostgreSQL refuses to run as root, so as root (CI) the cluster runs as the `postgres` user the Debian package
creates. `make test` installs the package where it is missing."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from inference.processes import free_port, stop, wait_ready

__all__ = ["PostgresCluster", "ChromaServer", "postgres_bin", "waiting_on_a_lock"]


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (Debian layout), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class PostgresCluster:
    """`initdb` a cluster in a temp dir and run it on 127.0.0.1:`port`; `database()` makes a fresh database."""

    def __init__(self) -> None:
        bindir = postgres_bin()
        if bindir is None:
            raise FileNotFoundError("PostgreSQL server binaries (apt-get install postgresql)")
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="orch-pg-"))
        self.datadir = self.root / "data"
        self.log = self.root / "postgres.log"
        self.user = "postgres"
        self._as_root = os.geteuid() == 0

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = [str(a) for a in args]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> PostgresCluster:
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(self.bindir / "initdb", "-D", self.datadir, "-U", self.user, "--auth=trust",
                  "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
        return self.resume()

    def resume(self) -> PostgresCluster:
        """Start the server (again, after `halt`) on the same port and data."""
        # Sockets in the temp dir (not /var/run/postgresql, which may not exist); fsync off: a test cluster.
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._run(self.bindir / "pg_ctl", "-D", self.datadir, "-l", self.log, "-o", options, "-w", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        """A libpq URL of `database` on this cluster."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def database(self, prefix: str = "t") -> str:
        """Create an empty database and return its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._run(self.bindir / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name)
        return self.url(name)

    def halt(self) -> None:
        """Stop the server as an outage would (immediate: connections cut), keeping the data for `resume`."""
        self._run(self.bindir / "pg_ctl", "-D", self.datadir, "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        try:
            self.halt()
        except subprocess.SubprocessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ChromaServer:
    """`chroma run` on a free 127.0.0.1 port over a temp dir, telemetry off."""

    def __init__(self, path: Path | None = None) -> None:
        self.port = free_port()
        self.path = path or Path(tempfile.mkdtemp(prefix="orch-chroma-"))
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.path / "chroma.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> ChromaServer:
        chroma = Path(sys.executable).parent / "chroma"
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(chroma), "run", "--path", str(self.path / "db"), "--host", "127.0.0.1",
                 "--port", str(self.port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_ready(self.proc, self.url + "/api/v2/heartbeat", timeout, "the Chroma server", self.log)
        return self

    def reset(self) -> None:
        """Delete every collection (between tests sharing one server)."""
        with httpx.Client(base_url=self.url, timeout=10) as client:
            base = "/api/v2/tenants/default_tenant/databases/default_database/collections"
            for collection in client.get(base, params={"limit": 10_000}).json():
                client.delete(f"{base}/{collection['name']}")

    def stop(self) -> None:
        stop(self.proc)
        deadline = time.monotonic() + 5
        while self.proc is not None and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.path, ignore_errors=True)


def waiting_on_a_lock(url: str, timeout: float = 60.0) -> None:
    """Return once a backend of the database waits for an advisory lock (what Postgres itself says): a second
    worker's turn queued behind a session's lock."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND "
                               "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                               ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.01)
    raise AssertionError("no worker waited for the session")
