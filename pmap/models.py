"""Every table, imported in one place so the metadata is complete (migrations, tests)."""

from pmap.audit.models import AuditEvent
from pmap.auth.models import ApiToken, Organization
from pmap.core.db import Base
from pmap.credentials.models import KeyringCanary
from pmap.integrations.models import Integration
import pmap.webhooks.models  # noqa: F401,E402  (webhook tables)
import pmap.findings.models  # noqa: F401,E402  (findings tables)

__all__ = ["ApiToken", "AuditEvent", "Base", "Integration", "KeyringCanary", "Organization"]
