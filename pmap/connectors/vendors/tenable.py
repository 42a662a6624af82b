"""Tenable: Tenable Vulnerability Management (cloud) and Nessus."""

from __future__ import annotations

from pydantic import Field, SecretStr

from pmap.connectors.base import Category, ConnectionSettings, ConnectorType, Credentials


class TenableKeys(Credentials):
    """API keys as Tenable names them (sent as ``X-ApiKeys: accessKey=...; secretKey=...;``)."""

    access_key: SecretStr = Field(description="API access key")
    secret_key: SecretStr = Field(description="API secret key")


class TenableVMConnection(ConnectionSettings):
    base_url: str = Field(default="https://cloud.tenable.com", description="Tenable VM API base URL")


class NessusConnection(ConnectionSettings):
    base_url: str = Field(description="Nessus scanner or manager, e.g. https://nessus.example.com:8834")


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="tenable_vm",
        display_name="Tenable Vulnerability Management",
        category=Category.VM,
        connection_model=TenableVMConnection,
        credentials_model=TenableKeys,
        default_base_url="https://cloud.tenable.com",
        report_formats=("nessus", "tenable_csv"),
        docs_url="https://developer.tenable.com/docs/authorization",
    ),
    ConnectorType(
        vendor="nessus",
        display_name="Nessus",
        category=Category.VM,
        connection_model=NessusConnection,
        credentials_model=TenableKeys,
        report_formats=("nessus", "tenable_csv"),
        docs_url="https://docs.tenable.com/nessus/",
        notes="Nessus Professional/Expert read and export only; scans of a managed scanner belong to its manager.",
    ),
)
