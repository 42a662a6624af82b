"""Azure DevOps Boards, Pipelines and service hooks over real HTTP."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import httpx

from pmap_sandbox.server import SandboxServer

from .conftest import Receiver, basic, cred, vendor_url

SUPPRESS = {"X-TFS-FedAuthRedirect": "Suppress"}
PATCH = {"Content-Type": "application/json-patch+json"}


def org(sandbox: SandboxServer, path: str, key: str = "azure_boards") -> str:
    return vendor_url(sandbox, key) + path


def pat(marker: str = "ok") -> dict[str, str]:
    return {**basic("", cred(marker)), **SUPPRESS}


def title(text: str) -> list[dict[str, str]]:
    return [{"op": "add", "path": "/fields/System.Title", "value": text}]


def test_connection_data_identifies_the_user(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = client.get(org(sandbox, "/_apis/connectionData"), headers=pat(),
                          params={"api-version": "7.1-preview"})
    assert response.status_code == 200
    assert response.json()["authenticatedUser"]["properties"]["Account"]["$value"] == "pmap-bot@example.com"
    not_preview = client.get(org(sandbox, "/_apis/connectionData"), headers=pat(), params={"api-version": "7.1"})
    assert not_preview.status_code == 400
    assert not_preview.json()["typeKey"] == "VssInvalidPreviewVersionException"


def test_refusal_is_a_sign_in_page_without_suppress(sandbox: SandboxServer, client: httpx.Client) -> None:
    url = org(sandbox, "/_apis/connectionData?api-version=7.1-preview")
    page = client.get(url, headers=basic("", cred("bad")))
    assert page.status_code == 203 and page.headers["content-type"].startswith("text/html")
    browser = client.get(url, headers={"Accept": "text/html"})
    assert browser.status_code == 302 and "/_signin?" in browser.headers["Location"]
    assert client.get(browser.headers["Location"]).status_code == 200
    suppressed = client.get(url, headers={**basic("", cred("bad")), **SUPPRESS})
    assert suppressed.status_code == 401 and "TF400813" in suppressed.headers["X-TFS-ServiceError"]
    expired = client.get(url, headers=pat("expired"))
    assert expired.status_code == 401 and "expired" in expired.headers["X-TFS-ServiceError"]


def test_work_item_create_update_and_rules(sandbox: SandboxServer, client: httpx.Client) -> None:
    create = org(sandbox, "/Security/_apis/wit/workitems/$Bug?api-version=7.1")
    wrong_type = client.post(create, headers=pat(), json=title("x"))
    assert wrong_type.status_code == 415
    assert wrong_type.json()["typeKey"] == "VssRequestContentTypeNotSupportedException"
    created = client.post(create, headers={**pat(), **PATCH}, content=json.dumps(
        [*title("CVE-2024-21626 in runc"), {"op": "add", "path": "/fields/System.Tags", "value": "pmap"}]))
    assert created.status_code == 200
    item = created.json()
    assert item["fields"]["System.State"] == "New" and item["fields"]["System.WorkItemType"] == "Bug"
    assert item["rev"] == 1 and item["_links"]["html"]["href"].endswith(f"/_workitems/edit/{item['id']}")

    resolve = [{"op": "replace", "path": "/fields/System.State", "value": "Resolved"}]
    updated = client.patch(org(sandbox, f"/_apis/wit/workitems/{item['id']}?api-version=7.1"),
                           headers={**pat(), **PATCH}, content=json.dumps(resolve)).json()
    assert updated["fields"]["System.State"] == "Resolved" and updated["rev"] == 2
    invalid = [{"op": "replace", "path": "/fields/System.State", "value": "Done"}]
    refused = client.patch(org(sandbox, f"/Security/_apis/wit/workitems/{item['id']}?api-version=7.1"),
                           headers={**pat(), **PATCH}, content=json.dumps(invalid))
    assert refused.status_code == 400 and refused.json()["typeKey"] == "RuleValidationException"

    untitled = client.post(create, headers={**pat(), **PATCH}, content=b"[]")
    assert untitled.status_code == 400 and "TF401320" in untitled.json()["message"]
    unknown_field = client.post(create, headers={**pat(), **PATCH}, content=json.dumps(
        [*title("x"), {"op": "add", "path": "/fields/Custom.Nope", "value": 1}]))
    assert "TF51535" in unknown_field.json()["message"]


def test_work_item_errors(sandbox: SandboxServer, client: httpx.Client) -> None:
    no_version = client.post(org(sandbox, "/Security/_apis/wit/workitems/$Bug"), headers={**pat(), **PATCH},
                             content=json.dumps(title("x")))
    assert no_version.json()["typeKey"] == "VssVersionNotSpecifiedException"
    no_project = client.post(org(sandbox, "/Nope/_apis/wit/workitems/$Bug?api-version=7.1"),
                             headers={**pat(), **PATCH}, content=json.dumps(title("x")))
    assert no_project.status_code == 404 and no_project.json()["typeKey"] == "ProjectDoesNotExistException"
    missing = client.get(org(sandbox, "/_apis/wit/workitems/987654?api-version=7.1"), headers=pat())
    assert missing.status_code == 404 and "TF401232" in missing.json()["message"]
    weak = client.post(org(sandbox, "/Security/_apis/wit/workitems/$Task?api-version=7.1"),
                       headers={**pat("noperm"), **PATCH}, content=json.dumps(title("x")))
    assert weak.status_code == 403


def test_pipeline_runs_and_artifacts(sandbox: SandboxServer, client: httpx.Client) -> None:
    key = "azure_pipelines"
    pipelines = client.get(org(sandbox, "/Security/_apis/pipelines?api-version=7.1", key), headers=pat()).json()
    pipeline_id = pipelines["value"][0]["id"]
    runs = client.get(org(sandbox, f"/Security/_apis/pipelines/{pipeline_id}/runs?api-version=7.1", key),
                      headers=pat()).json()["value"]
    done = next(r for r in runs if r.get("result") == "succeeded")
    signed = client.get(org(sandbox, f"/Security/_apis/pipelines/{pipeline_id}/runs/{done['id']}/artifacts", key),
                        headers=pat(), params={"artifactName": "CodeAnalysisLogs", "$expand": "signedContent",
                                               "api-version": "7.1"}).json()
    blob = client.get(signed["signedContent"]["url"])
    names = zipfile.ZipFile(io.BytesIO(blob.content)).namelist()
    assert names == ["CodeAnalysisLogs/semgrep.sarif"]
    listed = client.get(org(sandbox, f"/Security/_apis/build/builds/{done['id']}/artifacts?api-version=7.1", key),
                        headers=pat()).json()
    download = client.get(listed["value"][0]["resource"]["downloadUrl"], headers=pat())
    assert download.content == blob.content
    missing = client.get(org(sandbox, f"/Security/_apis/pipelines/{pipeline_id}/runs/{done['id']}/artifacts", key),
                         headers=pat(), params={"artifactName": "nope"})
    assert missing.status_code == 404


def test_service_hook_subscription_and_test_notification(sandbox: SandboxServer, client: httpx.Client,
                                                         receiver: Receiver) -> None:
    subscription = {"publisherId": "tfs", "eventType": "workitem.updated", "resourceVersion": "1.0",
                    "consumerId": "webHooks", "consumerActionId": "httpRequest",
                    "publisherInputs": {"projectId": "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c"},
                    "consumerInputs": {"url": receiver.url, "basicAuthUsername": "pmap",
                                       "basicAuthPassword": "hook-pass-0001", "httpHeaders": "X-Pmap-Source:ado"}}
    url = org(sandbox, "/_apis/hooks/subscriptions?api-version=7.1")
    assert client.post(url, headers=pat("noperm"), json=subscription).status_code == 403
    created = client.post(url, headers=pat(), json=subscription)
    assert created.status_code == 200
    sub = created.json()
    assert sub["consumerInputs"]["basicAuthPassword"] == "********" and sub["status"] == "enabled"
    assert sub["id"] in [s["id"] for s in client.get(url, headers=pat()).json()["value"]]

    released = client.post(org(sandbox, "/_apis/hooks/testnotifications?api-version=7.1"), headers=pat(),
                           json={"subscriptionId": sub["id"]})
    assert released.status_code == 400  # notifications are a preview resource
    assert released.json()["typeKey"] == "VssInvalidPreviewVersionException"
    test = client.post(org(sandbox, "/_apis/hooks/testnotifications?api-version=7.1-preview.1"), headers=pat(),
                       json={"subscriptionId": sub["id"]})
    assert test.status_code == 200
    assert test.json()["result"] == "succeeded" and test.json()["status"] == "completed"
    got = receiver.wait_for(1)[0]
    assert got.headers["authorization"] == "Basic " + base64.b64encode(b"pmap:hook-pass-0001").decode()
    assert got.headers["x-pmap-source"] == "ado"
    assert json.loads(got.body)["eventType"] == "workitem.updated"
    notification = client.get(org(sandbox, f"/_apis/hooks/subscriptions/{sub['id']}/notifications/"
                                           f"{test.json()['id']}?api-version=7.1-preview.1"), headers=pat())
    assert notification.json()["details"]["consumerInputs"]["basicAuthPassword"] == "********"


def test_test_notification_reports_failure(sandbox: SandboxServer, client: httpx.Client,
                                           receiver: Receiver) -> None:
    receiver.status = 401
    details = {"publisherId": "pipelines", "eventType": "ms.vss-pipelines.run-state-changed-event",
               "consumerInputs": {"url": receiver.url}}
    test = client.post(org(sandbox, "/_apis/hooks/testnotifications?api-version=7.1-preview.1", "azure_pipelines"),
                       headers=pat(), json={"details": details}).json()
    assert test["result"] == "failed"
    assert "authorization" not in receiver.wait_for(1)[0].headers
