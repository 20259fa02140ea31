"""`orchestrator import FILE`: send a conversation file to a running service, in parts, with progress.

The whole file is checked here first (a bad line is named and nothing is sent), then sent in parts under the
service's body limit. Each message's id is fixed here from its place in the whole file, so the parts are
idempotent: a run cut half-way and started again skips what the first run stored.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx

from server.turns.transcript_lines import LineError, message_id, parse

PART_BYTES = 512 * 1024
PART_MESSAGES = 1000


def parts(text: str) -> list[list[dict[str, Any]]]:
    """The file's lines as JSON objects in parts: the session record first, entities last; raises LineError."""
    transcript = parse(text)
    out: list[list[dict[str, Any]]] = [[]]
    size = 0
    if transcript.session:
        out[0].append(transcript.session.model_dump(exclude_none=True))
    for i, message in enumerate(transcript.messages):
        line = {**message.model_dump(mode="json", exclude_none=True), "id": message_id(message, i)}
        n = len(json.dumps(line))
        if out[-1] and (size + n > PART_BYTES or len(out[-1]) >= PART_MESSAGES):
            out.append([])
            size = 0
        out[-1].append(line)
        size += n
    out[-1].extend(e.model_dump() for e in transcript.entities)
    return out


def run(base_url: str, path: Path, session: str, project: str | None, api_key: str | None) -> int:
    """Import `path` into `session`; 0 on success, 1 if the service refused, 2 if the file is malformed."""
    try:
        batches = parts(path.read_text(encoding="utf-8"))
    except LineError as exc:
        print(f"{path}: {exc}; nothing was sent", file=sys.stderr)
        return 2
    total = sum(1 for batch in batches for line in batch if line.get("type", "message") == "message")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    done = imported = 0
    with httpx.Client(base_url=base_url, headers=headers, timeout=600) as client:
        for batch in batches:
            body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in batch)
            answer = client.post(f"/sessions/{session}/import", content=body.encode(),
                                 params={"projectId": project} if project else {},
                                 headers={"Content-Type": "application/x-ndjson"})
            if answer.status_code != 200:
                message = answer.json().get("error", {}).get("message", answer.text)
                print(f"import refused after {done}/{total} messages: {answer.status_code} {message}",
                      file=sys.stderr)
                return 1
            result = answer.json()
            done += result["imported"] + result["skipped"]
            imported += result["imported"]
            print(f"{done}/{total} messages ({imported} new)", flush=True)
    print(f"imported {imported} messages into session {session} ({total - imported} already there)")
    return 0
