"""Request and response bodies of the ticket endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pmap.core.text import OneLine


class TicketCreate(BaseModel):
    """Which tracker gets the ticket, and optional overrides."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    integration_id: uuid.UUID = Field(description="A ticketing or ITSM integration offering create_ticket")
    project: OneLine | None = Field(default=None, max_length=200,
                                    description="Project / repository, if not the integration's default")
    labels: list[Annotated[OneLine, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=20)


class TicketOut(BaseModel):
    """The finding's open ticket on the tracker (201 when this request opened it, 200 when it existed)."""

    finding_id: uuid.UUID
    integration_id: uuid.UUID
    key: str
    url: str | None
    status: str | None
    done: bool
    opened_at: datetime


class LinkedTicketOut(BaseModel):
    """A ticket opened for a finding, as PMAP last learned it (a delivery, or a reconcile)."""

    integration_id: uuid.UUID
    vendor: str
    key: str | None = Field(description="The tracker's key; null only while the ticket is being opened.")
    url: str | None
    status: str | None
    done: bool
    opened_at: datetime
    closed_at: datetime | None
    reconcile_error: str | None = Field(description="Why the last reconcile could not ask the tracker (scrubbed).")


class TicketEventOut(BaseModel):
    """A ticket status change learned from a delivery."""

    id: uuid.UUID
    ticket_key: str
    status: str | None
    done: bool
    finding_id: uuid.UUID | None
    finding_updated: bool
    delivery: uuid.UUID | None
    received_at: datetime


class TicketEventPage(BaseModel):
    """One page of ticket events, newest first."""

    items: list[TicketEventOut]
    next_cursor: str | None
