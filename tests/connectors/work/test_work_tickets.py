"""Work trackers against the sandbox: open a ticket, follow it to done, and check the account's rights."""

from __future__ import annotations

import pytest

from pmap.connectors.base import PermissionState, TicketRequest
from pmap.core.errors import UpstreamError, ValidationFailed
from pmap.core.settings import Settings
from pmap_sandbox.server import SandboxServer

from .cases import TRACKERS, implementation, settings_for
from .conftest import context
from .sandbox_ops import close_ticket, stored_ticket

TICKET = TicketRequest(title="SQL injection in /login", description="The id parameter is concatenated.\nFix it.",
                       severity="critical", labels=["pmap", "sql injection"])
#: what each vendor stores of the ticket's severity: (path in the stored ticket, expected value)
SEVERITY_FIELD = {
    "jira_cloud": (("fields", "priority", "name"), "Highest"),
    "jira_data_center": (("fields", "priority", "name"), "Highest"),
    "servicenow": (("impact",), "1"),
    "azure_boards": (("fields", "Microsoft.VSTS.Common.Severity"), "1 - Critical"),
}
#: rights an admin account holds that each vendor's report flags as more than PMAP needs
ADMIN_EXCESS = {
    "jira_cloud": {"ADMINISTER", "ADMINISTER_PROJECTS"}, "jira_data_center": {"ADMINISTER", "ADMINISTER_PROJECTS"},
    "jira_service_management": {"ADMINISTER", "ADMINISTER_PROJECTS"}, "servicenow": {"admin", "user_admin"},
    "github_issues": {"admin:org", "delete_repo", "workflow"},
    "gitlab_issues": {"sudo", "admin_mode", "administrator account"},
}


def _dig(doc: dict, path: tuple[str, ...]) -> object:
    for part in path:
        doc = doc[part]
    return doc


def test_the_trackers_are_the_six_work_tracker_types_and_jsm() -> None:
    assert sorted(["azure_boards", "github_issues", "gitlab_issues", "jira_cloud", "jira_data_center",
                               "jira_service_management", "servicenow"]) == TRACKERS


@pytest.mark.parametrize("vendor", TRACKERS)
def test_a_ticket_is_opened_then_followed_to_done(vendor: str, sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url)
    impl = implementation(vendor)
    created = impl.create_ticket(context(dev_settings, vendor, connection, credentials, purpose="ticket"), TICKET)
    assert created.key and not created.done
    assert created.url and created.url.startswith("http")
    stored = stored_ticket(vendor, connection["base_url"], credentials, created)
    assert "SQL injection in /login" in str(stored)
    assert "sql-injection" in str(stored) or vendor == "jira_service_management"  # JSM requests carry no labels
    if vendor in SEVERITY_FIELD:
        path, expected = SEVERITY_FIELD[vendor]
        assert _dig(stored, path) == expected

    open_ = impl.sync_status(context(dev_settings, vendor, connection, credentials), created.key)
    assert open_.key == created.key and open_.done is False and open_.status

    close_ticket(vendor, connection["base_url"], credentials, created)
    done = impl.sync_status(context(dev_settings, vendor, connection, credentials), created.key)
    assert done.done is True, done
    assert done.status != open_.status


@pytest.mark.parametrize("vendor", TRACKERS)
def test_an_account_that_may_not_write_fails_at_permission(vendor: str, sandbox: SandboxServer,
                                                          dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url, "noperm")
    ctx = context(dev_settings, vendor, connection, credentials)
    with pytest.raises(UpstreamError) as caught:
        implementation(vendor).create_ticket(ctx, TICKET)
    assert caught.value.step == "permission", caught.value.message
    for value in credentials.values():
        assert value not in caught.value.message


@pytest.mark.parametrize("vendor", TRACKERS)
def test_a_malformed_ticket_key_is_refused_before_any_call(vendor: str, dev_settings: Settings,
                                                           closed_port: int) -> None:
    connection, credentials = settings_for(vendor, f"http://127.0.0.1:{closed_port}")
    ctx = context(dev_settings, vendor, connection, credentials)
    with pytest.raises(ValidationFailed):  # a connect error would mean a request was attempted
        implementation(vendor).sync_status(ctx, "../../admin?x=1")


def test_an_unknown_incident_number_is_not_mistaken_for_another(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for("servicenow", sandbox.base_url)
    impl = implementation("servicenow")
    impl.create_ticket(context(dev_settings, "servicenow", connection, credentials), TICKET)
    with pytest.raises(UpstreamError) as caught:
        impl.sync_status(context(dev_settings, "servicenow", connection, credentials), "INC9999999")
    assert caught.value.step == "response" and "INC9999999" in caught.value.message


def test_a_ticket_without_a_project_names_the_missing_setting(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for("jira_cloud", sandbox.base_url)
    connection.pop("project_key")
    with pytest.raises(ValidationFailed) as caught:
        implementation("jira_cloud").create_ticket(
            context(dev_settings, "jira_cloud", connection, credentials), TICKET)
    assert caught.value.fields[0].field == "connection.project_key"


@pytest.mark.parametrize("vendor", TRACKERS)
def test_least_privilege_report(vendor: str, sandbox: SandboxServer, dev_settings: Settings) -> None:
    impl = implementation(vendor)
    connection, credentials = settings_for(vendor, sandbox.base_url)
    normal = impl.check_permissions(context(dev_settings, vendor, connection, credentials))
    assert normal.excess == []
    if vendor != "azure_boards":  # a PAT's write scopes cannot be read: reported unknown
        assert normal.ok, normal
    connection, credentials = settings_for(vendor, sandbox.base_url, "noperm")
    limited = impl.check_permissions(context(dev_settings, vendor, connection, credentials))
    if vendor != "azure_boards":  # the sandbox's noperm PAT still reads everything PMAP can probe
        assert not limited.ok
        assert any(p.state is PermissionState.MISSING for p in limited.permissions)
    if vendor in ADMIN_EXCESS:
        connection, credentials = settings_for(vendor, sandbox.base_url, "admin")
        admin = impl.check_permissions(context(dev_settings, vendor, connection, credentials))
        assert ADMIN_EXCESS[vendor] <= set(admin.excess)
        assert any("more rights than PMAP needs" in w for w in admin.warnings)


def test_servicenow_security_admin_is_excess_rights(sandbox: SandboxServer, dev_settings: Settings) -> None:
    # the sandbox's ServiceNow marker "security" (in the password) grants security_admin beside itil
    connection, credentials = settings_for("servicenow", sandbox.base_url, "security")
    report = implementation("servicenow").check_permissions(
        context(dev_settings, "servicenow", connection, credentials))
    assert report.ok, report  # itil is held: incident work is possible
    assert report.excess == ["security_admin"]
    assert any("more rights than PMAP needs" in w for w in report.warnings)


def test_azure_reports_the_unreadable_token_scopes_as_unknown(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for("azure_boards", sandbox.base_url)
    report = implementation("azure_boards").check_permissions(
        context(dev_settings, "azure_boards", connection, credentials))
    states = {p.name: p.state for p in report.permissions}
    assert states["Project: read"] is PermissionState.GRANTED
    assert states["Work Items: read & write"] is PermissionState.UNKNOWN
    assert any("cannot be read with the token itself" in w for w in report.warnings)
