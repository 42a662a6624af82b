"""Jira Cloud, Data Center and Service Management over real HTTP."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest

from pmap_sandbox.server import SandboxServer

from .conftest import Receiver, basic, bearer, cred, vendor_url

PMAP_PERMISSIONS = "BROWSE_PROJECTS,CREATE_ISSUES,EDIT_ISSUES,TRANSITION_ISSUES,ADD_COMMENTS"


def cloud(sandbox: SandboxServer, path: str, key: str = "jira_cloud") -> str:
    return vendor_url(sandbox, key) + path


def adf(text: str) -> dict[str, object]:
    paragraph = {"type": "paragraph", "content": [{"type": "text", "text": text}]}
    return {"type": "doc", "version": 1, "content": [paragraph]}


@pytest.mark.parametrize(("key", "deployment"), [("jira_cloud", "Cloud"), ("jira_data_center", "Server")])
def test_server_info_answers_anonymously(sandbox: SandboxServer, client: httpx.Client, key: str,
                                         deployment: str) -> None:
    version = "3" if key == "jira_cloud" else "2"
    info = client.get(cloud(sandbox, f"/rest/api/{version}/serverInfo", key))
    assert info.status_code == 200
    assert info.json()["deploymentType"] == deployment
    assert info.json()["baseUrl"] == vendor_url(sandbox, key)


def test_server_info_with_bad_credentials_is_refused(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = client.get(cloud(sandbox, "/rest/api/3/serverInfo"), headers=basic("a@example.com", cred("bad")))
    assert response.status_code == 401
    assert response.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"


def test_cloud_refuses_bearer_and_data_center_serves_v2_only(sandbox: SandboxServer, client: httpx.Client) -> None:
    assert client.get(cloud(sandbox, "/rest/api/3/myself"), headers=bearer(cred())).status_code == 401
    dc = client.get(cloud(sandbox, "/rest/api/2/myself", "jira_data_center"), headers=bearer(cred()))
    assert dc.status_code == 200 and dc.json()["name"] == "svc-pmap"
    dc_basic = client.get(cloud(sandbox, "/rest/api/2/myself", "jira_data_center"), headers=basic("jdoe", cred()))
    assert dc_basic.json()["name"] == "jdoe"
    v3 = client.get(cloud(sandbox, "/rest/api/3/myself", "jira_data_center"), headers=bearer(cred()))
    assert v3.status_code == 404


def test_mypermissions_requires_the_permissions_parameter(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = client.get(cloud(sandbox, "/rest/api/3/mypermissions"), headers=basic("a@example.com", cred()))
    assert response.status_code == 400
    assert response.json()["errorMessages"]


@pytest.mark.parametrize(("marker", "create", "administer"), [("ok", True, False), ("noperm", False, False),
                                                              ("admin", True, True)])
def test_mypermissions_follows_the_scenario(sandbox: SandboxServer, client: httpx.Client, marker: str,
                                            create: bool, administer: bool) -> None:
    response = client.get(cloud(sandbox, "/rest/api/3/mypermissions"), headers=basic("a@example.com", cred(marker)),
                          params={"permissions": PMAP_PERMISSIONS + ",ADMINISTER", "projectKey": "SEC"})
    perms = response.json()["permissions"]
    assert perms["BROWSE_PROJECTS"]["havePermission"] is True
    assert perms["CREATE_ISSUES"]["havePermission"] is create
    assert perms["ADMINISTER"]["havePermission"] is administer
    assert perms["ADMINISTER"]["type"] == "GLOBAL"


def test_mypermissions_unknown_project_is_404(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = client.get(cloud(sandbox, "/rest/api/3/mypermissions"), headers=basic("a@example.com", cred()),
                          params={"permissions": "BROWSE_PROJECTS", "projectKey": "NOPE"})
    assert response.status_code == 404
    assert response.json()["errorMessages"] == ["No project could be found with key 'NOPE'."]


def test_issue_lifecycle_v3(sandbox: SandboxServer, client: httpx.Client) -> None:
    auth = basic("a@example.com", cred())
    created = client.post(cloud(sandbox, "/rest/api/3/issue"), headers=auth, json={"fields": {
        "project": {"key": "SEC"}, "summary": "CVE-2024-1234 in openssl", "issuetype": {"name": "Bug"},
        "description": adf("Upgrade openssl."), "labels": ["pmap"], "priority": {"name": "High"}}})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("SEC-")

    issue = client.get(cloud(sandbox, f"/rest/api/3/issue/{key}"), headers=auth).json()
    assert issue["fields"]["status"]["statusCategory"]["key"] == "new"
    assert issue["fields"]["description"]["type"] == "doc"
    as_v2 = client.get(cloud(sandbox, f"/rest/api/2/issue/{key}"), headers=auth).json()
    assert as_v2["fields"]["description"] == "Upgrade openssl."

    transitions = client.get(cloud(sandbox, f"/rest/api/3/issue/{key}/transitions"), headers=auth).json()
    done = next(t for t in transitions["transitions"] if t["to"]["statusCategory"]["key"] == "done")
    moved = client.post(cloud(sandbox, f"/rest/api/3/issue/{key}/transitions"), headers=auth,
                        json={"transition": {"id": done["id"]}})
    assert moved.status_code == 204
    after = client.get(cloud(sandbox, f"/rest/api/3/issue/{key}"), headers=auth).json()["fields"]
    assert after["status"]["statusCategory"]["key"] == "done"
    assert after["resolution"]["name"] == "Done"

    comment = client.post(cloud(sandbox, f"/rest/api/3/issue/{key}/comment"), headers=auth,
                          json={"body": adf("Fixed in 1.2.3")})
    assert comment.status_code == 201
    edited = client.put(cloud(sandbox, f"/rest/api/3/issue/{key}"), headers=auth, json={"fields": {"labels": ["x"]}})
    assert edited.status_code == 204


def test_issue_validation_uses_jira_field_errors(sandbox: SandboxServer, client: httpx.Client) -> None:
    auth = basic("a@example.com", cred())
    plain = client.post(cloud(sandbox, "/rest/api/3/issue"), headers=auth, json={"fields": {
        "project": {"key": "SEC"}, "summary": "s", "issuetype": {"name": "Bug"}, "description": "plain text"}})
    assert plain.status_code == 400
    assert "Atlassian Document" in plain.json()["errors"]["description"]
    empty = client.post(cloud(sandbox, "/rest/api/2/issue"), headers=auth, json={"fields": {}})
    assert set(empty.json()["errors"]) == {"project", "summary", "issuetype"}
    unknown = client.post(cloud(sandbox, "/rest/api/2/issue"), headers=auth, json={"fields": {
        "project": {"key": "SEC"}, "summary": "s", "issuetype": {"name": "Bug"}, "customfield_10099": "x"}})
    assert "customfield_10099" in unknown.json()["errors"]


def test_missing_issue_and_bad_transition(sandbox: SandboxServer, client: httpx.Client) -> None:
    auth = basic("a@example.com", cred())
    missing = client.get(cloud(sandbox, "/rest/api/3/issue/SEC-9999"), headers=auth)
    assert missing.status_code == 404
    key = client.post(cloud(sandbox, "/rest/api/2/issue"), headers=auth, json={"fields": {
        "project": {"key": "SEC"}, "summary": "s", "issuetype": {"name": "Task"}}}).json()["key"]
    bad = client.post(cloud(sandbox, f"/rest/api/2/issue/{key}/transitions"), headers=auth,
                      json={"transition": {"id": "999"}})
    assert bad.status_code == 400 and "999" in bad.json()["errorMessages"][0]


def test_noperm_may_browse_but_not_create_or_transition(sandbox: SandboxServer, client: httpx.Client) -> None:
    body = {"fields": {"project": {"key": "SEC"}, "summary": "s", "issuetype": {"name": "Bug"}}}
    created = client.post(cloud(sandbox, "/rest/api/2/issue"), headers=basic("a@example.com", cred()), json=body)
    key = created.json()["key"]
    weak = basic("a@example.com", cred("noperm"))
    assert client.post(cloud(sandbox, "/rest/api/2/issue"), headers=weak, json=body).status_code == 403
    assert client.get(cloud(sandbox, f"/rest/api/2/issue/{key}"), headers=weak).status_code == 200
    assert client.get(cloud(sandbox, f"/rest/api/2/issue/{key}/transitions"), headers=weak).json()["transitions"] == []
    moved = client.post(cloud(sandbox, f"/rest/api/2/issue/{key}/transitions"), headers=weak,
                        json={"transition": {"id": "31"}})
    assert moved.status_code == 400


def test_webhooks_need_an_administrator(sandbox: SandboxServer, client: httpx.Client) -> None:
    hook = {"name": "pmap", "url": "https://pmap.example.com/hooks/jira", "events": ["jira:issue_updated"],
            "secret": "s3cret-value-000"}
    url = cloud(sandbox, "/rest/webhooks/1.0/webhook")
    assert client.post(url, headers=basic("a@example.com", cred()), json=hook).status_code == 403
    admin = basic("a@example.com", cred("admin"))
    created = client.post(url, headers=admin, json=hook)
    assert created.status_code == 201
    assert "secret" not in created.json()
    listed = client.get(url, headers=admin).json()
    assert created.json()["self"] in [h["self"] for h in listed]
    wrong = client.post(url, headers=admin, json={**hook, "events": ["not:an_event"]})
    assert wrong.status_code == 400


def test_sandbox_delivery_uses_the_jira_signature(sandbox: SandboxServer, client: httpx.Client,
                                                  receiver: Receiver) -> None:
    secret = "jira-webhook-secret-000"
    result = client.post(sandbox.base_url + "/_sandbox/deliver/jira_cloud", json={
        "url": receiver.url, "secret": secret, "event": "jira:issue_updated",
        "payload": {"webhookEvent": "jira:issue_updated", "issue": {"key": "SEC-1"}}})
    assert result.status_code == 200 and result.json()["status"] == 200
    got = receiver.wait_for(1)[0]
    expected = "sha256=" + hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers["x-hub-signature"], expected)


def test_service_desk_lists_desks_types_and_creates_requests(sandbox: SandboxServer, client: httpx.Client) -> None:
    auth = basic("a@example.com", cred())
    root = cloud(sandbox, "/rest/servicedeskapi", "jira_service_management")
    desks = client.get(f"{root}/servicedesk", headers=auth).json()
    assert desks["isLastPage"] is True and desks["values"][0]["projectKey"] == "ITH"
    desk = desks["values"][0]["id"]
    types = client.get(f"{root}/servicedesk/{desk}/requesttype", headers=auth).json()["values"]
    created = client.post(f"{root}/request", headers=auth, json={
        "serviceDeskId": desk, "requestTypeId": types[0]["id"],
        "requestFieldValues": {"summary": "Patch the VPN appliance", "description": "CVE-2024-3400"}})
    assert created.status_code == 201
    assert created.json()["currentStatus"]["statusCategory"] == "NEW"
    key = created.json()["issueKey"]
    assert client.get(f"{root}/request/{key}", headers=auth).json()["issueKey"] == key
    # a customer request is an issue of the service project for the platform API too
    platform = client.get(cloud(sandbox, f"/rest/api/3/issue/{key}", "jira_service_management"), headers=auth)
    assert platform.status_code == 200
    missing = client.get(f"{root}/servicedesk/99", headers=auth)
    assert missing.status_code == 404 and "errorMessage" in missing.json()


def test_service_desk_license_and_noperm(sandbox: SandboxServer, client: httpx.Client) -> None:
    root = cloud(sandbox, "/rest/servicedeskapi", "jira_service_management")
    info = client.get(f"{root}/info", headers=basic("a@example.com", cred())).json()
    assert info["isLicensedForUse"] is True
    # SoftwareInfoDTO as the service desk REST API documents it (GET /rest/servicedeskapi/info)
    assert set(info) == {"version", "platformVersion", "buildDate", "buildChangeSet", "isLicensedForUse", "_links"}
    assert set(info["buildDate"]) == {"iso8601", "jira", "friendly", "epochMillis"}
    assert client.get(f"{root}/info").status_code == 200
    expired = client.get(f"{root}/info", headers=basic("a@example.com", cred("expired")))
    assert expired.json()["isLicensedForUse"] is False
    assert client.get(f"{root}/servicedesk", headers=basic("a@example.com", cred("noperm"))).json()["values"] == []
