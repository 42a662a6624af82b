"""Every table, imported in one place so the metadata is complete (migrations, tests)."""

import pmap.findings.models
import pmap.jobs.models
import pmap.scans.models
import pmap.schedules.models
import pmap.tickets.models
import pmap.webhooks.models  # noqa: F401  (webhook tables)
from pmap.audit.models import AuditEvent
from pmap.auth.models import ApiToken, Organization
from pmap.core.db import Base
from pmap.credentials.models import KeyringCanary
from pmap.integrations.models import Integration

__all__ = ["ApiToken", "AuditEvent", "Base", "Integration", "KeyringCanary", "Organization"]
