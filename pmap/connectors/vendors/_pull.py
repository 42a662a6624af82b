"""Helpers of the findings pulls (``pull_findings``): vendor times and next-page links.

A next-page link is followed only through the operation's guarded client, which refuses a link to
another host (:class:`pmap.core.errors.EgressDenied`): a vendor answer cannot send the credential elsewhere.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx

_LINK = re.compile(r'<([^>]*)>\s*((?:;\s*[^;,]+)*)')
_REL = re.compile(r'rel\s*=\s*"?([^";]+)"?', re.IGNORECASE)


def utc_text(when: datetime) -> str:
    """``when`` as RFC 3339 UTC with seconds (``2024-03-01T00:00:00Z``), as the vendors' filters take it."""
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def link_rel(header: str | None, rel: str = "next") -> str | None:
    """The target of ``rel`` in an RFC 8288 ``Link`` header (GitHub's paging), or None."""
    for match in _LINK.finditer(header or ""):
        for found in _REL.finditer(match.group(2)):
            if rel in found.group(1).lower().split():
                return match.group(1).strip()
    return None


def under_base(base_url: str, link: str) -> str:
    """A vendor's next-page link as a request target of a client on ``base_url``.

    An absolute link is returned as is (the client refuses another host); a host-relative link that
    already starts with the base path (``/rest/orgs/...``) becomes absolute on the base's origin; any
    other link is relative to the base (``/orgs/...`` under ``.../rest``, as Snyk documents its links).
    """
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", link):
        return link
    base = httpx.URL(base_url)
    path = base.path.rstrip("/")
    if path and (link == path or link.startswith(path + "/")):
        return f"{base.scheme}://{base.netloc.decode('ascii')}{link}"
    return link

