"""Work-tracker and CI/CD vendor cases: connection settings and marker-bearing credentials per sandbox vendor.

A credential VALUE selects the sandbox's behaviour (``bad``, ``echo``, ``ratelimit``, ``noperm``, ...).
Every value is unique (digits only after the marker) so the sandbox's one-429-per-key counters never
collide between tests.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from pmap.connectors.base import Category, ConnectorType, secret_field_names
from pmap.connectors.catalog import connector_types
from pmap_sandbox.work import SANDBOX_VENDORS

WORK_CATEGORIES = {Category.ITSM, Category.TICKETING, Category.CICD}
#: the catalog key of GitHub Actions is "github"; its sandbox prefix is /github_actions
SANDBOX_KEY = {"github": "github_actions"}
#: every ITSM, ticketing and CI/CD vendor type of the catalog
VENDORS: list[str] = sorted(k for k, ct in connector_types().items() if ct.category in WORK_CATEGORIES)
TRACKERS: list[str] = sorted(k for k in VENDORS if connector_types()[k].category is not Category.CICD)
PIPELINES: list[str] = sorted(k for k in VENDORS if connector_types()[k].category is Category.CICD)

#: what a case needs beyond the sandbox descriptor (the sandbox's fixtures)
EXTRA_CONNECTION: dict[str, dict[str, Any]] = {
    "jira_cloud": {"project_key": "SEC"}, "jira_data_center": {"project_key": "SEC"},
    "jira_service_management": {"service_desk_id": "1", "request_type_id": "10"},
    "github_issues": {"repository": "acme/webapp"}, "github": {"repository": "acme/webapp"},
    "gitlab_issues": {"project": "acme/webapp"}, "gitlab_ci": {"project": "acme/webapp"},
    "azure_boards": {"project": "Security"}, "azure_pipelines": {"project": "Security", "pipeline_id": 12},
    "jenkins": {"job": "webapp-security"},
}

#: the version each vendor's sandbox reports (None: the vendor exposes none)
VERSIONS: dict[str, str | None] = {
    "jira_cloud": "1001.0.0-SNAPSHOT", "jira_data_center": "9.12.15", "jira_service_management": "10.4.0",
    "servicenow": None, "github_issues": None, "github": None, "gitlab_issues": "17.5.1-ee",
    "gitlab_ci": "17.5.1-ee", "azure_boards": None, "azure_pipelines": None, "jenkins": "2.479.3",
}


def unique(prefix: str) -> str:
    """``prefix`` plus 12 digits (digits cannot spell a marker by chance)."""
    return f"{prefix}-{uuid.uuid4().int % 10**12:012d}"


def catalog_entry(vendor: str) -> ConnectorType:
    """The catalog entry of ``vendor``."""
    return connector_types()[vendor]


def implementation(vendor: str) -> Any:
    """The implementation of ``vendor``, for tests that call its operations (and its helpers) directly."""
    return connector_types()[vendor].implementation


def sandbox_key(vendor: str) -> str:
    """The sandbox vendor key that simulates ``vendor``."""
    return SANDBOX_KEY.get(vendor, vendor)


def settings_for(vendor: str, base: str, marker: str = "ok", **overrides: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """``(connection, credentials)`` for ``vendor`` at sandbox root ``base`` with ``marker`` in its secrets.

    Secret fields of the descriptor's credentials carry the marker; identities (e-mail, user name)
    get a unique plain value.
    """
    descriptor = SANDBOX_VENDORS[sandbox_key(vendor)]
    model = catalog_entry(vendor).credentials_model
    secrets = set(secret_field_names(model))
    connection: dict[str, Any] = {"base_url": base + descriptor["base_path"], **EXTRA_CONNECTION.get(vendor, {})}
    credentials: dict[str, str] = {}
    for name in descriptor["valid_credentials"]:
        credentials[name] = unique(marker) if name in secrets else unique("user")
    connection.update(overrides)
    return connection, credentials


def basic_forms(credentials: dict[str, str]) -> list[str]:
    """The HTTP Basic encodings a vendor could echo for these credentials."""
    values = list(credentials.values())
    return [base64.b64encode(f"{u}:{s}".encode()).decode() for u in ["", *values] for s in values if u != s]
