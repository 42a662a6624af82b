"""Value helpers shared by the VM, DAST, discovery and mobile report parsers.

Small, total functions: they turn a vendor's loosely typed value into a PMAP field value or
None, never raise on odd input and never invent data.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

# --- values -----------------------------------------------------------------------------------

CVE_RE = re.compile(r"\bCVE-\d{4}-\d{4,}\b", re.IGNORECASE)
_CWE_RE = re.compile(r"(?:CWE)?[-_:\s]*(\d{1,5})", re.IGNORECASE)
_CWE_NAMED = re.compile(r"CWE[-_ :]*(\d{1,5})", re.IGNORECASE)
_CWE_BARE_LIST = re.compile(r"\d{1,5}(\s*,\s*\d{1,5})*")
_CWE_NUMBER = re.compile(r"\d{1,5}")
_LEADING_NUMBER = re.compile(r"\s*(\d+(?:\.\d+)?)")
_CVSS_PREFIX = re.compile(r"\s*CVSS:(\d\.\d)/")
_CVSS2_AUTH = re.compile(r"\bAu:[NSM]\b")
_PLACEHOLDERS = ("-", "'-", "N/A", "n/a")


def clean(value: Any) -> str | None:
    """A stripped string, or None for missing/blank values and placeholder dashes."""
    if value is None:
        return None
    s = (value if type(value) is str else str(value)).strip()
    return s if s and s not in _PLACEHOLDERS else None


def cves_in(*values: Any) -> list[str]:
    """Distinct CVE ids found in the given strings or lists, upper-cased, in order."""
    out: list[str] = []
    for v in values:
        items: Iterable[Any] = v if isinstance(v, (list, tuple)) else [v]
        for item in items:
            if item is None:
                continue
            for m in CVE_RE.findall(str(item)):
                cve = m.upper()
                if cve not in out:
                    out.append(cve)
    return out


def cwes_in(*values: Any) -> list[int]:
    """Distinct CWE numbers from values like ``79``, ``"CWE-79"``, ``"cwe-79: XSS"``, lists."""
    out: list[int] = []
    for v in values:
        items: Iterable[Any] = v if isinstance(v, (list, tuple)) else [v]
        for item in items:
            if item is None or isinstance(item, bool):
                continue
            if isinstance(item, int):
                nums = [item]
            else:
                s = str(item).strip()
                if not s:
                    continue
                found = _CWE_NAMED.findall(s)
                if not found and _CWE_BARE_LIST.fullmatch(s):
                    found = _CWE_NUMBER.findall(s)
                nums = [int(n) for n in found]
            for n in nums:
                if n > 0 and n not in out:
                    out.append(n)
    return out


def to_int(value: Any) -> int | None:
    """An int from a number or numeric string, else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        try:
            f = float(str(value).strip())
        except ValueError:
            return None
        return int(f) if f.is_integer() else None


def to_float(value: Any) -> float | None:
    """A float from a number or numeric string (leading number of ``"6.5 (AV:..)"``), else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    m = _LEADING_NUMBER.match(str(value))
    return float(m.group(1)) if m else None


def port_of(value: Any) -> int | None:
    """A TCP/UDP port 1-65535, else None (0 and garbage mean 'no port')."""
    n = to_int(value)
    return n if n is not None and 0 < n < 65536 else None


def cvss_version_of(vector: str | None) -> str | None:
    """CVSS version named by a vector string (``CVSS:3.1/...`` -> ``3.1``; v2 vectors -> ``2.0``)."""
    if not vector:
        return None
    m = _CVSS_PREFIX.match(vector)
    if m:
        return m.group(1)
    if _CVSS2_AUTH.search(vector):
        return "2.0"
    return None


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
    """Distinct http(s) URLs in text or HTML (hrefs first), in order."""
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


def parse_dt(value: Any, *formats: str) -> datetime | None:
    """A datetime from ISO-8601 or the given strptime formats, else None; naive means UTC."""
    s = clean(value)
    if s is None:
        return None
    dt: datetime | None = None
    iso = s.replace("Z", "+00:00") if s.endswith("Z") else s
    try:
        dt = datetime.fromisoformat(iso)
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


def epoch_dt(value: Any) -> datetime | None:
    """A UTC datetime from a Unix timestamp (seconds), else None."""
    n = to_int(value)
    if n is None or n <= 0:
        return None
    try:
        return datetime.fromtimestamp(n, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def split_url(url: str | None) -> tuple[str | None, int | None, str | None]:
    """(host, port, scheme) of a URL; port is the explicit one or the scheme default."""
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


def dedupe(items: Iterable[str]) -> list[str]:
    """Items in order without repeats or blanks."""
    out: list[str] = []
    for i in items:
        if i and i not in out:
            out.append(i)
    return out


def as_list(value: Any) -> list[Any]:
    """A list as is; None as []; a scalar or object as a one-item list."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def as_str(value: Any) -> str | None:
    """A JSON scalar as stripped text (lists joined with ', '), None when blank."""
    if isinstance(value, list):
        return clean(", ".join(str(v) for v in value if v is not None))
    if isinstance(value, dict):
        return None
    return clean(value)


EVIDENCE_MAX = 4000  # characters of raw vendor evidence kept in ``extra``


def evidence(value: Any) -> str | None:
    """Vendor evidence text, truncated so ``extra`` stays small."""
    s = clean(value)
    if s is None:
        return None
    return s if len(s) <= EVIDENCE_MAX else s[:EVIDENCE_MAX] + "…[truncated]"


def compact(d: dict[str, Any]) -> dict[str, Any]:
    """A dict without None/empty values (for ``extra``)."""
    return {k: v for k, v in d.items() if v not in (None, "", [], {})}


def cvss_score(value: Any) -> float | None:
    """A CVSS base score in 0-10, else None (spreadsheet exports that lost the decimal point
    write ``75`` for 7.5; guessing is worse than leaving the score out)."""
    f = to_float(value)
    return f if f is not None and 0.0 <= f <= 10.0 else None


def probability(value: Any) -> float | None:
    """A probability such as an EPSS score in 0-1, else None."""
    f = to_float(value)
    return f if f is not None and 0.0 <= f <= 1.0 else None


def as_dict(value: Any) -> dict[str, Any]:
    """A JSON object as is; anything else (null, list, scalar) as an empty object."""
    return value if isinstance(value, dict) else {}


def only_list(value: Any) -> list[Any]:
    """A JSON array as is; anything else as an empty list."""
    return value if isinstance(value, list) else []
