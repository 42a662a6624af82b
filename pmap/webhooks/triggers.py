"""Pipeline runs that webhooks report finished: a verified GitHub ``workflow_run`` (action ``completed``) or
GitLab pipeline event (status ``success`` or ``failed``) on a CI/CD integration asks for a sync of that run.

The receiver keeps such a delivery for processing only when it was verified with a configured secret (an
unsigned delivery, even where allowed, triggers nothing); the processor reads the run from the payload and
hands it to the app's :data:`SyncTrigger` (composed in ``pmap.app``: the sync domain queues the job), and
records what became of it in the delivery's ``reason``: queued (naming the job), or skipped and why.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from pmap.connectors.branches import syncs_pipelines
from pmap.connectors.catalog import connector_types
from pmap.core.text import CONTROL_CHARS

#: GitLab pipeline statuses that end a run whose reports a sync reads
_GITLAB_FINISHED = frozenset({"success", "failed"})
_NAME_CHARS = 255


@dataclass(frozen=True, slots=True)
class RunFinished:
    """A pipeline run a delivery reports finished: its id on the vendor, and its branch when given."""

    organization_id: uuid.UUID
    integration_id: uuid.UUID
    vendor: str
    run: str
    branch: str | None


#: queues a sync of the run; returns what became of it, for the delivery's ``reason``
SyncTrigger = Callable[[RunFinished], str]


def may_trigger(vendor: str, scheme: str, event: str | None) -> bool:
    """Whether a delivery may report a finished run, judged from its vendor, scheme and event header."""
    ct = connector_types().get(vendor)
    if ct is None or not syncs_pipelines(ct):
        return False
    if scheme == "github":
        return event == "workflow_run"
    if scheme in ("gitlab_token", "standard_webhooks") and vendor.startswith("gitlab"):
        return (event or "").lower() == "pipeline hook"
    return False


def run_finished(organization_id: uuid.UUID, integration_id: uuid.UUID, vendor: str, scheme: str,
                 event: str | None, body: bytes) -> RunFinished | None:
    """The finished run a delivery reports, or None (another action or status, or a malformed payload)."""
    if not may_trigger(vendor, scheme, event):
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    if scheme == "github":
        run = doc.get("workflow_run")
        if doc.get("action") != "completed" or not isinstance(run, dict):
            return None
        ident, branch = run.get("id"), run.get("head_branch")
    else:
        attrs = doc.get("object_attributes")
        if doc.get("object_kind") != "pipeline" or not isinstance(attrs, dict) \
                or attrs.get("status") not in _GITLAB_FINISHED:
            return None
        ident, branch = attrs.get("id"), attrs.get("ref")
    if isinstance(ident, bool) or not isinstance(ident, int) or ident <= 0:
        return None  # a run id is a positive number on every vendor: nothing else reaches a vendor path
    return RunFinished(organization_id, integration_id, vendor, str(ident), _name(branch))


def _name(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    clean = CONTROL_CHARS.sub("", value).strip()[:_NAME_CHARS]
    return clean or None
