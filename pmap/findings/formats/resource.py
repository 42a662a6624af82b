"""The code of the covered-resource rule (documented in :mod:`pmap.findings.coverage`), in the format toolkit so
that a parser can name a resource it covers without a finding (:meth:`.base.Report.cover`) exactly as the rule
names that resource's findings: ``report.cover(covered_resource(ParsedFinding("", host=..., ip=...)))``.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from pmap.findings.formats.base import ParsedFinding

ASSET_MAX = 500
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}


def url_origin(url: str | None) -> str | None:
    """``scheme://host:port`` of an absolute URL (lower-cased, default port written out), else None."""
    if not url:
        return None
    url = url.strip()
    start = url.find("://")
    if start <= 0:
        return None
    # only the part before the path, query or fragment names the origin: a report's many URLs of one site
    # share it, so it is parsed once (the import's hot loop calls this for every finding with a URL)
    end = len(url)
    for mark in "/?#":
        at = url.find(mark, start + 3)
        if at != -1 and at < end:
            end = at
    return _origin(url[:end])


@lru_cache(maxsize=4096)
def _origin(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not scheme or not host:
        return None
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def covered_resource(f: ParsedFinding) -> str | None:
    """The resource ``f`` belongs to (see the module doc); None for the stream's unnamed resource."""
    return clean_resource(f.asset or url_origin(f.url) or (f.host or f.ip or "").lower() or f.repository)


def clean_resource(value: str | None) -> str | None:
    """A resource name as stored: stripped, cut to :data:`ASSET_MAX`, storable text; None when blank."""
    if not value:
        return None
    value = value.strip()
    if len(value) > ASSET_MAX:
        value = value[:ASSET_MAX]
    if not value.isascii():  # lone surrogates: what PostgreSQL cannot store (as the row builder cleans text)
        value = value.encode("utf-8", "replace").decode("utf-8")
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value or None
