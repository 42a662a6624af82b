"""Response bodies describing the connector catalog."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from pmap.connectors.base import ConnectorType, model_json_schema


class ConnectorTypeOut(BaseModel):
    """One vendor type: what it is, what it needs (JSON Schema), what it can do."""

    vendor: str
    display_name: str
    category: str
    connection_schema: dict[str, Any]
    credentials_schema: dict[str, Any]
    default_base_url: str | None
    operations: list[str]
    report_formats: list[str]
    webhook_scheme: str | None
    file_only: bool
    docs_url: str | None
    notes: str | None


def describe(ct: ConnectorType) -> ConnectorTypeOut:
    """The catalog entry as the API shows it."""
    return ConnectorTypeOut(
        vendor=ct.vendor, display_name=ct.display_name, category=ct.category.value,
        connection_schema=model_json_schema(ct.connection_model),
        credentials_schema=model_json_schema(ct.credentials_model, credentials=True),
        default_base_url=ct.default_base_url, operations=ct.offered(), report_formats=list(ct.report_formats),
        webhook_scheme=ct.webhook_scheme, file_only=ct.file_only, docs_url=ct.docs_url, notes=ct.notes,
    )
