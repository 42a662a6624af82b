"""Running connector operations: settings and credentials in, diagnostics out, never a secret.

:func:`operation_context` builds the :class:`OperationContext` an implementation receives (the
egress policy and TLS options from settings and the integration, the overall deadline, the
credential values for scrubbing). :func:`run_connection_test` wraps ``test_connection`` so a
vendor failure becomes a :class:`ConnectionTestResult` naming the failed step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from pmap.connectors.base import ConnectionTestResult, ConnectorType, OperationContext, Probe
from pmap.core import clock
from pmap.core.egress import EgressPolicy
from pmap.core.errors import EgressDenied, FieldProblem, PmapError, UpstreamError, ValidationFailed
from pmap.core.http_errors import validation_problems
from pmap.core.outbound import OutboundConfig, target_of
from pmap.core.redaction import scrub
from pmap.core.settings import Settings

log = logging.getLogger("pmap.connectors")

#: Operator-facing wording of each failed step, completed by the specific message.
STEP_HINTS = {
    "dns": "the host name could not be resolved",
    "egress": "the destination is not allowed by PMAP's egress policy",
    "connect": "no connection could be made",
    "tls": "the TLS handshake failed",
    "timeout": "the vendor did not answer in time",
    "http": "the vendor answered with an error",
    "auth": "the vendor rejected the credentials",
    "permission": "the account lacks a permission PMAP needs",
    "response": "the vendor's answer was not what PMAP expects",
}


def egress_policy(settings: Settings) -> EgressPolicy:
    """The egress policy of this deployment."""
    return EgressPolicy.from_strings(settings.production, settings.egress_allow_cidrs)


def operation_context(
    settings: Settings,
    ct: ConnectorType,
    connection: Mapping[str, Any],
    credentials: Mapping[str, str],
    *,
    purpose: str,
    budget: float | None = None,
) -> OperationContext:
    """The context for one operation of one connector (validated models, outbound config)."""
    try:
        conn_model: BaseModel = ct.connection_model.model_validate(dict(connection))
    except ValidationError as exc:
        # a row saved before a check existed ("../.." as a repository): the integration needs fixing
        problems = [FieldProblem(f"connection.{p.field}", p.reason)
                    for p in validation_problems([dict(e) for e in exc.errors(include_input=False)])]
        raise ValidationFailed("the integration's stored settings are no longer valid; update them",
                               fields=problems) from None
    vendor_fields = {k: v for k, v in credentials.items() if k in ct.credentials_model.model_fields}
    creds_model: BaseModel = ct.credentials_model.model_validate(vendor_fields)
    timeout = float(getattr(conn_model, "timeout_seconds", settings.connection_test_timeout))
    # the integration's per-call timeout (up to the schema's 120 s) is honoured: the operation's
    # budget is never shorter than one call of it
    total = max(budget if budget is not None else settings.connection_test_timeout, timeout)
    outbound = OutboundConfig(
        policy=egress_policy(settings),
        verify_tls=bool(getattr(conn_model, "verify_tls", True)),
        ca_bundle_pem=getattr(conn_model, "ca_bundle", None),
        timeout=min(timeout, total),
        budget=total,
    )
    secrets = tuple(v for v in credentials.values() if v)
    return OperationContext(vendor=ct.vendor, purpose=purpose, connection=conn_model, credentials=creds_model,
                            outbound=outbound, secrets=secrets, deadline=clock.monotonic() + total)


def _common_warnings(ctx: OperationContext) -> list[str]:
    warnings = []
    base = getattr(ctx.connection, "base_url", None)
    if base:
        scheme = target_of(base)[0]
        if scheme == "http":
            warnings.append("plain http: credentials and findings travel unencrypted; use https")
        elif not ctx.outbound.verify_tls:
            warnings.append("TLS certificate verification is off: the server's identity is not checked")
    return warnings


def run_connection_test(ctx: OperationContext, ct: ConnectorType) -> ConnectionTestResult:
    """Run the vendor's connection test; any failure is a result with ``failed_step``, not an error."""
    if ct.implementation is None:
        return ConnectionTestResult(ok=False, failed_step="response",
                                    message=f"{ct.display_name} is a file-only tool: import its reports instead")
    started = time.perf_counter()
    warnings: list[str] = []
    try:
        warnings = _common_warnings(ctx)
        probe: Probe = ct.implementation.test_connection(ctx)
    except UpstreamError as exc:
        latency = (time.perf_counter() - started) * 1000
        hint = STEP_HINTS.get(exc.step, "the test failed")
        message = scrub(exc.message, ctx.secrets)
        log.info("connection test of %s failed at %s: %s", ct.vendor, exc.step, message)
        return ConnectionTestResult(ok=False, latency_ms=round(latency, 1), warnings=warnings, failed_step=exc.step,
                                    message=scrub(f"{hint}: {message}", ctx.secrets))
    except PmapError as exc:
        latency = (time.perf_counter() - started) * 1000
        return ConnectionTestResult(ok=False, latency_ms=round(latency, 1), warnings=warnings, failed_step="response",
                                    message=scrub(exc.message, ctx.secrets))
    latency = (time.perf_counter() - started) * 1000
    return ConnectionTestResult(
        ok=True, latency_ms=round(latency, 1), product=probe.product, version=probe.version, license=probe.license,
        warnings=[*warnings, *(scrub(w, ctx.secrets) for w in probe.warnings)],
        message=scrub(probe.message, ctx.secrets) if probe.message else "connected and authenticated",
    )


def overlay_credentials(model: type[BaseModel], stored: Mapping[str, str],
                        incoming: Mapping[str, str]) -> dict[str, str]:
    """``stored`` overlaid by ``incoming``; a complete credential kind in ``incoming`` (a model's
    ``credential_kinds``, e.g. OAuth client credentials) replaces the stored fields of the other kinds."""
    kinds: Mapping[str, tuple[str, ...]] = getattr(model, "credential_kinds", None) or {}
    merged = {**stored, **incoming}
    for name, fields in kinds.items():
        if all(incoming.get(f) for f in fields):
            for other, other_fields in kinds.items():
                if other != name:
                    for f in other_fields:
                        if f not in fields and f not in incoming:
                            merged.pop(f, None)
    return merged


def plain_values(values: Mapping[str, SecretStr | str | None]) -> dict[str, str]:
    """Plain strings of a credential map (SecretStr unwrapped, None dropped)."""
    out = {}
    for k, v in values.items():
        if v is None:
            continue
        out[k] = v.get_secret_value() if isinstance(v, SecretStr) else str(v)
    return out


__all__ = ["EgressDenied", "egress_policy", "operation_context", "overlay_credentials", "plain_values",
           "run_connection_test"]
