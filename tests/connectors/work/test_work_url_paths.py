"""A path setting or ticket field cannot carry the stored credential outside the configured base:
``../otherorg/Security`` as an Azure Boards project, ``../..`` as a GitHub repository. A recording
loopback vendor shows that no request reaches any path outside the base."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pmap.connectors.base import TicketRequest
from pmap.connectors.runner import run_connection_test
from pmap.core.errors import ValidationFailed
from pmap.core.settings import Settings
from tests.core.outbound import conftest as loopback

from .cases import catalog_entry, implementation, settings_for
from .conftest import context

Vendor = loopback.TestServer


@pytest.fixture
def vendor() -> Iterator[Vendor]:
    """A loopback server recording every request; GitHub's ``/user`` answers like GitHub."""
    server = loopback.TestServer()
    server.routes["/github/user"] = lambda h: h.reply(200, '{"login": "octocat"}', {"Content-Type": "application/json"})
    yield from loopback._serve(server)


def _outside(server: Vendor, base: str) -> list[str]:
    return [s.path for s in server.seen if not s.path.startswith(base + "/")]


@pytest.mark.parametrize("project", ["../otherorg/Security", "..%2Fotherorg%2FSecurity", "%2e%2e", "Sec/../../x"])
def test_an_azure_boards_ticket_project_cannot_leave_the_organization(vendor: Vendor, dev_settings: Settings,
                                                                       project: str) -> None:
    connection, credentials = settings_for("azure_boards", vendor.url(), project="Security")
    connection["base_url"] = vendor.url() + "/myorg"
    ctx = context(dev_settings, "azure_boards", connection, credentials, purpose="ticket_creation")
    ticket = TicketRequest(title="t", description="d", project=project)
    with pytest.raises(ValidationFailed) as err:
        implementation("azure_boards").create_ticket(ctx, ticket)
    assert err.value.status == 422 and err.value.fields[0].field == "project"
    assert _outside(vendor, "/myorg") == [] and vendor.seen == []


def test_a_stored_azure_project_that_escapes_is_refused_before_anything_is_sent(vendor: Vendor,
                                                                                 dev_settings: Settings) -> None:
    connection, credentials = settings_for("azure_boards", vendor.url(), project="Security")
    connection["base_url"] = vendor.url() + "/myorg"
    ctx = context(dev_settings, "azure_boards", connection, credentials, purpose="ticket_creation")
    # a row saved before the setting was checked: the model is built without validation
    ctx.connection = ctx.connection.model_copy(update={"project": "../otherorg/Security"})
    with pytest.raises(ValidationFailed):
        implementation("azure_boards").create_ticket(ctx, TicketRequest(title="t", description="d"))
    assert vendor.seen == []


@pytest.mark.parametrize("repository", ["../..", "acme/..", "../../orgs/other"])
def test_a_github_repository_cannot_leave_the_api_base(vendor: Vendor, dev_settings: Settings, repository: str) -> None:
    connection, credentials = settings_for("github_issues", vendor.url())
    connection["base_url"] = vendor.url() + "/github"
    ctx = context(dev_settings, "github_issues", connection, credentials)
    ctx.connection = ctx.connection.model_copy(update={"repository": repository})
    result = run_connection_test(ctx, catalog_entry("github_issues"))
    assert not result.ok and result.message and "repository" in result.message, result
    assert _outside(vendor, "/github") == [], vendor.seen
    with pytest.raises(ValidationFailed) as err:
        implementation("github_issues").create_ticket(
            ctx, TicketRequest(title="t", description="d", project=repository))
    assert err.value.fields[0].field == "project"
    assert _outside(vendor, "/github") == []
