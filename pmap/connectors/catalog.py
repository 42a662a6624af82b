"""The catalog of vendor types this build knows: an explicit registry, checked when built."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from pmap.connectors.base import (
    ARCHETYPES,
    OPERATION_PROTOCOLS,
    ConnectorType,
    Operation,
    secret_field_names,
    unimplemented_operations,
)
from pmap.connectors.vendors import (
    atlassian,
    azure_devops,
    black_duck,
    checkmarx,
    dast,
    dependency_track,
    file_tools,
    github,
    github_code_scanning,
    gitlab,
    jenkins,
    jfrog,
    mobile,
    qualys,
    rapid7,
    runzero,
    semgrep,
    servicenow,
    snyk,
    sonarqube,
    tenable,
    tenable_sc,
    veracode,
)
from pmap.core.registry import Registry

#: The vendor modules of this build, in catalog order, each exporting ``CONNECTOR_TYPES``. Imported
#: by name, not discovered, so what ships is exactly what is listed here (and tools can follow it).
VENDOR_MODULES = (
    tenable, tenable_sc, qualys, rapid7, dast, sonarqube, checkmarx, veracode, semgrep, github_code_scanning, snyk,
    dependency_track, jfrog, black_duck, runzero, mobile, file_tools, atlassian, servicenow, github, gitlab,
    azure_devops, jenkins,
)


class CatalogError(ValueError):
    """A vendor type breaks the contract (an operation outside its archetype, a method declared only, ...)."""


def check_type(ct: ConnectorType) -> ConnectorType:
    """Validate one vendor type against the Protocols: an API connector is a :class:`Connector`, what
    its implementation declares it implements, and what it offers is part of its category's archetype."""
    impl = ct.implementation
    if impl is None:
        return ct
    for op in unimplemented_operations(impl):
        protocol = OPERATION_PROTOCOLS[op].__name__
        raise CatalogError(f"{ct.vendor}: declares {op.value} ({protocol}) but its implementation lacks it")
    if Operation.TEST_CONNECTION not in ct.operations:  # derived: the implementation is no Connector
        raise CatalogError(f"{ct.vendor}: an API connector must offer test_connection")
    allowed = ARCHETYPES[ct.category]
    for op in ct.operations:
        if op not in allowed:
            raise CatalogError(f"{ct.vendor}: {op.value} is not an operation of the {ct.category.value} archetype")
    return ct


def build_catalog(types: Iterable[ConnectorType]) -> Registry[ConnectorType]:
    """A registry of checked vendor types; a duplicate vendor key fails."""
    return Registry("connector types", (check_type(t) for t in types), key=lambda t: t.vendor)


@lru_cache(maxsize=1)
def connector_types() -> Registry[ConnectorType]:
    """The catalog of this build (built on first use)."""
    return build_catalog(ct for module in VENDOR_MODULES for ct in module.CONNECTOR_TYPES)


@lru_cache(maxsize=256)
def identifier_fields(vendor: str) -> frozenset[str]:
    """Credential fields of ``vendor`` that identify rather than authenticate (user names, e-mails,
    client ids): every field of its credentials model that is not a ``SecretStr``."""
    ct = connector_types().get(vendor)
    if ct is None:
        return frozenset()
    model = ct.credentials_model
    return frozenset(model.model_fields) - frozenset(secret_field_names(model))
