"""An OpenAI-compatible inference node for tests: scripted replies, every request recorded.

It stands in for the external inference node (llama.cpp, vLLM, ...), not for any part of the product.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], str | dict[str, Any]]
"""A reply's text, or {"content", "finish_reason"?, "hold"?: threading.Event (a stream stalls half-way until it
is set)}."""


def prompt_text(body: dict[str, Any]) -> str:
    """Every message of a request, as one text."""
    return "\n".join(str(m.get("content")) for m in body.get("messages", []))


def default_responder(body: dict[str, Any]) -> str:
    """Echo the last user message under the contract; ask for a tool when told to; summarise, name sessions
    and extract entities (`… is called X`) when asked."""
    messages = body.get("messages", [])
    last = str(messages[-1].get("content")) if messages else ""
    if last.startswith("You maintain the running summary"):
        return "Summary: the user and the assistant talked."
    if last.startswith("Give this conversation a short title"):
        user = last.split("User:", 1)[-1].split()
        return '"Talk about ' + " ".join(user[:3]) + '"'
    if last.startswith("List the named entities"):
        names = re.findall(r"is called (\w+)", last)
        return json.dumps([{"name": n, "type": "name", "notes": f"something called {n}"} for n in names])
    if "Tool result for" in last:
        return json.dumps({"assistant_response": "The tool said: " + last.split(":\n", 1)[-1], "tool_calls": []})
    if "read the file" in last:
        call = {"id": "call_1", "name": "read_file", "arguments": {"path": "src/main.py"}}
        return json.dumps({"assistant_response": "Reading it.", "tool_calls": [call]})
    return json.dumps({"assistant_response": f"You said: {last}", "tool_calls": []})


class FakeBackend:
    """`with FakeBackend() as backend:` serves `backend.base_url` (…/v1) on 127.0.0.1.

    Usage is reported as OpenAI and llama.cpp's server report it: in every whole reply, and in a stream's last
    chunk only when the request asks (`stream_options.include_usage`). `usage=False` plays a node that never
    reports it. `usages[i]` is what was reported for `requests[i]` (None: nothing).
    """

    def __init__(self, responder: Responder = default_responder, model: str = "fake-model",
                 usage: bool = True) -> None:
        self.responder = responder
        self.model = model
        self.usage = usage
        self.requests: list[dict[str, Any]] = []
        self.usages: list[dict[str, int] | None] = []
        self.fail_with: int | None = None
        self.lock = threading.Lock()
        self.chunk_delay = 0.0
        """Seconds before each streamed piece: a slow node, for clients that cancel mid-reply."""
        self.first_delay = 0.0
        """Seconds before a stream's first piece (the prompt's processing, on a real node)."""
        self.aborted = 0
        """Streams whose client (the service) closed the connection before the end."""
        self.request_headers: list[dict[str, str]] = []
        """The headers of each request in `requests`, names in lower case."""
        self.drip_seconds = 0.0
        """> 0: the reply is sent in pieces this many seconds apart (each read is in time, the whole is slow)."""
        self.models_delay = 0.0
        """> 0: `GET /models` answers this many seconds late (a node busy generating queues it)."""
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    time.sleep(backend.models_delay)
                    data = {"object": "list", "data": [{"id": backend.model, "object": "model", "owned_by": "test"}]}
                    self._send(200, json.dumps(data).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with backend.lock:  # handlers run on threads: keep the two lists in step
                    backend.requests.append(body)
                    backend.request_headers.append({k.lower(): v for k, v in self.headers.items()})
                    backend.usages.append(None)
                    index = len(backend.usages) - 1
                if backend.fail_with:
                    self._send(backend.fail_with, json.dumps({"error": {"message": "scripted failure"}}).encode())
                    return
                reply = backend.responder(body)
                text = reply if isinstance(reply, str) else reply.get("content", "")
                finish = "stop" if isinstance(reply, str) else reply.get("finish_reason", "stop")
                usage = {"prompt_tokens": len(prompt_text(body)) // 4, "completion_tokens": len(text.split()),
                         "total_tokens": 0}
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                if body.get("stream"):
                    asked = bool((body.get("stream_options") or {}).get("include_usage"))
                    if backend.usage and asked:
                        backend.usages[index] = usage
                    self._stream(text, finish, backend.usages[index],
                                 None if isinstance(reply, str) else reply.get("hold"))
                    return
                out = {"id": "cmpl-1", "object": "chat.completion", "created": int(time.time()),
                       "model": body.get("model", backend.model),
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": finish}]}
                if backend.usage:
                    out["usage"] = backend.usages[index] = usage
                if backend.drip_seconds:
                    self._drip(json.dumps(out).encode())
                else:
                    self._send(200, json.dumps(out).encode())

            def _drip(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for i in range(0, len(body), 16):
                    self.wfile.write(body[i : i + 16])
                    self.wfile.flush()
                    time.sleep(backend.drip_seconds)

            def _stream(self, text: str, finish: str, usage: dict | None, hold: threading.Event | None) -> None:
                """The reply in pieces; with `hold`, the stream stalls half-way until it is set."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                pieces = [text[i : i + 7] for i in range(0, len(text), 7)] or [""]
                base = {"id": "cmpl-1", "object": "chat.completion.chunk", "created": int(time.time()),
                        "model": backend.model}
                self.close_connection = True
                try:
                    time.sleep(backend.first_delay)
                    for i, piece in enumerate(pieces):
                        time.sleep(backend.chunk_delay)
                        data = dict(base, choices=[{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
                        self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
                        self.wfile.flush()
                        if hold is not None and i == len(pieces) // 2:
                            hold.wait(60)
                        time.sleep(backend.drip_seconds)
                    done = dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": finish}])
                    self.wfile.write(f"data: {json.dumps(done)}\n\n".encode())
                    if usage is not None:
                        self.wfile.write(f"data: {json.dumps(dict(base, choices=[], usage=usage))}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    backend.aborted += 1

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeBackend:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def prompts(self) -> list[str]:
        """The prompt text of every chat request received, oldest first."""
        return [prompt_text(b) for b in self.requests]

    def turn_usages(self) -> list[dict[str, int] | None]:
        """The usage reported for each conversation turn (as `turn_prompts`), None where none was."""
        return [u for b, u in zip(self.requests, self.usages, strict=True)
                if (b.get("messages") or [{}])[0].get("role") == "system"]

    def turn_prompts(self) -> list[str]:
        """The prompts of conversation turns only (not of summaries, naming or entity extraction)."""
        return [prompt_text(b) for b in self.requests if (b.get("messages") or [{}])[0].get("role") == "system"]
