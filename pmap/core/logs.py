"""Structured logging with a redaction step on every line, traceback included."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from pmap.core.redaction import scrub

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
# set while a background job runs (its thread also carries the correlation id of the request that queued it)
job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)

# uvicorn adds ``color_message`` (the message again, with ANSI colour codes) for its own formatter
_STD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class RedactingFormatter(logging.Formatter):
    """Readable lines (development); the whole formatted text, traceback included, is scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        cid, job = correlation_id.get(), job_id.get()
        text = super().format(record)
        if cid:
            text = f"{text} [cid={cid}]"
        if job:
            text = f"{text} [job={job}]"
        return scrub(text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (production), scrubbed after serialization."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        cid = correlation_id.get()
        if cid:
            doc["correlation_id"] = cid
        job = job_id.get()
        if job:
            doc["job_id"] = job
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                doc[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return scrub(json.dumps(doc, default=str))


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at emit time (so redirection and capture see it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(*, production: bool, level: str = "INFO") -> None:
    """Install PMAP's handler on the root logger (idempotent); uvicorn's loggers go through it too."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_pmap", False):
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler._pmap = True  # type: ignore[attr-defined]
    handler.setFormatter(
        JsonFormatter() if production else RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; query strings can carry identities or keys
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
