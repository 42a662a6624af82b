"""Creating, listing, reading, updating and deleting integrations. Listing decrypts nothing."""

from __future__ import annotations

import enum
import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from pmap.audit.service import SessionAudit
from pmap.auth.principal import Principal, Role
from pmap.connectors.base import SECRET_MIN_CHARS, ConnectorType, secret_field_names
from pmap.connectors.catalog import connector_types
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.cron import next_due
from pmap.core.crypto import KeyStore
from pmap.core.db import is_foreign_key_violation, new_id, utcnow
from pmap.core.errors import Conflict, FieldProblem, PermissionDenied, ValidationFailed
from pmap.core.http_errors import validation_problems
from pmap.core.outbound import target_of
from pmap.core.pagination import (
    SortKey,
    contains_text,
    count_matching,
    newest_first,
    sorted_page,
    split_page,
    split_sorted_page,
)
from pmap.core.seams import AuditSink, CredentialSource, Purpose
from pmap.core.settings import Settings
from pmap.core.text import CONTROL_CHARS
from pmap.core.urlpath import control_character_in
from pmap.credentials.service import seal_credentials
from pmap.integrations.deletion import delete_with_dependents
from pmap.integrations.models import Integration
from pmap.integrations.schemas import IntegrationCreate, IntegrationOut, IntegrationPage, IntegrationUpdate

LEGACY_API_KEY = "connection.api_key"


@dataclass(frozen=True)
class IntegrationFilters:
    """What ``GET /integrations`` narrows on; ``None`` is no filter."""

    name: str | None = None  # contained in the name, case-insensitively
    vendor: str | None = None
    category: str | None = None
    enabled: bool | None = None


class IntegrationSort(str, enum.Enum):
    """The orders ``GET /integrations?sort=`` offers besides newest first: a field, "-" for descending."""

    NAME = "name"
    NAME_DESC = "-name"
    VENDOR = "vendor"
    VENDOR_DESC = "-vendor"
    CATEGORY = "category"
    CATEGORY_DESC = "-category"
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    LAST_TESTED_AT = "last_tested_at"
    LAST_TESTED_AT_DESC = "-last_tested_at"
    LAST_SYNCED_AT = "last_synced_at"
    LAST_SYNCED_AT_DESC = "-last_synced_at"


_TIME_COLUMNS = frozenset({"created_at", "last_tested_at", "last_synced_at"})
#: each order's key (never tested or synced sorts as the earliest time)
SORT_KEYS: dict[str, SortKey] = {
    s.value: SortKey(s.value, getattr(Integration, s.value.lstrip("-")), s.value.startswith("-"),
                     s.value.lstrip("-") in _TIME_COLUMNS)
    for s in IntegrationSort
}

_PLACEHOLDER = re.compile(r"^(?:[*•xX]{3,}|\[?redacted\]?|<redacted>|\*+unchanged\*+|unchanged)$", re.IGNORECASE)


def vendor_type(vendor: str) -> ConnectorType:
    """The catalog entry for ``vendor``, or a 422 naming the field."""
    ct = connector_types().get(vendor)
    if ct is None:
        raise ValidationFailed("unknown vendor type", fields=[
            FieldProblem("vendor", f"unknown vendor type {vendor!r}; see GET /api/v1/connector-types")])
    return ct


_CONTROL = CONTROL_CHARS
#: a DNS name (labels of 1-63 letters, digits, hyphens; 253 at most) or an IP literal as target_of gives it
_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*"
                       r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.?$"
                       r"|^[0-9a-f:.]+$", re.IGNORECASE)


def secret_problem(text: str) -> str | None:
    """Why a submitted secret value cannot be kept, or None. Never includes the value."""
    if _PLACEHOLDER.match(text.strip()):
        return "looks like a masked placeholder; omit the field to keep the stored value"
    if _CONTROL.search(text):
        # a line break or NUL would reach a vendor's header or a log escaped, out of the masking's sight
        return "contains control characters (line breaks, tabs, NUL); a credential is one line of text"
    if len(text) < SECRET_MIN_CHARS:
        return f"is too short for a credential (at least {SECRET_MIN_CHARS} characters)"
    return None


