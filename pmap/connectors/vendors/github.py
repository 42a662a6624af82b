"""GitHub."""

from __future__ import annotations

from pydantic import Field, SecretStr

from pmap.connectors.base import Category, ConnectionSettings, ConnectorType, Credentials


class GitHubCredentials(Credentials):
    """A personal access token (classic or fine-grained) or an App installation token."""

    token: SecretStr = Field(description="GitHub token")


class GitHubConnection(ConnectionSettings):
    base_url: str = Field(default="https://api.github.com", description="https://api.github.com or https://HOST/api/v3")
    repository: str | None = Field(default=None, pattern=r"^[\w.-]+/[\w.-]+$", description="owner/repo")


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="github",
        display_name="GitHub",
        category=Category.CICD,
        connection_model=GitHubConnection,
        credentials_model=GitHubCredentials,
        default_base_url="https://api.github.com",
        report_formats=("sarif",),
        webhook_scheme="github",
        docs_url="https://docs.github.com/en/rest",
    ),
)
