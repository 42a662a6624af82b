"""Helpers of the findings pulls (``pull_findings``): vendor times, next-page links, fetching ahead.

A next-page link is followed only through the operation's guarded client, which refuses a link to
another host (:class:`pmap.core.errors.EgressDenied`): a vendor answer cannot send the credential elsewhere.
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

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



def prefetched(pages: Iterator[T], *, name: str = "pmap-prefetch") -> Generator[T, None, None]:
    """``pages``, with the next one fetched on a thread while the caller works on the current one.

    A sync spends its time in two halves that can overlap: the vendor producing and sending a page or export
    chunk, and the import pipeline storing the one before. At most two pages are held (the one in use and the
    one fetched ahead), so memory stays bounded. An error of the fetching side is raised here, in order; a
    caller that stops early stops the fetching after the page in flight.
    """
    ahead: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def fetch() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        ahead.put(("page", page), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ahead.put(("end", None))
        except BaseException as exc:  # handed to the consumer, who raises it where the page would have been
            ahead.put(("error", exc))

    thread = threading.Thread(target=fetch, name=name, daemon=True)
    thread.start()
    try:
        while True:
            kind, value = ahead.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            ahead.get_nowait()  # unblock a fetcher waiting to hand over its page
        thread.join(timeout=30)
