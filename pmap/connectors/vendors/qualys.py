"""Qualys VMDR."""

from __future__ import annotations

from pydantic import Field, SecretStr

from pmap.connectors.base import Category, ConnectionSettings, ConnectorType, Credentials


class QualysCredentials(Credentials):
    """A Qualys API user (HTTP Basic)."""

    username: str = Field(min_length=1, description="Qualys user name")
    password: SecretStr = Field(description="Qualys password")


class QualysConnection(ConnectionSettings):
    base_url: str = Field(
        default="https://qualysapi.qualys.com",
        description="Your platform's API server, e.g. https://qualysapi.qg2.apps.qualys.com",
    )


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="qualys_vmdr",
        display_name="Qualys VMDR",
        category=Category.VM,
        connection_model=QualysConnection,
        credentials_model=QualysCredentials,
        default_base_url="https://qualysapi.qualys.com",
        report_formats=("qualys_xml", "qualys_csv", "qualys_vmdr_csv"),
        docs_url="https://docs.qualys.com/en/vm/api/",
    ),
)
