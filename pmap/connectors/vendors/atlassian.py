"""Atlassian Jira."""

from __future__ import annotations

from pydantic import Field, SecretStr

from pmap.connectors.base import Category, ConnectionSettings, ConnectorType, Credentials


class JiraCloudCredentials(Credentials):
    """Jira Cloud basic auth: the account e-mail and an API token."""

    email: str = Field(min_length=3, description="Atlassian account e-mail")
    api_token: SecretStr = Field(description="Atlassian API token")


class JiraCloudConnection(ConnectionSettings):
    base_url: str = Field(description="Your site, e.g. https://example.atlassian.net")
    project_key: str | None = Field(default=None, description="Default project for new issues")


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="jira_cloud",
        display_name="Jira Cloud",
        category=Category.TICKETING,
        connection_model=JiraCloudConnection,
        credentials_model=JiraCloudCredentials,
        webhook_scheme="jira",
        docs_url="https://developer.atlassian.com/cloud/jira/platform/rest/v3/",
    ),
)