def _plain(values: dict[str, SecretStr | None]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    problems = []
    for name, value in values.items():
        # surrounding whitespace (a pasted token's trailing newline) is never part of a credential
        text = value.get_secret_value().strip() if value is not None else None
        reason = secret_problem(text) if text is not None else None
        if reason is not None:
            problems.append(FieldProblem(f"credentials.{name}", reason))
        out[name] = text
    if problems:
        raise ValidationFailed("the request is invalid", fields=problems)
    return out


def legacy_api_key(value: Any) -> str | None:
    """A legacy ``connection.api_key`` checked like any credential value (None: not given)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed("the request is invalid",
                               fields=[FieldProblem("connection.api_key", "must be a string")])
    text = value.strip()
    if (reason := secret_problem(text)) is not None:
        raise ValidationFailed("the request is invalid", fields=[FieldProblem("connection.api_key", reason)])
    return text


def validate_connection(ct: ConnectorType, raw: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Validated non-secret settings (defaults filled) and the legacy ``api_key`` split off."""
    raw = dict(raw)
    legacy = legacy_api_key(raw.pop("api_key", None))
    if ct.default_base_url and not raw.get("base_url") and "base_url" in ct.connection_model.model_fields:
        raw["base_url"] = ct.default_base_url
    model = _validate(ct.connection_model, raw, "connection")
    data = model.model_dump(mode="json", exclude_none=True)
    if "base_url" in data:
        _check_base_url(data["base_url"])
        data["base_url"] = data["base_url"].rstrip("/")
    return data, (legacy or None)


def _embeds_credentials(url: str) -> bool:
    """Whether ``url`` starts with ``user@`` or ``user:password@`` (a password may hold "/" or "@")."""
    rest = url.split("://", 1)[-1]
    before_at, at, _ = rest.partition("@")
    if not at or before_at.startswith("["):  # none, or an IPv6 host with "@" in its path
        return False
    if "/" not in before_at:
        return True
    # "host:8443/path/@x" is a port and a path; "user:pa/ss@host" is a password
    _user, colon, after = before_at.partition(":")
    return bool(colon) and not after.split("/", 1)[0].isdigit()


def _base_url_refused(reason: str) -> ValidationFailed:
    return ValidationFailed("the request is invalid", fields=[FieldProblem("connection.base_url", reason)])


def _check_base_url(url: str) -> None:
    # user:password@ first: such a URL may not even parse (a password holding "@" or "/"), and the
    # answer should say why it is refused (never echoing it)
    if _embeds_credentials(url):
        raise _base_url_refused("must not embed credentials; use the credentials fields")
    if control_character_in(url):
        # "%0d%0a" parses as a URL, then breaks (or splits) every request built from it
        raise _base_url_refused("must not hold control characters (CR, LF, NUL, TAB, DEL, ...), raw or percent-encoded")
    try:
        scheme, host, _port, _path = target_of(url)
    except Exception:
        raise _base_url_refused("is not a valid http(s) URL") from None
    if scheme not in ("http", "https") or not host:
        raise _base_url_refused("must be an http or https URL with a host")
    if "?" in url or "#" in url:
        # a token in a query string would be stored and shown as a plain setting
        raise _base_url_refused("must not carry a query string or fragment; "
                                "credentials belong in the credentials fields")
    if any(c.isspace() for c in url) or not _HOSTNAME.match(host):
        raise _base_url_refused("does not name a valid host")


def validate_credentials(ct: ConnectorType, values: Mapping[str, str | None]) -> dict[str, str]:
    """The complete credential map, checked against the vendor's schema (values never echoed)."""
    present = {k: v for k, v in values.items() if v is not None}
    _validate(ct.credentials_model, present, "credentials")
    return {k: str(v) for k, v in present.items()}


def _validate(model: type[BaseModel], data: dict[str, Any], prefix: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [FieldProblem(f"{prefix}.{p.field}" if p.field != "body" else prefix, p.reason)
                    for p in validation_problems([dict(e) for e in exc.errors(include_input=False)])]
        raise ValidationFailed("the request is invalid", fields=problems) from None


def _secret_names(values: dict[str, str], legacy: str | None) -> list[str]:
    names = sorted(values)
    if legacy:
        names.append(LEGACY_API_KEY)
    return names


def _sealed_map(values: dict[str, str], legacy: str | None) -> dict[str, str]:
    data = dict(values)
    if legacy:
        data[LEGACY_API_KEY] = legacy
    return data


def warnings_for(row: Integration) -> list[str]:
    """Standing warnings about an integration's configuration."""
    out = []
    if row.allow_unsigned_webhooks:
        out.append("unsigned webhook deliveries are accepted for this integration")
    if row.connection.get("verify_tls") is False:
        out.append("TLS certificate verification is off")
    if str(row.connection.get("base_url", "")).startswith("http://"):
        out.append("plain http: credentials travel unencrypted")
    return out


def to_out(row: Integration) -> IntegrationOut:
    """Response body of one integration (metadata only)."""
    return IntegrationOut(
        id=row.id, name=row.name, vendor=row.vendor, category=row.category, connection=dict(row.connection),
        credentials_set=list(row.credential_fields), enabled=row.enabled,
        allow_unsigned_webhooks=row.allow_unsigned_webhooks, severity_threshold=row.severity_threshold,
        webhook_secret_configured=bool((row.webhook_state or {}).get("configured")), warnings=warnings_for(row),
        last_tested_at=row.last_tested_at, last_test=row.last_test, last_synced_at=row.last_synced_at,
        last_sync=row.last_sync,
        sync_schedule=row.sync_schedule,
        next_sync_at=next_due(row.sync_schedule, utcnow()) if row.sync_schedule and row.enabled else None,
        webhook_rotation_schedule=row.webhook_rotation_schedule,
        next_webhook_rotation_at=(next_due(row.webhook_rotation_schedule, utcnow())
                                  if row.webhook_rotation_schedule and row.enabled else None),
        created_at=row.created_at, updated_at=row.updated_at,
    )


#: the audit action of every change of ``allow_unsigned_webhooks`` (greppable on its own)
UNSIGNED_ACTION = AuditAction.WEBHOOK_ALLOW_UNSIGNED


def _guard_unsigned(settings: Settings, audit: AuditSink, principal: Principal, was: bool, wanted: bool,
                    integration_id: uuid.UUID | None = None) -> None:
    """In production only an admin may turn on accepting unsigned webhook deliveries: anyone who knows
    the receiving URL could then send events. 403 otherwise, audited as ``access.denied``."""
    if not wanted or was or not settings.production or principal.role is Role.ADMIN:
        return
    audit.record(actor=principal.actor, action=AuditAction.ACCESS_DENIED, integration_id=integration_id, purpose=None,
                 outcome=AuditOutcome.FAILURE, detail={"field": "allow_unsigned_webhooks", "needs": Role.ADMIN.value})
    raise PermissionDenied("in production only an admin may allow unsigned webhook deliveries "
                           "(allow_unsigned_webhooks)")


def _audit_unsigned(session: Session, settings: Settings, principal: Principal, row: Integration) -> None:
    _audit(session, principal, UNSIGNED_ACTION, row,
           {"allow_unsigned_webhooks": row.allow_unsigned_webhooks, "production": settings.production})


def create(session: Session, keys: KeyStore, principal: Principal, body: IntegrationCreate, *,
           settings: Settings, audit: AuditSink) -> Integration:
    """Validate, encrypt and store a new integration."""
    _guard_unsigned(settings, audit, principal, False, body.allow_unsigned_webhooks)
    if body.webhook_rotation_schedule is not None:
        principal.require(Role.ADMIN)  # rotating the webhook secret is an admin's decision
    ct = vendor_type(body.vendor)
    connection, legacy = validate_connection(ct, body.connection)
    credentials = validate_credentials(ct, _plain(body.credentials))
    row_id = new_id()
    row = Integration(
        id=row_id, organization_id=principal.organization_id, name=body.name, vendor=ct.vendor,
        category=ct.category.value, connection=connection,
        encrypted_credentials=seal_credentials(keys, row_id, _sealed_map(credentials, legacy)),
        credential_fields=_secret_names(credentials, legacy), enabled=body.enabled,
        allow_unsigned_webhooks=body.allow_unsigned_webhooks, severity_threshold=body.severity_threshold,
        sync_schedule=body.sync_schedule, sync_schedule_since=utcnow() if body.sync_schedule else None,
        webhook_rotation_schedule=body.webhook_rotation_schedule,
        webhook_rotation_schedule_since=utcnow() if body.webhook_rotation_schedule else None,
        # the creator chose this target: the webhook secret may go here until an admin registers elsewhere
        webhook_state={APPROVED_TARGET: target_fingerprint(connection)},
    )
    _ensure_unique_name(session, principal, body.name)
    session.add(row)
    _audit(session, principal, AuditAction.INTEGRATION_CREATE, row,
           {"vendor": row.vendor, "credentials_set": list(row.credential_fields)})
    if row.allow_unsigned_webhooks:
        _audit_unsigned(session, settings, principal, row)
    _commit(session)
    return row


def _audit(session: Session, principal: Principal, action: AuditAction, row: Integration,
           detail: dict[str, Any]) -> None:
    """Record a change to an integration with the caller's work: field names only, never a value."""
    SessionAudit(session).record(actor=principal.actor, action=action, integration_id=row.id, purpose=None,
                                 outcome=AuditOutcome.SUCCESS, detail=detail)


def update(
    session: Session, keys: KeyStore, resolver: CredentialSource, principal: Principal,
    row: Integration, body: IntegrationUpdate, *, settings: Settings, audit: AuditSink,
) -> Integration:
    """Apply a partial update; secrets are merged under a ``credential_update`` decrypt and re-sealed."""
    ct = vendor_type(row.vendor)
    fields_set = body.model_fields_set
    _guard_unsigned(settings, audit, principal, row.allow_unsigned_webhooks, bool(body.allow_unsigned_webhooks), row.id)
    before = {"name": row.name, "enabled": row.enabled, "allow_unsigned_webhooks": row.allow_unsigned_webhooks,
              "severity_threshold": row.severity_threshold, "sync_schedule": row.sync_schedule,
              "webhook_rotation_schedule": row.webhook_rotation_schedule}
    old_connection = dict(row.connection)
    changed_secrets: list[str] = []
    if body.name is not None and body.name != row.name:
        _ensure_unique_name(session, principal, body.name, exclude=row.id)
        row.name = body.name
    connection = dict(row.connection)
    legacy_given = False  # connection.api_key in the body: new_legacy replaces (None: clears) the stored one
    new_legacy: str | None = None
    if body.connection is not None:
        merged = {k: v for k, v in connection.items()}
        for key, value in body.connection.items():
            if key == "api_key":
                legacy_given, new_legacy = True, legacy_api_key(value)
                continue
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        connection, _ = validate_connection(ct, merged)
    moved = target_changed(row.connection, connection)
    if body.credentials is not None or legacy_given or moved:
        incoming = _plain(body.credentials or {})
        secret_names = set(secret_field_names(ct.credentials_model))
        if moved:
            missing = sorted(n for n in secret_names if n in row.credential_fields and incoming.get(n) is None)
            if missing:
                raise ValidationFailed(
                    "the connection target or its TLS trust changed: supply the secrets again",
                    fields=[FieldProblem(f"credentials.{n}", "must be supplied again when base_url, verify_tls or "
                                                             "ca_bundle changes") for n in missing],
                )
        with resolver.resolve(row, purpose=Purpose.CREDENTIAL_UPDATE, actor=principal.actor) as current:
            stored = dict(current.values)
        legacy = stored.pop(LEGACY_API_KEY, None)
        if moved and legacy and not legacy_given:
            legacy = None  # a legacy key is not carried to a new host either
        for name, value in incoming.items():
            if value is None:
                stored.pop(name, None)
            else:
                stored[name] = value
        if legacy_given:
            legacy = new_legacy or None
        credentials = validate_credentials(ct, stored)
        row.encrypted_credentials = seal_credentials(keys, row.id, _sealed_map(credentials, legacy))
        row.credential_fields = _secret_names(credentials, legacy)
        changed_secrets = sorted(f"credentials.{n}" for n in incoming) + \
            (["connection.api_key"] if legacy_given else [])
    row.connection = connection
    if "enabled" in fields_set and body.enabled is not None:
        row.enabled = body.enabled
    if "allow_unsigned_webhooks" in fields_set and body.allow_unsigned_webhooks is not None:
        row.allow_unsigned_webhooks = body.allow_unsigned_webhooks
    if "severity_threshold" in fields_set and body.severity_threshold is not None:
        row.severity_threshold = body.severity_threshold
    if "sync_schedule" in fields_set and body.sync_schedule != row.sync_schedule:
        # a new schedule starts now: its due times before this moment are not run
        row.sync_schedule, row.sync_schedule_since = body.sync_schedule, utcnow() if body.sync_schedule else None
    rotation = body.webhook_rotation_schedule
    if "webhook_rotation_schedule" in fields_set and rotation != row.webhook_rotation_schedule:
        principal.require(Role.ADMIN)  # rotating the webhook secret is an admin's decision
        row.webhook_rotation_schedule, row.webhook_rotation_schedule_since = rotation, utcnow() if rotation else None
    row.updated_at = utcnow()
    changed = sorted(k for k, v in before.items() if getattr(row, k) != v)
    changed += sorted(f"connection.{k}" for k in set(old_connection) | set(connection)
                      if old_connection.get(k) != connection.get(k))
    if changed_secrets or any(name.startswith("connection.") for name in changed):
        row.last_tested_at = row.last_test = None  # the tests they recorded were of other settings
    _audit(session, principal, AuditAction.INTEGRATION_UPDATE, row, {"changed": changed + changed_secrets})
    if "allow_unsigned_webhooks" in changed:
        _audit_unsigned(session, settings, principal, row)
    _commit(session)
    return row


def _target(connection: dict[str, Any]) -> tuple[str, str, int, str] | None:
    url = connection.get("base_url")
    return target_of(url) if url else None


def trust_anchor(connection: dict[str, Any]) -> str | None:
    """The CA bundle an integration pins, or None for the system store ("" pins nothing either)."""
    return connection.get("ca_bundle") or None


#: connection settings that tune how PMAP calls and name no place; every other setting may name the
#: vendor-side container a webhook lives in (repository, project, organization, job, ...)
NOT_A_PLACE = frozenset({"timeout_seconds"})
#: the ``webhook_state`` key of the target the webhook secret may be sent to without an admin
APPROVED_TARGET = "approved_target"


def target_fingerprint(connection: dict[str, Any]) -> str:
    """A hash (no secret) of where ``connection`` sends secrets: the base URL's scheme, host, port and
    path, the TLS trust (verification, pinned CA bundle) and every setting that may name a vendor-side
    container. Equal fingerprints: the same place."""
    place = {k: v for k, v in connection.items() if k not in NOT_A_PLACE}
    url = place.pop("base_url", None)
    try:
        place["base_url"] = list(target_of(url)) if url else None
    except Exception:  # a stored URL that no longer parses is compared as written
        place["base_url"] = str(url)
    place["verify_tls"] = place.get("verify_tls", True) is not False
    place["ca_bundle"] = trust_anchor(connection)
    canonical = json.dumps(place, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def target_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether stored secrets may no longer go where ``new`` sends them: another base URL (scheme,
    host, port or path), or another check of who answers there (TLS verification turned off, or any
    change of the trust anchor: a CA bundle set, replaced, or removed for the system store). Then the
    caller must supply the secrets again."""
    if _target(new) != _target(old):
        return True
    verify_dropped = old.get("verify_tls", True) is not False and new.get("verify_tls", True) is False
    # removing a pinned CA is no strengthening: every public CA may then vouch for the host
    return verify_dropped or trust_anchor(new) != trust_anchor(old)


def _name_taken() -> Conflict:
    return Conflict("an integration with this name exists",
                    fields=[FieldProblem("name", "is already used in this organization")])


def _ensure_unique_name(session: Session, principal: Principal, name: str, exclude: uuid.UUID | None = None) -> None:
    stmt = principal.scoped(Integration, Integration.id).where(Integration.name == name)
    if exclude is not None:
        stmt = stmt.where(Integration.id != exclude)
    if session.scalar(stmt) is not None:
        raise _name_taken()


def _commit(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        if is_foreign_key_violation(exc):
            raise  # not a name taken: a parent deleted meanwhile (the error layer answers 409 for it)
        raise _name_taken() from None


def delete(session: Session, principal: Principal, row: Integration) -> dict[str, int]:
    """Delete an integration, its encrypted secrets and every row that belongs to it; audited with the
    counts of what was removed (returned). 404 when another request deleted it first."""
    removed = delete_with_dependents(session, row)
    _audit(session, principal, AuditAction.INTEGRATION_DELETE, row,
           {"vendor": row.vendor, "name": row.name, "deleted": removed})
    session.commit()
    return removed


# --- listing ----------------------------------------------------------------------------------

def list_page(session: Session, principal: Principal, *, limit: int, cursor: str | None,
              filters: IntegrationFilters | None = None, sort: str | None = None) -> IntegrationPage:
    """One page, newest first (keyset-paginated on (created_at, id)) or in a :data:`SORT_KEYS` order, with the
    filtered ``total``. Reads no secret column."""
    filters = filters or IntegrationFilters()
    # the encrypted columns are not even read when listing
    stmt = principal.scoped(Integration).options(
        defer(Integration.encrypted_credentials), defer(Integration.encrypted_webhook_secret)
    )
    if filters.name:
        stmt = stmt.where(contains_text(Integration.name, filters.name))
    if filters.vendor:
        stmt = stmt.where(Integration.vendor == vendor_type(filters.vendor).vendor)
    if filters.category:
        stmt = stmt.where(Integration.category == filters.category)
    if filters.enabled is not None:
        stmt = stmt.where(Integration.enabled.is_(filters.enabled))
    if sort is None:
        rows, next_cursor = split_page(session.scalars(newest_first(stmt, Integration, cursor, limit)).all(), limit)
    else:
        key = SORT_KEYS[sort]
        rows, next_cursor = split_sorted_page(
            session.scalars(sorted_page(stmt, Integration, key, cursor, limit)).all(), limit, key)
    return IntegrationPage(items=[to_out(r) for r in rows], next_cursor=next_cursor,
                           total=count_matching(session, stmt))
