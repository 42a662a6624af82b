"""Scanner vendor cases: connection settings and marker-bearing credentials for each sandbox vendor.

A credential VALUE selects the sandbox's behaviour (``bad``, ``echo``, ``ratelimit``, ...). Every value
is unique (digits only after the marker) so the sandbox's one-429-per-key counters never collide.
"""

from __future__ import annotations

import uuid
from typing import Any

from pmap.connectors.base import Category, ConnectorType, secret_field_names
from pmap.connectors.catalog import connector_types
from pmap_sandbox.scanners import SANDBOX_VENDORS, veracode

SCANNER_CATEGORIES = {Category.VM, Category.DAST, Category.SAST, Category.SCA, Category.NETWORK_DISCOVERY,
                      Category.MOBILE}
#: every scanner vendor type of the catalog that the sandbox simulates
VENDORS: list[str] = sorted(k for k, ct in connector_types().items()
                            if ct.category in SCANNER_CATEGORIES and k in SANDBOX_VENDORS)

#: connection extras a case needs beyond the descriptor's values
EXTRA_CONNECTION: dict[str, dict[str, Any]] = {"github_code_scanning": {"repository": "example/shop"}}

#: the version each vendor's sandbox reports (None: the vendor exposes none)
VERSIONS: dict[str, str | None] = {
    "tenable_vm": "6.9.1", "nessus": "10.7.2", "tenable_sc": "6.3.0", "qualys_vmdr": "10.28.1.0-1",
    "rapid7_insightvm": "6.6.230", "burp_dast": None, "zap": "2.15.0", "invicti": None, "acunetix": "24.1.240111130",
    "sonarqube": "10.6.0.92116", "checkmarx_one": "3.21.4", "veracode": None, "semgrep": None,
    "github_code_scanning": None, "snyk": None, "dependency_track": "4.11.4", "jfrog_xray": "3.92.7",
    "black_duck": "2024.1.0", "runzero": None, "mobsf": None, "nowsecure": None,
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


def settings_for(vendor: str, base: str, marker: str = "ok",
                 **overrides: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """``(connection, credentials)`` for ``vendor`` at sandbox root ``base`` with ``marker`` in its secrets.

    Descriptor values that are fields of the vendor's credential model become credentials (secrets
    carry the marker, identities get a unique plain value); the others (tenant, org_id) are settings.
    """
    descriptor = SANDBOX_VENDORS[vendor]
    model = catalog_entry(vendor).credentials_model
    secrets = set(secret_field_names(model))
    connection: dict[str, Any] = {"base_url": base + descriptor["base_path"], **descriptor.get("connection", {}),
                                  **EXTRA_CONNECTION.get(vendor, {})}
    credentials: dict[str, str] = {}
    for name, value in descriptor["valid_credentials"].items():
        if name not in model.model_fields:
            connection[name] = value
        elif name in secrets:
            credentials[name] = unique(marker)
        else:
            credentials[name] = unique("user")
    if vendor == "veracode":  # markers are read from the API id; the key must be the id's secret
        credentials["api_key"] = veracode.secret_for(credentials["api_id"])
    if vendor == "runzero":  # the prefix is the key's scope: an organization key
        credentials["api_key"] = "OT" + credentials["api_key"]
    connection.update(overrides)
    return connection, credentials
