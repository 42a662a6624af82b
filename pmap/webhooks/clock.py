"""The one clock of the webhooks domain, so tests can travel in time by patching :func:`now`."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)
