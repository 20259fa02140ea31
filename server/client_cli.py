"""`orchestrator chat` (a REPL against a running service) and `orchestrator e2e` (an end-to-end check)."""

from __future__ import annotations

import json
import sys
import uuid
from typing import TextIO

import httpx
import openai


def _client(base_url: str, session: str, project: str | None = None) -> openai.OpenAI:
    headers = {"X-Session-Id": session, **({"X-Project-Id": project} if project else {})}
    return openai.OpenAI(base_url=base_url.rstrip("/") + "/v1", api_key="unused", default_headers=headers,
                         max_retries=0, timeout=300)


def _print_tool_calls(calls, out: TextIO) -> None:
    for call in calls or []:
        out.write(f"\n  [tool call] {call.function.name}({call.function.arguments})")


def ask(client: openai.OpenAI, text: str, stream: bool, out: TextIO) -> str:
    """Send one message; print the reply as it arrives; return its text."""
    messages = [{"role": "user", "content": text}]
    if not stream:
        reply = client.chat.completions.create(model="default", messages=messages)
        message = reply.choices[0].message
        out.write(message.content or "")
        _print_tool_calls(message.tool_calls, out)
        out.write("\n")
        return message.content or ""
    parts: list[str] = []
    calls = []
    for chunk in client.chat.completions.create(model="default", messages=messages, stream=True):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        if delta.content:
            parts.append(delta.content)
            out.write(delta.content)
            out.flush()
        calls.extend(delta.tool_calls or [])
    _print_tool_calls(calls, out)
    out.write("\n")
    return "".join(parts)


def chat(base_url: str, session: str | None, project: str | None, stream: bool,
         inp: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    """Read lines, send each as a user message of one session; `/quit` or end of input stops."""
    session = session or f"cli-{uuid.uuid4().hex[:12]}"
    client = _client(base_url, session, project)
    out.write(f"session {session} on {base_url} (/quit to leave)\n")
    while True:
        out.write("> ")
        out.flush()
        line = inp.readline()
        if not line or line.strip() in ("/quit", "/exit"):
            return 0
        if not line.strip():
            continue
        try:
            ask(client, line.strip(), stream, out)
        except openai.APIError as exc:
            out.write(f"error: {exc}\n")


def _health_detail(health: dict) -> str:
    """What /health says is wrong (a degraded service fails the check: a turn may still pass, through a
    fallback node or by luck, while the configured node is unreachable), or its dependencies when all is well."""
    deps = health.get("dependencies") or {}
    if health.get("status") == "ok":
        return json.dumps(deps)
    wrong = [f"{name}: {value}" for name, value in deps.items() if isinstance(value, str) and value != "ok"]
    inference = deps.get("inference") or {}
    if inference.get("status") not in (None, "ok", "busy"):
        wrong.append(f"inference node {inference.get('url')}: {inference.get('status')}")
    wrong += [f"circuit {url}: {state}" for url, state in (deps.get("circuits") or {}).items() if state != "closed"]
    return f"status {health.get('status')}: " + "; ".join(wrong)


def e2e(base_url: str, out: TextIO = sys.stdout) -> int:
    """Check a running service: health `ok` (every dependency answers), a plain and a streamed turn, and the
    memory database growing."""
    session = f"e2e-{uuid.uuid4().hex[:12]}"
    client = _client(base_url, session)
    failures: list[str] = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        out.write(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}\n")
        if not ok:
            failures.append(name)

    try:
        health = httpx.get(base_url.rstrip("/") + "/health", timeout=30).json()
        check("health", health.get("status") == "ok", _health_detail(health))
        text = ask(client, "Remember this: my favourite number is 42. Reply briefly.", False, out)
        check("non-streaming reply", bool(text.strip()))
        text = ask(client, "What is my favourite number?", True, out)
        check("streaming reply", bool(text.strip()))
        info = httpx.get(f"{base_url.rstrip('/')}/sessions/{session}", timeout=30).json()
        check("memory updated", info.get("episodeCount") == 2 and info.get("turnCount") == 2,
              f"episodes={info.get('episodeCount')} turns={info.get('turnCount')}")
    except (httpx.HTTPError, openai.APIError, ValueError) as exc:
        check("service reachable", False, repr(exc))
    out.write(f"{'OK' if not failures else 'FAILED: ' + ', '.join(failures)}\n")
    return 1 if failures else 0
