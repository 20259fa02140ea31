"""`orchestrator dialogues topics.txt --turns 4-10 --out data.jsonl`: queue a batch on a running service (or
one started in this process with `--in-process`), show its progress, write the export, print a summary table."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import httpx

FINISHED = ("done", "failed", "cancelled")


def parse_turns(value: str) -> tuple[int, int]:
    """`4-10` → (4, 10); `6` → (6, 6)."""
    low, _, high = value.partition("-")
    try:
        lo, hi = int(low), int(high or low)
    except ValueError:
        raise ValueError(f"--turns takes N or MIN-MAX, such as 4-10; got {value!r}") from None
    if lo < 1 or lo > hi:
        raise ValueError(f"--turns needs 1 <= MIN <= MAX; got {value!r}")
    return lo, hi


def batch_body(path: Path, turns: tuple[int, int], participants: list[dict[str, Any]] | None
               ) -> tuple[str, str]:
    """The batch request (content type, body): a topic a line, or a JSONL file of requests as is."""
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".jsonl", ".ndjson"):
        return "application/x-ndjson", text
    topics = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    body: dict[str, Any] = {"topics": topics, "min_turns": turns[0], "max_turns": turns[1]}
    if participants:
        body["participants"] = participants
    return "application/json", json.dumps(body)


def _rows(client: httpx.Client, batch_id: str) -> list[dict[str, Any]]:
    rows, cursor = [], 0
    while True:
        page = client.get("/dialogues", params={"batch": batch_id, "cursor": cursor, "limit": 1000})
        page.raise_for_status()
        data = page.json()
        rows += data["dialogues"]
        if data["next_cursor"] is None:
            return rows
        cursor = data["next_cursor"]


def _progress(rows: list[dict[str, Any]], started: float, out: TextIO) -> str:
    count = {s: sum(1 for r in rows if r["status"] == s) for s in ("queued", "running", "done", "failed")}
    tokens = sum(r["tokens"] for r in rows)
    finished = sum(1 for r in rows if r["status"] in FINISHED)
    width = 24
    filled = width * finished // max(1, len(rows))
    rate = tokens / max(1e-6, time.monotonic() - started)
    line = (f"[{'#' * filled}{'.' * (width - filled)}] {finished}/{len(rows)}  done {count['done']}  running "
            f"{count['running']}  failed {count['failed']}  queued {count['queued']}  {rate:.0f} tok/s")
    if out.isatty():
        out.write("\r" + line)
        out.flush()
    return line


def summary_table(rows: list[dict[str, Any]]) -> str:
    """One line per dialogue and the totals."""
    lines = [f"{'topic':<40} {'status':<9} {'turns':>5} {'tokens':>7}  ending"]
    for r in rows:
        topic = r["topic"] if len(r["topic"]) <= 40 else r["topic"][:39] + "…"
        ending = r["ending_reason"] or "-"
        if r.get("error"):
            ending += f" ({r['error'][:60]})"
        lines.append(f"{topic:<40} {r['status']:<9} {r['turns']:>5} {r['tokens']:>7}  {ending}")
    done = sum(1 for r in rows if r["status"] == "done")
    lines.append(f"{len(rows)} dialogues: {done} done, {len(rows) - done} not; "
                 f"{sum(r['turns'] for r in rows)} turns, {sum(r['tokens'] for r in rows)} tokens")
    return "\n".join(lines)


def in_process(follow: Callable[[str], int]) -> int:
    """Start the service (Settings from the environment and .env) on a free 127.0.0.1 port in this process,
    run `follow(base_url)` against it, then stop it; unfinished dialogues resume at its next start."""
    import threading

    import uvicorn

    from config.settings import Settings
    from inference.processes import free_port
    from server.app import create_app

    port = free_port()
    settings = Settings(host="127.0.0.1", port=port)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, name="orchestrator", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            print("error: the in-process service did not start (see the log above)", file=sys.stderr)
            return 2
        time.sleep(0.1)
    try:
        return follow(base_url)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def run(base_url: str, topics: Path, turns: str, out: Path, fmt: str, participants_file: Path | None,
        poll: float = 0.5) -> int:
    """Queue, follow, export; exit status 0 when every dialogue is done, 1 otherwise, 2 on bad input."""
    try:
        span = parse_turns(turns)
        participants = json.loads(participants_file.read_text()) if participants_file else None
        ctype, body = batch_body(topics, span, participants)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with httpx.Client(base_url=base_url, timeout=60) as client:
        queued = client.post("/dialogues/batch", content=body, headers={"Content-Type": ctype})
        if queued.status_code != 202:
            print(f"error: {queued.status_code} {queued.json().get('error', {}).get('message')}", file=sys.stderr)
            return 2
        batch_id = queued.json()["batch_id"]
        print(f"batch {batch_id}: {len(queued.json()['dialogues'])} dialogues queued on {base_url}",
              file=sys.stderr)
        started, last = time.monotonic(), ""
        try:
            while True:
                rows = _rows(client, batch_id)
                line = _progress(rows, started, sys.stderr)
                if line != last and not sys.stderr.isatty():
                    print(line, file=sys.stderr)
                last = line
                if all(r["status"] in FINISHED for r in rows):
                    break
                time.sleep(poll)
        except KeyboardInterrupt:
            print(f"\nstopped following; batch {batch_id} goes on in the service", file=sys.stderr)
            return 130
        if sys.stderr.isatty():
            print(file=sys.stderr)
        written = 0
        with client.stream("GET", "/dialogues/export", params={"format": fmt, "batch": batch_id}) as export, \
                open(out, "w", encoding="utf-8") as sink:
            export.raise_for_status()
            for line in export.iter_lines():
                if line:
                    sink.write(line + "\n")
                    written += 1
    print(summary_table(rows))
    print(f"wrote {written} dialogues ({fmt}) to {out}")
    return 0 if all(r["status"] == "done" for r in rows) else 1
