"""Incremental extraction of the `assistant_response` string from a contract reply that is still arriving.

Streaming clients see the answer's text token by token, never the raw JSON around it.
"""

from __future__ import annotations

import json
import re

_KEY = re.compile(r'"assistant_response"\s*:\s*"')
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class ResponseTextExtractor:
    """Feed raw model text in chunks; get back only the new characters of `assistant_response`."""

    def __init__(self) -> None:
        self._buffer = ""
        self._pos = 0  # next unread index in the buffer once the string has started
        self.started = False
        self.finished = False

    def feed(self, chunk: str) -> str:
        """Add raw text; return the newly decoded part of the response text (possibly empty)."""
        self._buffer += chunk
        if self.finished:
            return ""
        if not self.started:
            match = _KEY.search(self._buffer)
            if match is None:
                return ""
            self.started = True
            self._pos = match.end()
        return self._decode()

    def _decode(self) -> str:
        out: list[str] = []
        buf, i, n = self._buffer, self._pos, len(self._buffer)
        while i < n:
            ch = buf[i]
            if ch == '"':
                self.finished = True
                i += 1
                break
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            if i + 1 >= n:
                break  # wait for the rest of the escape
            esc = buf[i + 1]
            if esc in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[esc])
                i += 2
                continue
            if esc != "u":
                out.append(esc)  # invalid escape: keep the character rather than fail
                i += 2
                continue
            if i + 6 > n:
                break
            code = buf[i + 2 : i + 6]
            width = 6
            if re.fullmatch(r"[dD][89abAB][0-9a-fA-F]{2}", code):  # high surrogate: needs its pair
                if i + 12 > n:
                    break
                width = 12
            try:
                out.append(json.loads('"' + buf[i : i + width] + '"'))
            except ValueError:
                out.append(buf[i : i + width])
            i += width
        self._pos = i
        return "".join(out)
