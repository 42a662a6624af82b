"""The catalog of vendor types this build knows: an explicit registry, checked when built."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from importlib import import_module

from pmap.connectors.base import ARCHETYPES, ConnectorType, Operation, secret_field_names
from pmap.core.registry import Registry

#: Modules under pmap.connectors.vendors, each exporting ``CONNECTOR_TYPES``. Listed, not discovered,
#: so what ships is exactly what is named here.
VENDOR_MODULES: tuple[str, ...] = (
    "tenable",
    "tenable_sc",
    "qualys",
    "rapid7",
    "dast",
    "sonarqube",
    "checkmarx",
    "veracode",
    "semgrep",
    "github_code_scanning",
    "snyk",
    "dependency_track",
    "jfrog",
    "black_duck",
    "runzero",
    "mobile",
    "file_tools",
    "atlassian",
    "servicenow",
    "github",
    "gitlab",
    "azure_devops",
    "jenkins",
)


class CatalogError(ValueError):
    """A vendor type breaks the contract (unknown operation, missing method, ...)."""


def check_type(ct: ConnectorType) -> ConnectorType:
    """Validate one vendor type against its category's archetype."""
    allowed = ARCHETYPES[ct.category]
    for op in ct.operations:
        if op not in allowed:
            raise CatalogError(f"{ct.vendor}: {op.value} is not an operation of the {ct.category.value} archetype")
        if ct.implementation is None or not callable(getattr(ct.implementation, op.value, None)):
            raise CatalogError(f"{ct.vendor}: declares {op.value} but its implementation lacks it")
    if ct.implementation is not None and Operation.TEST_CONNECTION not in ct.operations:
        raise CatalogError(f"{ct.vendor}: an API connector must offer test_connection")
    return ct


def build_catalog(types: Iterable[ConnectorType]) -> Registry[ConnectorType]:
    """A registry of checked vendor types; a duplicate vendor key fails."""
    return Registry("connector types", (check_type(t) for t in types), key=lambda t: t.vendor)


@lru_cache(maxsize=1)
def connector_types() -> Registry[ConnectorType]:
    """The catalog of this build (built on first use)."""
    types: list[ConnectorType] = []
    for name in VENDOR_MODULES:
        types.extend(import_module(f"pmap.connectors.vendors.{name}").CONNECTOR_TYPES)
    return build_catalog(types)


@lru_cache(maxsize=256)
def identifier_fields(vendor: str) -> frozenset[str]:
    """Credential fields of ``vendor`` that identify rather than authenticate (user names, e-mails,
    client ids): every field of its credentials model that is not a ``SecretStr``."""
    ct = connector_types().get(vendor)
    if ct is None:
        return frozenset()
    model = ct.credentials_model
    return frozenset(model.model_fields) - frozenset(secret_field_names(model))
