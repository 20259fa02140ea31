"""The service's end of the pipe to the vector child: pickled messages, each exchange bounded by a deadline.

The framing is `multiprocessing.connection.Connection`'s (a 4-byte big-endian length, or -1 and an 8-byte
one), so the child keeps a plain `Connection`. This end needs its own because `Connection` has no timeout
on either side: a stopped or wedged child left `recv` (and a `send` larger than the socket buffer) waiting
for ever, while holding the lock every recall takes.
"""

from __future__ import annotations

import pickle
import socket
import struct
import time
from typing import Any


class PipeTimeout(TimeoutError):
    """The other end did not take or give a whole message before the deadline."""


class DeadlinePipe:
    """A connected stream socket speaking `Connection`'s framing, every call bounded by `timeout` seconds."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send(self, obj: Any, timeout: float) -> None:
        """Send one message; PipeTimeout if the other end has not taken it all within `timeout`."""
        buf = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        n = len(buf)
        header = struct.pack("!i", n) if n <= 0x7FFFFFFF else struct.pack("!i", -1) + struct.pack("!Q", n)
        self._sock.settimeout(timeout)
        try:
            self._sock.sendall(header + buf)
        except TimeoutError as exc:
            raise PipeTimeout(f"could not send within {timeout:g} s") from exc

    def recv(self, timeout: float) -> Any:
        """Receive one message; PipeTimeout if it has not arrived whole within `timeout`, EOFError if the
        other end closed."""
        deadline = time.monotonic() + timeout
        (size,) = struct.unpack("!i", self._read(4, deadline))
        if size == -1:
            (size,) = struct.unpack("!Q", self._read(8, deadline))
        return pickle.loads(self._read(size, deadline))

    def _read(self, n: int, deadline: float) -> bytes:
        out = bytearray()
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PipeTimeout("no answer before the deadline")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(min(n - len(out), 1 << 20))
            except TimeoutError as exc:
                raise PipeTimeout("no answer before the deadline") from exc
            if not chunk:
                raise EOFError("the other end closed the pipe")
            out += chunk
        return bytes(out)

    def close(self) -> None:
        self._sock.close()
