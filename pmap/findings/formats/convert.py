"""Value converters every report format uses: a vendor's loosely typed value to a PMAP field value.

Each converter is total: it never raises on odd input, returns None (or an empty container) when
the value does not say what the field needs, and never invents data (no rounding, no guessing of
separators, no default dates). The exact behaviour of each is in its docstring and pinned by
``tests/findings/test_format_toolkit.py``; a format needing something else writes it locally.

Common rules: ``None`` means absent; ``True``/``False`` are never numbers; strings are stripped
first and blank means absent; NaN and infinities are not numbers; a comma is never a decimal or
thousands separator (``"7,5"`` and ``"1,000"`` are ambiguous, so they are rejected).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Hashable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T", bound=Hashable)

# --- text -------------------------------------------------------------------------------------

_PLACEHOLDERS = frozenset({"-", "'-", "N/A", "n/a"})


def text(value: Any, limit: int | None = None) -> str | None:
    """A JSON/XML scalar as stripped text, or None.

    None, blank or whitespace-only strings, lists and objects give None; ``True``/``False`` give
    ``"true"``/``"false"`` (their JSON spelling); numbers give ``str(value)``. ``limit`` cuts the
    result to that many characters.
    """
    if value is None or isinstance(value, (dict, list, tuple)):
        return None
    if isinstance(value, bool):
        out = "true" if value else "false"
    else:
        out = (value if type(value) is str else str(value)).strip()
    if not out:
        return None
    return out[:limit] if limit else out


def clean(value: Any) -> str | None:
    """:func:`text`, and None also for the placeholders spreadsheet and XML exports write for
    "no value": ``-``, ``'-``, ``N/A``, ``n/a``."""
    out = text(value)
    return None if out is None or out in _PLACEHOLDERS else out


def as_str(value: Any) -> str | None:
    """:func:`clean`, except that a list is its non-None items joined with ``", "``."""
    if isinstance(value, list):
        return clean(", ".join(str(v) for v in value if v is not None))
    return clean(value)


EVIDENCE_MAX = 4000  # characters of raw vendor evidence kept in ``extra``


def evidence(value: Any) -> str | None:
    """:func:`clean` text cut to ``EVIDENCE_MAX`` characters (marked ``…[truncated]``), so ``extra``
    stays small."""
    s = clean(value)
    if s is None:
        return None
    return s if len(s) <= EVIDENCE_MAX else s[:EVIDENCE_MAX] + "…[truncated]"


_TAGS = re.compile(r"<[^>]+>")


def strip_html(value: Any) -> str | None:
    """Plain text from a small HTML fragment: tags dropped, entities decoded, blank lines squeezed."""
    s = clean(value)
    if s is None:
        return None
    s = re.sub(r"(?i)<\s*(br|/p|/li|/div|/h\d)\s*/?>", "\n", s)
    s = html.unescape(_TAGS.sub("", s))
    s = re.sub(r"[ \t]+", " ", s)
    s = re.sub(r"\n\s*\n+", "\n\n", s)
    return s.strip() or None


