"""REST endpoints describing the connector catalog."""

from __future__ import annotations

from fastapi import APIRouter

from pmap.auth.deps import Viewer
from pmap.connectors.catalog import connector_types
from pmap.connectors.schemas import ConnectorTypeOut, describe
from pmap.core.errors import NotFound

router = APIRouter(prefix="/connector-types", tags=["connectors"])


@router.get("", response_model=list[ConnectorTypeOut])
def list_connector_types(_principal: Viewer) -> list[ConnectorTypeOut]:
    """Every vendor type this build knows, with its connection and credential schemas."""
    return [describe(ct) for ct in connector_types().values()]


@router.get("/{vendor}", response_model=ConnectorTypeOut)
def get_connector_type(vendor: str, _principal: Viewer) -> ConnectorTypeOut:
    """One vendor type."""
    ct = connector_types().get(vendor)
    if ct is None:
        raise NotFound("unknown vendor type")
    return describe(ct)
