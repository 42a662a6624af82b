"""Seeded findings a test can size: ``POST /_sandbox/seed/{vendor_key}`` gives one simulated vendor N
deterministic findings, some of them fixed; a vendor module renders each in its own API's shape.

Each finding remembers when its state last changed (unix seconds), so a vendor's "changed since" filter
has something true to answer: seeding again keeps the time of every finding whose state stays, and
stamps now on new findings and on findings that became fixed or open again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from pmap_sandbox.scanners._common import store

router = APIRouter(prefix="/_sandbox/seed", tags=["sandbox"])


@dataclass(frozen=True, slots=True)
class Seeded:
    """Finding number ``n`` of a vendor's seeded data."""

    n: int
    fixed: bool
    changed: float  # unix seconds of its last state change
    created: float  # unix seconds it first appeared


class Seed(BaseModel):
    """Body of ``POST /_sandbox/seed/{vendor_key}``: findings 0..count-1, those in ``fixed`` fixed."""

    count: int = Field(ge=0, le=200_000)
    fixed: list[int] = Field(default_factory=list)
    at: float | None = Field(default=None, description="unix seconds to stamp the changes with (default: now)")


@router.post("/{vendor_key}")
async def seed(vendor_key: str, body: Seed, request: Request) -> dict[str, int]:
    """Replace a vendor's seeded findings (keeping the change time of every finding whose state stays)."""
    now = time.time() if body.at is None else body.at
    before: dict[int, Seeded] = store(request, vendor_key).get("seeded") or {}
    fixed = set(body.fixed)
    items = {}
    for n in range(body.count):
        old = before.get(n)
        is_fixed = n in fixed
        same = old is not None and old.fixed == is_fixed
        items[n] = Seeded(n, is_fixed, old.changed if same and old else now, old.created if old else now)
    store(request, vendor_key)["seeded"] = items
    return {"count": len(items), "fixed": sum(1 for i in items.values() if i.fixed)}


def seeded(request: Request, vendor_key: str) -> list[Seeded] | None:
    """The vendor's seeded findings in order, or None when none were seeded (the built-in examples answer)."""
    items: dict[int, Seeded] | None = store(request, vendor_key).get("seeded")
    return None if items is None else [items[n] for n in sorted(items)]
