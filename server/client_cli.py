"""`orchestrator chat` (a REPL against a running service) and `orchestrator e2e` (an end-to-end check)."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam

from config.settings import Settings

THINKING = "\033[2m… thinking\033[0m"
CLEAR_LINE = "\r\033[K"
CANCELLED = "[cancelled: this turn was not stored]"


def default_base_url(settings: Settings | None = None) -> str:
    """The URL of the service as HOST/PORT (environment or `.env`) configure it; a wildcard bind is reached
    on the loopback address."""
    settings = settings or Settings()
    host = settings.host if settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"


def _client(base_url: str, session: str, project: str | None = None, api_key: str | None = None) -> openai.OpenAI:
    headers = {"X-Session-Id": session, **({"X-Project-Id": project} if project else {})}
    # Without API_KEYS the service ignores the key; the SDK insists on one.
    return openai.OpenAI(base_url=base_url.rstrip("/") + "/v1", api_key=api_key or "unused",
                         default_headers=headers, max_retries=0, timeout=300)


def _print_tool_calls(calls, out: TextIO) -> None:
    for call in calls or []:
        out.write(f"\n  [tool call] {call.function.name}({call.function.arguments})")


def _isatty(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def ask(client: openai.OpenAI, text: str, stream: bool, out: TextIO) -> str:
    """Send one message; print the reply as it arrives; return its text. On a terminal, "thinking" shows
    until the first token. Ctrl-C while streaming closes the connection, which cancels the turn on the
    service (nothing of it is stored), and returns what was shown."""
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": text}]
    thinking = _isatty(out)
    if thinking:
        out.write(THINKING)
        out.flush()
    if not stream:
        try:
            reply = client.chat.completions.create(model="default", messages=messages)
        except KeyboardInterrupt:
            out.write(f"{CLEAR_LINE if thinking else ''}[stopped waiting: without --stream the service still "
                      "finishes and stores this turn]\n")
            return ""
        message = reply.choices[0].message
        out.write((CLEAR_LINE if thinking else "") + (message.content or ""))
        _print_tool_calls(message.tool_calls, out)
        out.write("\n")
        return message.content or ""
    parts: list[str] = []
    calls: list[Any] = []
    response: openai.Stream[Any] | None = None
    try:
        response = client.chat.completions.create(model="default", messages=messages, stream=True)
        for chunk in response:
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            if delta.content:
                if thinking:
                    out.write(CLEAR_LINE)
                    thinking = False
                parts.append(delta.content)
                out.write(delta.content)
                out.flush()
            calls.extend(delta.tool_calls or [])
    except KeyboardInterrupt:
        if response is not None:
            response.close()  # the service sees the client leave and cancels the turn
        out.write(f"{CLEAR_LINE if thinking else ''}{' ' if parts else ''}{CANCELLED}\n")
        return "".join(parts)
    if thinking:
        out.write(CLEAR_LINE)
    _print_tool_calls(calls, out)
    out.write("\n")
    return "".join(parts)


def _history_file() -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "orchestrator-node" / "chat_history"


def _line_reader(inp: TextIO, out: TextIO):
    """`read(prompt) -> str | None` (None: leave). On a terminal: readline's editing and a history kept
    across runs; otherwise (a pipe, a test) plain lines."""
    if inp is sys.stdin and _isatty(inp) and _isatty(out):
        import readline  # here: only a terminal needs it, and some platforms lack it

        history = _history_file()
        try:
            readline.read_history_file(history)
        except OSError:
            pass
        readline.set_history_length(1000)

        def read(prompt: str) -> str | None:
            try:
                line = input(prompt)
            except EOFError:  # Ctrl-D
                out.write("\n")
                return None
            try:
                history.parent.mkdir(parents=True, exist_ok=True)
                readline.write_history_file(history)
            except OSError:
                pass  # a read-only home: history for this run only
            return line

        return read

    def read_plain(prompt: str) -> str | None:
        out.write(prompt)
        out.flush()
        line = inp.readline()
        return line or None

    return read_plain


def chat(base_url: str, session: str | None, project: str | None, stream: bool, api_key: str | None = None,
         inp: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    """Read lines, send each as a user message of one session; `/quit`, Ctrl-D or Ctrl-C at the prompt stops.
    Ctrl-C during a streamed reply cancels that reply only."""
    session = session or f"cli-{uuid.uuid4().hex[:12]}"
    client = _client(base_url, session, project, api_key)
    out.write(f"session {session} on {base_url} (/quit, Ctrl-D or Ctrl-C to leave; Ctrl-C during a reply "
              "cancels it)\n")
    read = _line_reader(inp, out)
    while True:
        try:
            line = read("> ")
        except KeyboardInterrupt:  # Ctrl-C at the prompt
            out.write("\n")
            return 0
        if line is None or line.strip() in ("/quit", "/exit"):
            return 0
        if not line.strip():
            continue
        try:
            ask(client, line.strip(), stream, out)
        except openai.APIError as exc:
            out.write(f"{CLEAR_LINE if _isatty(out) else ''}error: {exc}\n")


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
