"""Request bodies of the sync API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SyncRequest(BaseModel):
    """What a sync pulls: only what changed since the last successful sync (the default, where the vendor
    can tell), or everything."""

    model_config = ConfigDict(extra="forbid")

    full: bool = Field(default=False, description="Pull everything the vendor holds, and resolve what it no longer "
                                                  "holds; false: only what changed since the last successful sync "
                                                  "where the vendor supports it (else everything).")
