"""Logs: human-readable text on a terminal, one JSON object per line otherwise (LOG_FORMAT=auto, the
default; `json` or `text` force either), and no progress bars from the libraries the service loads."""

from __future__ import annotations

import json
import logging
import os
import sys
import time

# Progress bars (tqdm) of sentence-transformers, transformers and huggingface_hub draw on stderr with
# carriage returns: in a log file or a JSON log they are noise that breaks the one-record-a-line format.
QUIET_PROGRESS = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", ...fields}`; `extra={"fields": {...}}` adds fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **(getattr(record, "fields", None) or {}),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`12:00:01 INFO  server.turns.runner: message  key=value ...`: the structured fields after the message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None) or {}
        if fields:
            line += "  " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        return line


def resolve_format(fmt: str, stream=None) -> str:
    """`auto`: text when the log goes to a terminal (a person reads it), JSON otherwise (a collector does)."""
    if fmt != "auto":
        return fmt
    stream = stream or sys.stderr
    return "text" if hasattr(stream, "isatty") and stream.isatty() else "json"


def quiet_progress_bars() -> None:
    """Turn progress bars off in this process and the children it starts (the Chroma child, the embedded
    node), before the libraries that draw them are imported. A value the user set is kept."""
    for name, value in QUIET_PROGRESS.items():
        os.environ.setdefault(name, value)


def configure(level: str, fmt: str) -> None:
    """Set up the root logger once, at process start (never at import)."""
    quiet_progress_bars()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if resolve_format(fmt, handler.stream) == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
