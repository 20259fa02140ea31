"""An HTTP/1.1 pass-through proxy that counts the requests it forwards, by method and route.

The scale-out benchmark puts it between the service and the Chroma server to count Chroma calls per turn: the
Chroma server's own log prints one request several times and some not at all, so counting at the wire is the
one exact measure. Only the cost phase goes through it (it adds a hop); latency and turns/s are measured on
the direct URL.
"""

from __future__ import annotations

import http.client
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from inference.processes import free_port

# Collection ids (UUIDs) and names vary per scope; the route is what is counted.
_ID = re.compile(r"/collections/[^/?]+")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def route_of(method: str, path: str) -> str:
    """`POST /api/v2/.../collections/{id}/query` from a concrete request line (query string dropped)."""
    return f"{method} {_ID.sub('/collections/{id}', path.split('?', 1)[0])}"


class CountingProxy:
    """`with CountingProxy("http://127.0.0.1:8000") as proxy:` serves `proxy.url`; `proxy.counts()` snapshots."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def counts(self) -> Counter[str]:
        """A copy of the requests forwarded so far, by route."""
        with self._lock:
            return Counter(self._counts)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Chroma's httpx client expects

            def _forward(self) -> None:
                with proxy._lock:
                    proxy._counts[route_of(self.command, self.path)] += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream = getattr(self, "_upstream", None)
                if upstream is None:  # one upstream connection per client connection, reused
                    upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
                    self._upstream = upstream
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # quiet: thousands of requests

        return Handler

    def __enter__(self) -> CountingProxy:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="counting-proxy", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
