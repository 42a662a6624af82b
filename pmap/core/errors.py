"""One error tree: every error PMAP raises on purpose carries an HTTP status and a safe message.

The message of a :class:`PmapError` is shown to API callers, so it must never contain a secret or
an internal detail. Anything that is not a ``PmapError`` is an unexpected fault: it answers 500
with a correlation id and nothing else (see :mod:`pmap.core.http_errors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One invalid input field: a dotted path (``credentials.password``) and the reason."""

    field: str
    reason: str


#: attributes a class fixes for all its instances (see :meth:`PmapError.__setattr__`)
FIXED_BY_CLASS = frozenset({"status", "code"})


class PmapError(Exception):
    """Root of PMAP's errors: ``status`` and ``code`` for the API, ``message`` safe to show.

    One subclass per condition: the class fixes the status and the code, and an instance cannot
    change them (another answer is another condition, so another class).
    """

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        fields: list[FieldProblem] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []
        self.details = details or {}

    def __setattr__(self, name: str, value: Any) -> None:
        if name in FIXED_BY_CLASS:
            raise AttributeError(f"{type(self).__name__}.{name} is fixed by the class: raise another class instead")
        super().__setattr__(name, value)


class BadRequestError(PmapError):
    status, code = 400, "bad_request"


class ValidationFailed(PmapError):
    status, code = 422, "validation_failed"


class AuthenticationRequired(PmapError):
    status, code = 401, "authentication_required"


class PermissionDenied(PmapError):
    status, code = 403, "permission_denied"


class NotFound(PmapError):
    status, code = 404, "not_found"


class Conflict(PmapError):
    """The resource's state forbids the request now (a name taken, a job running, no secret yet)."""

    status, code = 409, "conflict"


class OperationNotSupported(PmapError):
    """The integration's vendor type cannot do what was asked (no webhooks, no tickets, no report
    files, no permission check): no state change makes it possible, so 422 rather than 409."""

    status, code = 422, "operation_not_supported"


class IntegrationDisabled(Conflict):
    """The integration is switched off (``enabled: false``): nothing is pulled from or sent to its vendor."""

    code = "integration_disabled"


class UnsupportedMediaType(PmapError):
    status, code = 415, "unsupported_media_type"


class RateLimited(PmapError):
    status, code = 429, "rate_limited"


class ServiceBusy(PmapError):
    """A write could not take the database's lock in time (SQLite has one writer); nothing was
    written. Answered 503 with ``Retry-After``: the caller (a vendor's webhook sender too) retries."""

    status, code = 503, "service_busy"
    RETRY_AFTER_SECONDS = 5

    def __init__(self, message: str = "the database is busy; nothing was written: retry shortly") -> None:
        super().__init__(message, details={"retry_after": self.RETRY_AFTER_SECONDS})


class ConfigurationError(PmapError):
    """The service is misconfigured (missing or weak platform key, bad settings): refuse to start."""

    status, code = 500, "configuration_error"


class CryptoError(PmapError):
    """A ciphertext could not be opened: wrong key, wrong row or column, or tampering."""

    status, code = 500, "credential_decrypt_failed"


#: steps at which the vendor answered, and refused the integration's credentials or their rights
REFUSED_STEPS = frozenset({"auth", "permission"})


class UpstreamError(PmapError):
    """A vendor or network call failed. ``step`` names where (dns, egress, connect, tls, http,
    auth, permission, response, timeout); the message is scrubbed of credential values.

    502: the vendor could not be reached or answered wrongly. A refusal at ``auth`` or
    ``permission`` is a :class:`VendorRefused`: build errors whose step is not a literal with
    :func:`upstream_error`, which picks the class.
    """

    status, code = 502, "upstream_error"

    def __init__(self, message: str, *, step: str, upstream_status: int | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.step = step
        self.upstream_status = upstream_status


class VendorRefused(UpstreamError):
    """The vendor answered and refused the integration's credentials or their rights (steps
    ``auth``, ``permission``): the integration's configuration needs fixing, not a gateway."""

    status, code = 422, "vendor_refused"


class ScanLaunchUnavailable(VendorRefused):
    """The vendor's product cannot launch scans (Nessus answers 412, or a declared capability such as
    ``license.features.scan_api`` is false): no retry helps; launch the scan in the vendor's own console
    or from its manager instead."""

    status, code = 422, "scan_launch_unavailable"


class EgressDenied(UpstreamError):
    """The destination is not allowed by the egress guard; nothing was sent."""

    status, code = 422, "egress_denied"

    def __init__(self, message: str, **kw: Any) -> None:
        super().__init__(message, step="egress", **kw)


def upstream_error(message: str, *, step: str, upstream_status: int | None = None, **kw: Any) -> UpstreamError:
    """The error of a vendor call that failed at ``step``: :class:`VendorRefused` for a refusal
    (``auth``, ``permission``), :class:`EgressDenied` for ``egress``, else :class:`UpstreamError`."""
    if step in REFUSED_STEPS:
        return VendorRefused(message, step=step, upstream_status=upstream_status, **kw)
    if step == "egress":
        return EgressDenied(message, upstream_status=upstream_status, **kw)
    return UpstreamError(message, step=step, upstream_status=upstream_status, **kw)
