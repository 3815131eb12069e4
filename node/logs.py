"""The node's log lines: plain text or one JSON object a line, each with its request's id.

Loggers add structured fields with ``extra`` (the names in ``FIELDS``); the JSON
format writes them as keys, the text format has them in the message already.
What is logged at INFO never holds member data: routes are logged as their
templates, and addresses and names only ever at DEBUG.
"""
from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

# Set by node.web.observe for the time a request is answered.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

FIELDS = ("method", "route", "status", "duration_ms", "activity_type", "peer", "outcome")


class RequestIdFilter(logging.Filter):
    """Gives each record the id of the request it was logged in (None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class TextFormatter(logging.Formatter):
    """``2026-05-01 10:00:00 INFO node.requests: GET /groups/{slug} 200 3.1 ms [id]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s",
                         "%Y-%m-%d %H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        # One record, one line: a peer's text in a message cannot forge another.
        line = super().formatMessage(record).replace("\r", "\\r").replace("\n", "\\n")
        rid = getattr(record, "request_id", None)
        return f"{line} [{rid}]" if rid else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (rid := getattr(record, "request_id", None)) is not None:
            entry["request_id"] = rid
        for name in FIELDS:
            if (value := getattr(record, name, None)) is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(log_format: str) -> None:
    """INFO and above to stderr, in ``log_format`` ("text" or "json")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # A line per outgoing request, with its URL: the node's own lines say what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
