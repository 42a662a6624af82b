"""Register, auto-setup and permission checks against the vendor sandbox, over real HTTP both ways:
PMAP (uvicorn on loopback) calls the sandbox, the sandbox delivers its test webhook to PMAP."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from pmap.connectors.catalog import connector_types
from pmap_sandbox.server import SandboxServer

from .conftest import Served, create_integration, integration_body, signed, unique

PINGING = ["github_issues", "gitlab_issues", "snyk", "azure_boards"]
NO_PING = ["jira_cloud", "sonarqube"]


def _impl_has(vendor: str, method: str) -> None:
    impl = connector_types()[vendor].implementation
    if impl is None or not callable(getattr(impl, method, None)):
        pytest.skip(f"the {vendor} connector has no {method} yet")


def _seed(vendor: str, sandbox: SandboxServer) -> None:
    """GitLab builds its test issue event from the project's first issue (no issue: 422 "Ensure the
    project has issues."): give the sandbox project one."""
    if vendor == "gitlab_issues":
        base = integration_body(vendor, base=sandbox.base_url)["connection"]
        r = httpx.post(f"{base['base_url']}/projects/{quote(base['project'], safe='')}/issues",
                       headers={"PRIVATE-TOKEN": unique("ok")}, json={"title": "webhook test"})
        assert r.status_code == 201, r.text


def _webhook(served: Served, iid: str) -> str:
    return f"/api/v1/integrations/{iid}/webhook"


@pytest.mark.parametrize("vendor", PINGING)
def test_auto_setup_registers_pings_and_sees_the_verified_delivery(
        served: Served, sandbox: SandboxServer, vendor: str) -> None:
    _impl_has(vendor, "ping_webhook")
    _seed(vendor, sandbox)
    h = served.token(role="operator")
    iid = create_integration(served.http, h, vendor, base=sandbox.base_url)
    r = served.http.post(_webhook(served, iid) + "/auto-setup", headers=h)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["generated"] is True and result["registration"]["url"] == f"{served.base_url}/hooks/{iid}"
    assert result["registration"]["signed"] is True and result["registration"]["hook_id"]
    ping = result["ping"]
    assert ping == {**ping, "supported": True, "sent": True, "received": True, "verified": True}, ping
    assert result["ok"] is True
    status = served.http.get(_webhook(served, iid), headers=h).json()
    assert status["registered"] and status["hook_id"] == result["registration"]["hook_id"]
    assert status["last_verified_delivery_at"] is not None and status["warnings"] == []
    items = served.http.get(_webhook(served, iid) + "/deliveries", headers=h).json()["items"]
    assert items and all(i["verification"] == "signed" and i["outcome"] != "rejected" for i in items)
    # a second auto-setup reuses the secret (nothing generated) and updates the vendor's hook
    again = served.http.post(_webhook(served, iid) + "/auto-setup", headers=h).json()
    assert again["generated"] is False and again["ping"]["verified"] is True


