"""Shared helpers for the benchmarks: paths, environment, percentiles, RSS and open files of a process tree,
synthetic text."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Environment every benchmark process runs with: nothing leaves the machine.
QUIET_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "LANGSMITH_TRACING": "false",
    "TOKENIZERS_PARALLELISM": "false",
}
os.environ.update({k: v for k, v in QUIET_ENV.items() if k not in os.environ})


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for an empty list."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """p50/p95/p99/mean in milliseconds of a list of durations in seconds."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "p50": round(percentile(ms, 50), 3),
        "p95": round(percentile(ms, 95), 3),
        "p99": round(percentile(ms, 99), 3),
        "mean": round(sum(ms) / len(ms), 3) if ms else float("nan"),
    }


def rss_mb(pid: int | None = None) -> float:
    """Resident set size (VmRSS) of one process in MiB, read from /proc (see `tree_rss_mb`)."""
    path = f"/proc/{pid or os.getpid()}/status"
    with open(path, encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants alive now (from /proc/*/stat parent ids)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:  # exited meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in () may hold spaces
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def tree_rss_mb(pid: int | None = None) -> float:
    """VmRSS of a process and all its descendants, in MiB: the service's memory includes its vector child
    (Chroma) and, without INFERENCE_BASE_URL, the embedded node. Shared pages count once per process."""
    total = 0.0
    for p in process_tree(pid or os.getpid()):
        try:
            total += rss_mb(p)
        except OSError:  # exited meanwhile
            pass
    return total


def tree_open_files(pid: int | None = None) -> int:
    """Open file descriptors of a process and all its descendants."""
    total = 0
    for p in process_tree(pid or os.getpid()):
        try:
            total += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return total


SUBJECTS = """the deploy script|our staging cluster|my sister|the billing service|the nightly backup|Alice|the
React frontend|the Postgres replica|my landlord|the marketing team|the cat|the CI pipeline|Bob from support|the
Kafka consumer|the mobile app|our VPN|the garden hose|my dentist|the Rust crate|the invoice generator|the
Terraform module|the kitchen sink|the load balancer|my bike|the search index|the GPU node|the summer intern|the
cron job|the payment webhook|the README""".replace("\n", " ").split("|")
VERBS = """broke|needs|migrated|ignored|renamed|doubled|scheduled|cached|rejected|leaked|upgraded|replaced|
flagged|rebooted|exported|throttled|signed|cancelled|compressed|audited|painted|forgot|booked|refactored|
sharded|encrypted|deleted|restored|benchmarked|approved""".replace("\n", "").split("|")
OBJECTS = """the TLS certificate|three invoices|the config file|a dinner reservation|the API token|the disk
quota|the holiday photos|the rate limiter|the feature flag|a flight to Lisbon|the unit tests|the Docker image|the
shared calendar|the grocery list|the logging level|the DNS record|the audit report|the retry policy|the
pull request|the spare keys|the quarterly budget|the cache headers|the S3 bucket|the firmware|the onboarding
doc|the Grafana dashboard|a birthday gift|the webhook secret|the timezone setting|the meeting notes|the
schema migration|the vacation plan|the error budget|the SSH keys|the piano lesson|the refund request|the
build cache|the memory limit|the old laptop|the sprint goals""".replace("\n", " ").split("|")
PLACES = """in Berlin|on Tuesday|before the release|after lunch|in production|at the office|over the weekend|
during the outage|on port 8443|in the EU region|next month|at midnight|in the sandbox|on the old server|
yesterday""".replace("\n", "").split("|")


def synthetic_exchange(rng: random.Random) -> tuple[str, str]:
    """A varied (user, assistant) pair made of random subjects, verbs, objects, places and numbers."""
    s, v, o, p = rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(PLACES)
    n = rng.randint(2, 9999)
    user = f"Note that {s} {v} {o} {p}; ticket {n} tracks it, and {rng.choice(SUBJECTS)} owns the follow-up."
    reply = f"Noted: {s} {v} {o} {p} (ticket {n}). I will remember {rng.choice(OBJECTS)} too."
    return user, reply


def synthetic_question(rng: random.Random) -> str:
    """A user question drawn from the same vocabulary as the stored exchanges."""
    return f"What did {rng.choice(SUBJECTS)} do with {rng.choice(OBJECTS)} {rng.choice(PLACES)}?"