_HREF = re.compile(r"""href\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s<>\"']+")


def urls_in(*values: Any) -> list[str]:
    """Distinct http(s) URLs in text or HTML (hrefs first), in order; trailing ``).,;`` dropped."""
    out: list[str] = []
    for v in values:
        if not v:
            continue
        s = str(v)
        for u in _HREF.findall(s) + _URL.findall(s):
            u = html.unescape(u).rstrip(").,;")
            if u.startswith(("http://", "https://")) and u not in out:
                out.append(u)
    return out


# --- numbers ----------------------------------------------------------------------------------

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# a number followed by a space, "(" or "/" and annotation: "6.5 (AV:N/AC:L/...)", "7.5/10"
_LEADING_FLOAT = re.compile(r"([+-]?[0-9]+(?:\.[0-9]+)?)(?:\s|\(|/)")


def to_float(value: Any) -> float | None:
    """A finite float, or None.

    Accepts ints and floats, and strings holding a decimal number (``"7.5"``, ``"-1"``, ``".5"``,
    ``"1e3"``; ASCII digits, surrounding whitespace ignored) or starting with one followed by a
    space, ``(`` or ``/`` (``"6.5 (AV:N/...)"`` -> 6.5). None for None, bools, NaN, infinities,
    blank strings, commas (``"7,5"``), digit separators (``"1_000"``) and anything else.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            f = float(value)
        except OverflowError:
            return None
        return f if math.isfinite(f) else None
    if not isinstance(value, str):
        return None
    s = value.strip()
    if _FLOAT.fullmatch(s):
        f = float(s)
    else:
        m = _LEADING_FLOAT.match(s)
        if m is None:
            return None
        f = float(m.group(1))
    return f if math.isfinite(f) else None


def to_int(value: Any) -> int | None:
    """An int, or None.

    Accepts ints, finite floats with no fraction (``3.0`` -> 3) and strings holding an integer
    (``" 42 "``, ``"-1"``) or a decimal number with no fraction (``"42.0"``, ``"1e3"``). None for
    None, bools, fractions (``3.5``, ``"3.5"``: never rounded), NaN, infinities, blank strings,
    commas and anything else.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        s = value.strip()
        if _INT.fullmatch(s):
            return int(s)
        if not _FLOAT.fullmatch(s):
            return None
        value = float(s)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def port_of(value: Any) -> int | None:
    """A TCP/UDP port 1-65535 (as :func:`to_int` reads it), else None (0 means "no port")."""
    n = to_int(value)
    return n if n is not None and 0 < n < 65536 else None


def cvss_score(value: Any) -> float | None:
    """A CVSS base score in 0-10 (as :func:`to_float` reads it), else None.

    Spreadsheet exports that lost the decimal point write ``75`` for 7.5: guessing is worse than
    leaving the score out.
    """
    f = to_float(value)
    return f if f is not None and 0.0 <= f <= 10.0 else None


def probability(value: Any) -> float | None:
    """A probability such as an EPSS score in 0-1 (as :func:`to_float` reads it), else None."""
    f = to_float(value)
    return f if f is not None and 0.0 <= f <= 1.0 else None


# --- dates ------------------------------------------------------------------------------------

_MS_THRESHOLD = 100_000_000_000  # epoch seconds this large are the year 5138: the value is milliseconds
_NANOS = re.compile(r"(\.\d{6})\d+")


def epoch_dt(value: Any) -> datetime | None:
    """An aware UTC datetime from Unix epoch seconds (an int, float or numeric string), else None.

    Values above 10^11 are milliseconds. Zero and negative values are None: exporters write 0 for
    "not set", and 1970-01-01 would be an invented date.
    """
    f = to_float(value) if not isinstance(value, str) or _FLOAT.fullmatch(value.strip()) else None
    if f is None or f <= 0:
        return None
    try:
        return datetime.fromtimestamp(f / 1000 if f > _MS_THRESHOLD else f, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_dt(value: Any, *formats: str) -> datetime | None:
    """An aware datetime, or None.

    Strings (blank and :func:`clean`'s placeholders are None): ISO 8601 as ``datetime.fromisoformat``
    reads it, with ``Z``/``z`` for UTC, a space or ``T`` between date and time, a date alone as
    midnight, and digits beyond microseconds dropped; then each strptime format in ``formats``.
    Numbers (not bools, not numeric strings) are Unix epoch times as :func:`epoch_dt` reads them.
    A value with no time zone is UTC.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return epoch_dt(value)
    s = clean(value) if isinstance(value, str) else None
    if s is None:
        return None
    iso = s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s
    dt: datetime | None = None
    try:
        dt = datetime.fromisoformat(_NANOS.sub(r"\1", iso))
    except ValueError:
        for fmt in formats:
            try:
                dt = datetime.strptime(s, fmt)
                break
            except ValueError:
                continue
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# --- containers -------------------------------------------------------------------------------


def as_list(value: Any) -> list[Any]:
    """A list as is; None as ``[]``; anything else (a scalar, an object) as a one-item list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def only_list(value: Any) -> list[Any]:
    """A list as is; anything else (None, a scalar, an object) as ``[]``."""
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    """An object as is; anything else (None, a list, a scalar, ``""``) as an empty dict."""
    return value if isinstance(value, dict) else {}


def uniq(values: Iterable[T | None]) -> list[T]:
    """Distinct truthy values in first-seen order (None, ``""``, 0 and empty containers dropped)."""
    seen: set[T] = set()
    out: list[T] = []
    for v in values:
        if v and v not in seen:
            seen.add(v)
            out.append(v)
    return out


def compact(d: dict[str, Any]) -> dict[str, Any]:
    """A dict without None, ``""``, ``[]`` or ``{}`` values (for ``extra``); 0 and False stay."""
    return {k: v for k, v in d.items() if v is not None and not (isinstance(v, (str, list, dict)) and not v)}


# --- locations --------------------------------------------------------------------------------


def split_url(url: str | None) -> tuple[str | None, int | None, str | None]:
    """(host, port, scheme) of a URL; the port is the explicit one, else 80/443 for http/https."""
    if not url:
        return None, None, None
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None, None, None
    scheme = parts.scheme.lower() or None
    if port is None and scheme in ("http", "https"):
        port = 80 if scheme == "http" else 443
    return host, port, scheme
