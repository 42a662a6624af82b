"""Scheduled rotation of a webhook secret: rotate with the grace window, then re-register on the vendor.

The scheduler (:mod:`pmap.schedules`) calls :func:`scheduled_rotation`'s function when an integration's
``webhook_rotation_schedule`` is due. It acts as the system with an operator's reach, never an admin's: the new
secret is sent to the vendor only where the hook was registered and an admin approved the current target
(:func:`pmap.webhooks.approval.may_send_secret`), so a target moved since is rotated but not re-registered.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session, sessionmaker

from pmap.auth.principal import Principal, Role
from pmap.connectors.catalog import connector_types
from pmap.core.db import transaction
from pmap.core.errors import Conflict, NotFound, PmapError
from pmap.core.state import AppState
from pmap.integrations.models import Integration
from pmap.schedules.service import Submit
from pmap.webhooks import approval, service, setup

log = logging.getLogger("pmap.webhooks.rotation")


class RotatedNotRegistered(PmapError):
    """The secret was rotated, but the new one could not be installed on the vendor (safe message)."""

    status, code = 502, "rotated_not_registered"


def scheduler_principal(organization_id: uuid.UUID) -> Principal:
    """Who a scheduled rotation acts as: the system, with an operator's reach (audited as system:scheduler)."""
    return Principal(token_id=None, name="scheduler", organization_id=organization_id, role=Role.OPERATOR,
                     kind="system")


def scheduled_rotation(state: AppState, sessions: sessionmaker[Session]) -> Submit:
    """What the scheduler calls when a rotation is due; returns None (the work is done at once)."""

    def rotate(integration_id: uuid.UUID, organization_id: uuid.UUID) -> uuid.UUID | None:
        principal = scheduler_principal(organization_id)
        with transaction(sessions) as session:
            row = session.get(Integration, integration_id)
            if row is None or row.organization_id != organization_id:
                raise NotFound("the integration was deleted before its scheduled rotation")
            if not service.is_configured(row):
                raise Conflict("no webhook secret is configured: nothing to rotate")
            row = service.regenerate(session, state, principal, row, None)
            registered = bool(service.state_of(row).get("registered"))
            if not registered or not service.can_register(connector_types().get(row.vendor)):
                return None
            if not approval.may_send_secret(row, principal):
                raise RotatedNotRegistered("rotated; not re-registered: the target changed since an admin "
                                           "registered the webhook, so an admin must register it again")
            try:
                setup.register(session, state, principal, row)
            except PmapError as exc:
                raise RotatedNotRegistered(f"rotated; re-registering on the vendor failed: {exc.message}") from None
        return None

    return rotate
