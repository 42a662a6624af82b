"""ServiceNow."""

from __future__ import annotations

from pydantic import Field, SecretStr

from pmap.connectors.base import Category, ConnectionSettings, ConnectorType, Credentials


class ServiceNowCredentials(Credentials):
    """A ServiceNow integration user (HTTP Basic)."""

    username: str = Field(min_length=1, description="ServiceNow user name")
    password: SecretStr = Field(description="ServiceNow password")


class ServiceNowConnection(ConnectionSettings):
    base_url: str = Field(description="Your instance, e.g. https://example.service-now.com")


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="servicenow",
        display_name="ServiceNow",
        category=Category.ITSM,
        connection_model=ServiceNowConnection,
        credentials_model=ServiceNowCredentials,
        webhook_scheme="servicenow",
        docs_url="https://www.servicenow.com/docs/",
    ),
)
