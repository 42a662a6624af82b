"""Keeps credential values out of logs, errors and vendor error bodies.

Secrets in use are registered here (by the credential resolver, for the duration of one use);
:func:`scrub` replaces every registered value, and any extra values passed, with ``[REDACTED]``.
Well-known secret-bearing patterns (Authorization headers, ``password=...``) are masked too.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

REDACTED = "[REDACTED]"
_MIN_LEN = 4  # shorter values would mask ordinary words; credential fields are longer

_lock = threading.Lock()
_active: Counter[str] = Counter()

_PATTERNS = [
    re.compile(r"(?i)(authorization\s*[:=]\s*)(?:(?:basic|bearer|token)\s+)?[^\s,;\"']+"),
    re.compile(r"(?i)((?:x-apikeys|x-apikey)\s*[:=]\s*)[^\r\n\"]+"),
    re.compile(r"(?i)((?:access_?key|secret_?key|api_?key|apikey|password|passwd|secret|token)[\"']?\s*[:=]\s*[\"']?)[^\s,;&\"'}]+"),
]


def _variants(value: str) -> set[str]:
    # a secret may appear verbatim, URL-encoded or JSON-escaped in a body or a message
    from urllib.parse import quote

    out = {value, quote(value, safe=""), value.replace("\\", "\\\\").replace('"', '\\"')}
    return {v for v in out if len(v) >= _MIN_LEN}


def register(values: Iterable[str]) -> None:
    """Mark values as secret until :func:`unregister` is called for each."""
    with _lock:
        for v in values:
            if v and len(v) >= _MIN_LEN:
                _active[v] += 1


def unregister(values: Iterable[str]) -> None:
    """Release values registered with :func:`register`."""
    with _lock:
        for v in values:
            if v and len(v) >= _MIN_LEN and _active.get(v):
                _active[v] -= 1
                if _active[v] <= 0:
                    del _active[v]


@contextmanager
def secrets_in_use(values: Iterable[str]) -> Iterator[None]:
    """Register ``values`` for the duration of the block."""
    vals = [v for v in values if v]
    register(vals)
    try:
        yield
    finally:
        unregister(vals)


def active_count() -> int:
    """How many distinct secret values are registered right now (for tests)."""
    with _lock:
        return len(_active)


def scrub(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every registered secret, every value in ``extra`` and known patterns masked."""
    if not text:
        return text
    with _lock:
        values = set(_active)
    for v in extra:
        if v and len(v) >= _MIN_LEN:
            values.add(v)
    # longest first, so a secret that contains another is masked whole
    for value in sorted(values, key=len, reverse=True):
        for variant in _variants(value):
            if variant in text:
                text = text.replace(variant, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text
