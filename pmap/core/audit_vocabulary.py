"""What an audit event can say: its action and its outcome, one closed vocabulary each.

Stored as their string values (``audit_events.action``, ``.outcome``). Imports nothing from PMAP,
so the credential resolver (which the audit package itself imports) can use it.
"""

from __future__ import annotations

import enum


class AuditOutcome(str, enum.Enum):
    """How an audited action ended."""

    SUCCESS = "success"
    FAILURE = "failure"


#: outcome values written before revision 0005 (``findings.import``), and what they mean now
LEGACY_OUTCOMES = {"ok": AuditOutcome.SUCCESS, "failed": AuditOutcome.FAILURE}


class AuditAction(str, enum.Enum):
    """What was done (values are the stored strings, unchanged since they were first written)."""

    ACCESS_DENIED = "access.denied"
    AUDIT_PRUNE = "audit.prune"  # retention moved an organization's audit chain anchor forward
    CREDENTIALS_DECRYPT = "credentials.decrypt"
    FINDINGS_IMPORT = "findings.import"
    FINDINGS_SYNC = "findings.sync"
    PIPELINE_SYNC = "pipeline.sync"
    INTEGRATION_CREATE = "integration.create"
    INTEGRATION_UPDATE = "integration.update"
    INTEGRATION_DELETE = "integration.delete"
    INTEGRATION_PERMISSIONS_CHECK = "integration.permissions_check"
    KEYS_REWRAP = "keys.rewrap"  # key rotation re-wrapped data keys under a new KEK (no content decrypted)
    RULE_CREATE = "rule.create"
    RULE_UPDATE = "rule.update"
    RULE_DELETE = "rule.delete"
    SCAN_LAUNCH = "scan.launch"
    SESSION_START = "session.start"  # a web console sign-in
    SESSION_END = "session.end"  # a web console sign-out
    TICKET_CREATE = "ticket.create"
    TICKET_RECONCILE = "ticket.reconcile"
    TOKEN_CREATE = "token.create"  # noqa: S105 - an action name, not a secret
    TOKEN_REVOKE = "token.revoke"  # noqa: S105 - an action name, not a secret
    WEBHOOK_ALLOW_UNSIGNED = "webhook.allow_unsigned"
    WEBHOOK_REGISTER = "webhook.register"
    WEBHOOK_SECRET_GENERATE = "webhook.secret.generate"  # noqa: S105 - an action name, not a secret
    WEBHOOK_SECRET_REGENERATE = "webhook.secret.regenerate"  # noqa: S105 - an action name, not a secret
