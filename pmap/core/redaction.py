"""Keeps credential values out of logs, errors and vendor error bodies.

Secrets in use are registered here (by the credential resolver, for the duration of one use);
:func:`scrub` replaces every registered value, and any extra values passed, with ``[REDACTED]``.
Well-known secret-bearing patterns (Authorization headers, ``password=...``) are masked too.
"""

from __future__ import annotations

import base64
import html
import itertools
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

REDACTED = "[REDACTED]"
_MIN_LEN = 4  # shorter values would mask ordinary words; credential fields are longer
_MIN_BASE64 = 8  # a shorter piece of base64 could be part of any encoded text
#: request headers whose value is a credential, or carries one, whatever it looks like
AUTH_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-apikeys", "x-api-key", "api-key",
                          "x-api-token", "x-auth-token", "private-token"})

_lock = threading.Lock()
# registration handle -> the values it holds; dict set/delete are atomic, so the hot path takes no lock
_in_use: dict[int, tuple[str, ...]] = {}
_next_handle = itertools.count(1)
# values released in the last LINGER_SECONDS stay masked: an exception raised inside a resolve block
# is usually logged after the block has ended
LINGER_SECONDS = 120.0
_MAX_RECENT = 4096
_recent: dict[str, float] = {}  # value -> when it stops being masked
# value -> its masked forms, longest first: computed once while the value is masked, dropped with it
_forms: dict[str, tuple[str, ...]] = {}

_PATTERNS = [
    re.compile(r"(?i)(authorization\s*[:=]\s*)(?:(?:basic|bearer|token)\s+)?[^\s,;\"')]+"),
    re.compile(r"(?i)((?:x-apikeys|x-apikey)\s*[:=]\s*)[^\r\n\"]+"),
    re.compile(r"(?i)((?:access_?key|secret_?key|api_?key|apikey|password|passwd|secret|token)[\"']?\s*[:=]\s*[\"']?)[^\s,;&\"'})]+"),
]


def _base64_forms(value: str) -> set[str]:
    # an echo may base64 the value alone or inside a longer text (a whole "Authorization: Basic ..."
    # header, a request dump): at each of the three byte offsets the value can start at, the quanta
    # that encode only its own bytes are fixed, whatever surrounds it
    raw = value.encode("utf-8", "surrogatepass")
    out = {base64.b64encode(raw).decode("ascii")}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        out.add(encoded[4 if shift else 0:(shift + len(raw)) // 3 * 4])
    out |= {v.rstrip("=") for v in out}
    out |= {v.replace("+", "-").replace("/", "_") for v in out}  # the URL-safe alphabet
    return {v for v in out if len(v) >= _MIN_BASE64}


def _variants(value: str) -> set[str]:
    # a secret may appear verbatim, URL-encoded, JSON-, repr- or XML-escaped in a body or a message
    from urllib.parse import quote

    out = {value, quote(value, safe=""), value.replace("\\", "\\\\").replace('"', '\\"'),
           # escaped as Python (and httpx's errors) print str and bytes: a control character in a
           # value otherwise hides it from the masking (input refuses them; this is the second line)
           value.encode("unicode_escape").decode("ascii"), repr(value)[1:-1],
           repr(value.encode("utf-8", "surrogatepass"))[2:-1],
           # XML/HTML-escaped, as XML APIs (Qualys) and HTML error pages echo what they were sent
           html.escape(value, quote=False), html.escape(value), html.escape(value).replace("&#x27;", "&apos;"),
           *_base64_forms(value)}
    return {v for v in out if len(v) >= _MIN_LEN}


def header_secrets(headers: Iterable[tuple[str, str]], secrets: Iterable[object]) -> list[str]:
    """The values to mask of request headers that carry a credential: every :data:`AUTH_HEADERS`
    value and any value holding one of ``secrets``, whole and without its scheme (``Basic``)."""
    known = [s for s in secrets if isinstance(s, str) and len(s) >= _MIN_LEN]
    found: dict[str, None] = {}
    for name, value in headers:
        if name.lower() in AUTH_HEADERS or any(s in value for s in known):
            found[value] = None
            found[value.partition(" ")[2].strip()] = None  # the credential after "Basic ", "Bearer ", ...
    return [v for v in found if len(v) >= _MIN_LEN]


def _forms_of(value: str, keep: bool) -> tuple[str, ...]:
    # a whole encoding before its core, so no tail of it is left behind
    forms = _forms.get(value)
    if forms is None:
        forms = tuple(sorted(_variants(value), key=len, reverse=True))
        if keep:  # only while the value is registered: it is dropped when it stops being masked
            _forms[value] = forms
    return forms


def register(values: Iterable[object]) -> int:
    """Mark values as secret until :func:`unregister` is called with the returned handle."""
    handle = next(_next_handle)
    # only text can be masked; anything else (a number from an old row, say) must not break scrubbing
    _in_use[handle] = tuple(v for v in values if isinstance(v, str))
    return handle


def unregister(handle: int) -> None:
    """Release the values registered under ``handle`` (they stay masked for a short while)."""
    values = _in_use.pop(handle, None)
    if values:
        expiry = time.monotonic() + LINGER_SECONDS
        for value in values:
            _recent.pop(value, None)  # re-insert so the dict stays ordered by expiry
            _recent[value] = expiry


@contextmanager
def secrets_in_use(values: Iterable[object]) -> Iterator[None]:
    """Register ``values`` for the duration of the block."""
    handle = register(values)
    try:
        yield
    finally:
        unregister(handle)


def active_values() -> set[str]:
    """The secret values registered right now."""
    now = time.monotonic()
    with _lock:  # serialises snapshots only; writers never wait on it
        lingering = []
        for value, expiry in list(_recent.items()):  # oldest first
            if expiry < now or len(_recent) > _MAX_RECENT:
                _recent.pop(value, None)
                _forms.pop(value, None)
            else:
                lingering.append(value)
        groups = list(_in_use.values())
    found = {v for group in groups for v in group if v and len(v) >= _MIN_LEN}
    found.update(v for v in lingering if len(v) >= _MIN_LEN)
    return found


def scrub(text: str, extra: Iterable[object] = ()) -> str:
    """``text`` with every registered secret, every value in ``extra`` and known patterns masked."""
    if not text:
        return text
    registered = active_values()
    values = set(registered)
    for v in extra:
        if isinstance(v, str) and len(v) >= _MIN_LEN:
            values.add(v)
    # longest first, so a secret that contains another is masked whole
    for value in sorted(values, key=len, reverse=True):
        for variant in _forms_of(value, keep=value in registered):
            if variant in text:
                text = text.replace(variant, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text
