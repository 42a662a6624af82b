"""The connector contract: what a vendor type offers is derived from the Protocols its implementation
satisfies, and the catalog refuses a type that declares what it lacks or leaves its archetype."""

from __future__ import annotations

import pytest

from pmap.connectors.base import (
    ARCHETYPES,
    OPERATION_PROTOCOLS,
    Category,
    ChecksPermissions,
    Connector,
    ConnectorType,
    CreatesTickets,
    FetchesFindings,
    LaunchesScans,
    Operation,
    OperationContext,
    PermissionReport,
    Probe,
    ScanRef,
    ScanState,
    TicketRef,
    TicketRequest,
)
from pmap.connectors.catalog import CatalogError, build_catalog, check_type, connector_types


class _Probing:
    """Structurally a Connector, naming no Protocol."""

    def test_connection(self, ctx: OperationContext) -> Probe:
        return Probe(product="fake")


class _PermissionsToo(_Probing):
    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        return PermissionReport(ok=True, permissions=[])


class _Scanning(_PermissionsToo):
    # written out of archetype order on purpose: the catalog lists them in the archetype's order
    def scan_status(self, ctx: OperationContext, scan: ScanRef) -> ScanState:
        return ScanState(scan_id=scan.scan_id, status="completed")

    def launch_scan(self, ctx: OperationContext, scan_id: str) -> ScanRef:
        return ScanRef(scan_id=scan_id)


class _DeclaresLaunchOnly(Connector, LaunchesScans):
    """Names LaunchesScans as a base but never writes launch_scan."""

    def test_connection(self, ctx: OperationContext) -> Probe:
        return Probe()


class _Ticketing(_Probing):
    def create_ticket(self, ctx: OperationContext, ticket: TicketRequest) -> TicketRef:
        return TicketRef(key="X-1")


class _NoConnectionTest:
    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        return PermissionReport(ok=True, permissions=[])


def _type(impl: object, category: Category = Category.VM, vendor: str = "fake") -> ConnectorType:
    return ConnectorType(vendor=vendor, display_name="Fake", category=category,
                         implementation=impl)  # type: ignore[arg-type]  # fakes that break the contract on purpose


def test_an_implementation_offers_exactly_the_protocols_it_satisfies() -> None:
    assert _type(_Probing()).operations == (Operation.TEST_CONNECTION,)
    assert _type(_PermissionsToo()).operations == (Operation.TEST_CONNECTION, Operation.CHECK_PERMISSIONS)
    scanning = check_type(_type(_Scanning()))
    assert scanning.offered() == ["test_connection", "check_permissions", "launch_scan", "scan_status"]
    assert not isinstance(_Scanning(), FetchesFindings) and Operation.FETCH_FINDINGS not in scanning.operations
    assert _type(None).operations == () and _type(None).file_only


def test_an_attribute_that_is_not_callable_offers_nothing() -> None:
    impl = _Probing()
    impl.check_permissions = None  # type: ignore[attr-defined]  # a name alone is not an implementation
    assert _type(impl).operations == (Operation.TEST_CONNECTION,)


def test_declaring_an_operation_the_implementation_lacks_fails_the_catalog() -> None:
    declared = _DeclaresLaunchOnly()  # type: ignore[abstract]  # incomplete on purpose: the catalog must refuse it
    assert isinstance(declared, LaunchesScans)  # the runtime check alone would believe it
    assert Operation.LAUNCH_SCAN not in _type(declared).operations
    with pytest.raises(CatalogError, match="fake: declares launch_scan .LaunchesScans. but its implementation lacks"):
        check_type(_type(declared))


def test_an_operation_outside_the_categorys_archetype_fails_the_catalog() -> None:
    assert check_type(_type(_Ticketing(), Category.TICKETING)).offered() == ["test_connection", "create_ticket"]
    with pytest.raises(CatalogError, match="fake: create_ticket is not an operation of the vm archetype"):
        check_type(_type(_Ticketing(), Category.VM))
    with pytest.raises(CatalogError, match="not an operation of the cicd archetype"):
        build_catalog([_type(_Scanning(), Category.CICD)])


def test_an_api_connector_without_a_connection_test_fails_the_catalog() -> None:
    assert isinstance(_NoConnectionTest(), ChecksPermissions)
    with pytest.raises(CatalogError, match="must offer test_connection"):
        check_type(_type(_NoConnectionTest()))


def test_every_operation_has_one_protocol_and_every_archetype_starts_with_the_connection_test() -> None:
    assert set(OPERATION_PROTOCOLS) == set(Operation)
    assert len(set(OPERATION_PROTOCOLS.values())) == len(Operation)
    assert set(ARCHETYPES) == set(Category)
    for operations in ARCHETYPES.values():
        assert operations[0] is Operation.TEST_CONNECTION and len(set(operations)) == len(operations)
    assert Operation.CREATE_TICKET in ARCHETYPES[Category.ITSM] and Operation.CREATE_TICKET not in ARCHETYPES[
        Category.SCA]


def test_the_catalogs_operations_are_what_the_implementations_satisfy() -> None:
    for ct in connector_types().values():
        for op, protocol in OPERATION_PROTOCOLS.items():
            assert (op in ct.operations) == isinstance(ct.implementation, protocol), (ct.vendor, op)
    # what the catalog API has always shown, in the archetype's order
    assert connector_types()["nessus"].offered() == [
        "test_connection", "check_permissions", "sync_findings", "fetch_findings", "launch_scan", "scan_status"]
    assert connector_types()["github"].offered() == [
        "test_connection", "fetch_pipeline_reports", "check_permissions", "register_webhook"]
    assert connector_types()["servicenow"].offered() == [
        "test_connection", "create_ticket", "sync_status", "check_permissions"]
    assert isinstance(connector_types()["jira_cloud"].implementation, CreatesTickets)