@pytest.mark.parametrize("vendor", NO_PING)
def test_register_installs_the_hook_where_the_vendor_has_no_test_delivery(
        served: Served, sandbox: SandboxServer, vendor: str) -> None:
    _impl_has(vendor, "register_webhook")
    h = served.token(role="operator")
    iid = create_integration(served.http, h, vendor, base=sandbox.base_url, marker="admin")
    assert served.http.post(_webhook(served, iid) + "/generate", headers=h).status_code == 201
    r = served.http.post(_webhook(served, iid) + "/register", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["signed"] is True and r.json()["url"] == f"{served.base_url}/hooks/{iid}"
    setup = served.http.post(_webhook(served, iid) + "/auto-setup", headers=h).json()
    assert setup["ping"]["supported"] is False and setup["ok"] is True and setup["warnings"]
    # the vendor's own signing (the sandbox's independent implementation) is accepted by the receiver
    admin = served.token()
    secret = served.http.post(_webhook(served, iid) + "/reveal", headers=admin).json()["secret"]
    sent = served.http.post(f"{sandbox.base_url}/_sandbox/deliver/{vendor}", json={
        "url": f"{served.base_url}/hooks/{iid}", "secret": secret, "event": "jira:issue_updated",
        "payload": {"webhookEvent": "jira:issue_updated", "n": unique("p")}})
    assert sent.json()["status"] == 202, sent.text


def test_registering_after_the_public_url_changed_leaves_no_hook_at_the_old_address(
        served: Served, sandbox: SandboxServer) -> None:
    h = served.token(role="operator")
    iid = create_integration(served.http, h, "sonarqube", base=sandbox.base_url, marker="admin")
    assert served.http.post(_webhook(served, iid) + "/generate", headers=h).status_code == 201
    settings = served.state.settings
    old_base = settings.public_base_url
    try:
        settings.public_base_url = "https://pmap-old.example.test"
        assert served.http.post(_webhook(served, iid) + "/register", headers=h).status_code == 200
    finally:
        settings.public_base_url = old_base
    moved = served.http.post(_webhook(served, iid) + "/register", headers=h)
    assert moved.status_code == 200 and moved.json()["url"] == f"{old_base}/hooks/{iid}"
    listed = httpx.get(f"{sandbox.base_url}/sonarqube/api/webhooks/list",
                       headers={"Authorization": f"Bearer {unique('admin')}"}, timeout=5).json()["webhooks"]
    urls = [hook["url"] for hook in listed]
    assert f"https://pmap-old.example.test/hooks/{iid}" not in urls and urls.count(f"{old_base}/hooks/{iid}") == 1


def test_registration_failures_name_the_step_and_leak_no_credential(served: Served, sandbox: SandboxServer) -> None:
    _impl_has("github_issues", "register_webhook")
    h = served.token(role="operator")
    for marker, step, status in (("bad", "auth", 422), ("echo", "auth", 422), ("noperm", "permission", 422)):
        body_vendor = "github_issues"
        iid = create_integration(served.http, h, body_vendor, base=sandbox.base_url, marker=marker)
        served.http.post(_webhook(served, iid) + "/generate", headers=h)
        r = served.http.post(_webhook(served, iid) + "/register", headers=h)
        assert r.status_code == status, (marker, r.text)
        error = r.json()["error"]
        assert error["step"] == step and "webhook registration failed at step" in error["message"]
        assert marker + "-" not in r.text  # the marker-bearing token is never echoed back
        assert served.http.get(_webhook(served, iid), headers=h).json()["registered"] is False


def test_egress_to_a_metadata_address_is_refused_before_any_call(served: Served) -> None:
    _impl_has("github_issues", "register_webhook")
    h = served.token(role="operator")
    iid = create_integration(served.http, h, "github_issues", base="http://169.254.169.254")
    served.http.post(_webhook(served, iid) + "/generate", headers=h)
    r = served.http.post(_webhook(served, iid) + "/register", headers=h)
    assert r.status_code == 422 and r.json()["error"]["step"] == "egress"


# vendors whose sandbox tells missing and excess rights apart (an Azure PAT's scopes cannot be read)
@pytest.mark.parametrize("vendor", ["jira_cloud", "servicenow", "github_issues", "gitlab_issues"])
def test_permissions_check_reports_missing_and_excess_rights(
        served: Served, sandbox: SandboxServer, vendor: str) -> None:
    _impl_has(vendor, "check_permissions")
    h = served.token(role="operator")
    reports = {}
    for marker in ("ok", "noperm", "admin"):
        iid = create_integration(served.http, h, vendor, base=sandbox.base_url, marker=marker)
        r = served.http.post(f"/api/v1/integrations/{iid}/permissions-check", headers=h)
        assert r.status_code == 200, (marker, r.text)
        reports[marker] = r.json()
        assert marker + "-" not in r.text
    assert not any(p["state"] == "missing" for p in reports["ok"]["permissions"]) and not reports["ok"]["excess"]
    assert reports["noperm"]["ok"] is False
    assert any(p["state"] == "missing" for p in reports["noperm"]["permissions"])
    assert reports["admin"]["excess"], reports["admin"]
    assert any(w.startswith("least privilege") for w in reports["admin"]["warnings"])


def test_permissions_check_needs_an_operator_and_a_connector_that_offers_it(
        served: Served, sandbox: SandboxServer) -> None:
    h = served.token(role="operator")
    iid = create_integration(served.http, h, "jira_cloud", base=sandbox.base_url)
    viewer = served.token(role="viewer")
    assert served.http.post(f"/api/v1/integrations/{iid}/permissions-check", headers=viewer).status_code == 403
    files = [k for k, ct in connector_types().items() if ct.implementation is None]
    if files:
        tool = create_integration(served.http, h, files[0])
        r = served.http.post(f"/api/v1/integrations/{tool}/permissions-check", headers=h)
        assert r.status_code == 422 and r.json()["error"]["code"] == "operation_not_supported"


def test_concurrent_duplicates_are_stored_once(served: Served) -> None:
    from concurrent.futures import ThreadPoolExecutor

    h = served.token()
    iid = create_integration(served.http, h, "github_issues")
    served.http.post(_webhook(served, iid) + "/generate", headers=h)
    secret = served.http.post(_webhook(served, iid) + "/reveal", headers=h).json()["secret"]
    body = b'{"action":"closed","issue":{"number":1,"state":"closed"},"repository":{"full_name":"acme/webapp"}}'
    headers = signed("github", body, secret, delivery_id=unique("same"), event="issues")

    def send(_: int) -> int:
        return served.http.post(f"/hooks/{iid}", content=body, headers=headers).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, range(8)))
    assert sorted(codes) == [200] * 7 + [202]
    served.app.state.webhook_runtime.processor.wait_idle()
    items = served.http.get(_webhook(served, iid) + "/deliveries", headers=h).json()["items"]
    assert sorted(i["outcome"] for i in items) == ["duplicate"] * 7 + ["processed"]
    events = served.http.get(_webhook(served, iid) + "/ticket-events", headers=h).json()["items"]
    assert len(events) == 1
