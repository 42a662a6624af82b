"""Calling a connector implementation for an operation other than a connection test (webhook
registration, permission checks): the operation context from resolved credentials, and vendor failures
turned into scrubbed API errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from pmap.connectors.base import ConnectorType, OperationContext
from pmap.connectors.runner import STEP_HINTS, operation_context
from pmap.core.errors import UpstreamError, upstream_error
from pmap.core.redaction import scrub
from pmap.core.settings import Settings

#: Registration and permission checks may take several vendor calls; one budget covers them all.
OPERATION_BUDGET_SECONDS = 30.0


def vendor_context(settings: Settings, ct: ConnectorType, connection: Mapping[str, object],
                   credentials: Mapping[str, str], *, purpose: str,
                   extra_secrets: Iterable[str] = ()) -> OperationContext:
    """The context of one operation; ``extra_secrets`` (the webhook secret) are scrubbed like credentials."""
    ctx = operation_context(settings, ct, dict(connection), credentials, purpose=purpose,
                            budget=max(settings.connection_test_timeout, OPERATION_BUDGET_SECONDS))
    extra = tuple(s for s in extra_secrets if s)
    return dataclasses.replace(ctx, secrets=ctx.secrets + extra) if extra else ctx


def vendor_failure(exc: UpstreamError, action: str, secrets: Iterable[str]) -> UpstreamError:
    """An API error naming the action and the failed step, its message scrubbed; the status of the
    class (502 upstream, 422 egress or vendor_refused) follows from the step, as the original's did."""
    hint = STEP_HINTS.get(exc.step, "the vendor call failed")
    message = scrub(f"{action} failed at step {exc.step}: {hint}: {exc.message}", tuple(secrets))
    return upstream_error(message, step=exc.step, upstream_status=exc.upstream_status)


def failure_message(exc: UpstreamError, secrets: Iterable[str]) -> str:
    """A scrubbed one-line explanation of a failed step (for results that report rather than raise)."""
    hint = STEP_HINTS.get(exc.step, "the vendor call failed")
    return scrub(f"{hint}: {exc.message}", tuple(secrets))
