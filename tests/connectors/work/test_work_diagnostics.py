"""What the connection test tells an operator: expiring tokens, licenses, the wrong connector type,
and vendor answers that look like success or like a refusal but are something else."""

from __future__ import annotations

import io
import zipfile

import httpx
import pytest
from pydantic import ValidationError

from pmap.connectors.base import OperationContext
from pmap.connectors.vendors import (
    _work_http,
    atlassian,
    azure_devops,
    github,
    jenkins,
    servicenow,
)
from pmap.core.errors import UpstreamError
from pmap.core.outbound import OutboundResponse
from pmap.core.settings import Settings
from pmap_sandbox.server import SandboxServer

from .cases import implementation, settings_for, unique
from .conftest import context, run_test


def _answer(status: int, body: bytes = b"", **headers: str) -> OutboundResponse:
    return OutboundResponse(status=status, headers=httpx.Headers(headers), content=body,
                            url="https://vendor.example/api", elapsed_ms=1.0)


def _ctx(settings: Settings, vendor: str) -> OperationContext:
    connection, credentials = settings_for(vendor, "https://vendor.example")
    return context(settings, vendor, connection, credentials)


@pytest.mark.parametrize("vendor", ["github_issues", "github", "gitlab_issues", "gitlab_ci"])
def test_a_token_expiring_soon_is_a_warning(vendor: str, sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url, "expiring")
    result = run_test(dev_settings, vendor, connection, credentials)
    assert result.ok, result.message
    assert result.license and result.license["status"] == "expiring" and result.license["days_left"] == 10
    assert any("token expires on" in w and "in 10 days" in w for w in result.warnings)


@pytest.mark.parametrize("vendor", ["github_issues", "gitlab_ci", "azure_boards"])
def test_an_expired_token_fails_at_auth_with_the_vendors_reason(vendor: str, sandbox: SandboxServer,
                                                                dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url, "expired")
    result = run_test(dev_settings, vendor, connection, credentials)
    assert result.failed_step == "auth"
    reason = {"github_issues": "Bad credentials", "gitlab_ci": "Token has expired",
              "azure_boards": "Personal Access Token used has expired"}[vendor]
    assert reason in (result.message or "")


def test_an_unlicensed_service_management_passes_with_a_warning(sandbox: SandboxServer,
                                                                 dev_settings: Settings) -> None:
    connection, credentials = settings_for("jira_service_management", sandbox.base_url, "expired")
    result = run_test(dev_settings, "jira_service_management", connection, credentials)
    assert result.ok, result.message
    assert result.license == {"type": "Jira Service Management", "status": "unlicensed"}
    assert any("not licensed for use" in w for w in result.warnings)


def test_service_management_warns_when_the_account_is_no_agent(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for("jira_service_management", sandbox.base_url, "noperm")
    result = run_test(dev_settings, "jira_service_management", connection, credentials)
    assert result.ok and any("sees no service desk" in w for w in result.warnings)


def test_a_jira_project_that_is_not_visible_fails_at_permission(sandbox: SandboxServer,
                                                                 dev_settings: Settings) -> None:
    connection, credentials = settings_for("jira_cloud", sandbox.base_url, project_key="NOPE")
    result = run_test(dev_settings, "jira_cloud", connection, credentials)
    assert result.failed_step == "permission" and "Browse Projects" in (result.message or "")


def test_the_wrong_jira_type_says_which_to_use(sandbox: SandboxServer, dev_settings: Settings) -> None:
    # Jira Cloud settings pointed at a Data Center site (which accepts Basic e-mail:token as user:password)
    _, credentials = settings_for("jira_cloud", sandbox.base_url)
    connection, _ = settings_for("jira_data_center", sandbox.base_url)
    result = run_test(dev_settings, "jira_cloud", connection, credentials)
    assert not result.ok
    assert "use the Jira Data Center connector type" in (result.message or "")


def test_jira_data_center_accepts_a_user_name_and_password(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, _ = settings_for("jira_data_center", sandbox.base_url)
    credentials = {"username": unique("svc"), "password": unique("pw")}
    result = run_test(dev_settings, "jira_data_center", connection, credentials)
    assert result.ok, result.message
    with pytest.raises(ValidationError):
        atlassian.JiraDataCenterCredentials.model_validate({"username": "svc"})
    with pytest.raises(ValidationError):
        atlassian.JiraDataCenterCredentials.model_validate({})


def test_a_job_the_account_cannot_read_fails_the_jenkins_test(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for("jenkins", sandbox.base_url, job="no-such-job")
    result = run_test(dev_settings, "jenkins", connection, credentials)
    assert result.failed_step == "permission" and "Job/Read" in (result.message or "")


# --- vendor answers the sandbox cannot produce, read by each connector's own check -----------------

def test_an_azure_sign_in_page_is_a_refused_token(dev_settings: Settings) -> None:
    ctx = _ctx(dev_settings, "azure_boards")
    page = _answer(203, b"<html><title>Azure DevOps Services | Sign In</title></html>", **{"content-type": "text/html"})
    with pytest.raises(UpstreamError) as caught:
        azure_devops.az_check(ctx, page, "GET _apis/connectionData")
    assert caught.value.step == "auth" and "sign-in page" in caught.value.message


def test_a_spent_github_rate_limit_is_not_a_missing_right(dev_settings: Settings) -> None:
    ctx = _ctx(dev_settings, "github_issues")
    spent = _answer(403, b'{"message": "API rate limit exceeded"}', **{"x-ratelimit-remaining": "0",
                                                                      "x-ratelimit-reset": "1893456000"})
    with pytest.raises(UpstreamError) as caught:
        github.gh_check(ctx, spent, "GET /user")
    assert caught.value.step == "http" and "rate limit" in caught.value.message and "2030-01-01" in caught.value.message
    with pytest.raises(UpstreamError) as refused:
        github.gh_check(ctx, _answer(403, b'{"message": "Resource not accessible"}'), "GET /user")
    assert refused.value.step == "permission"


def test_a_jira_captcha_lockout_is_an_auth_failure(dev_settings: Settings) -> None:
    ctx = _ctx(dev_settings, "jira_cloud")
    locked = _answer(403, b"", **{"x-seraph-loginreason": "AUTHENTICATION_DENIED"})
    with pytest.raises(UpstreamError) as caught:
        implementation("jira_cloud").check(ctx, locked, "GET myself")
    assert caught.value.step == "auth" and "CAPTCHA" in caught.value.message


def test_a_hibernating_servicenow_instance_is_named(dev_settings: Settings) -> None:
    ctx = _ctx(dev_settings, "servicenow")
    page = _answer(200, b"<html><title>Instance Hibernating page</title></html>", **{"content-type": "text/html"})
    with pytest.raises(UpstreamError) as caught:
        servicenow.ServiceNowConnector()._rows(ctx, page, "reading sys_user")
    assert caught.value.step == "response" and "hibernating" in caught.value.message


def test_jenkins_anonymous_403_is_an_auth_failure(dev_settings: Settings) -> None:
    ctx = _ctx(dev_settings, "jenkins")
    anonymous = _answer(403, b"<html><title>Error 403</title></html>", **{"x-you-are-authenticated-as": "anonymous"})
    with pytest.raises(UpstreamError) as caught:
        jenkins.jk_check(ctx, anonymous, "GET /api/json")
    assert caught.value.step == "auth"


def test_basic_encodings_of_the_credentials_are_scrubbed(dev_settings: Settings) -> None:
    ctx = _ctx(dev_settings, "jenkins")
    header = _work_http.basic_auth(ctx.credentials.username, ctx.secret("api_token"))["Authorization"]
    echoed = _answer(401, f'{{"message": "denied for {header.split()[1]}"}}'.encode())
    with pytest.raises(UpstreamError) as caught:
        _work_http.check(ctx, echoed, "GET /whoAmI")
    assert header.split()[1] not in caught.value.message and "[REDACTED]" in caught.value.message


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_archives_are_read_within_bounds(dev_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _ctx(dev_settings, "github")
    assert list(_work_http.unzip(ctx, _zip({"a.txt": b"x", "d/b.txt": b"y"}), "artifact")) == [
        ("a.txt", b"x"), ("d/b.txt", b"y")]
    with pytest.raises(UpstreamError) as broken:
        list(_work_http.unzip(ctx, b"not a zip", "artifact"))
    assert broken.value.step == "response"
    monkeypatch.setattr(_work_http, "MAX_MEMBER_BYTES", 1024)
    bomb = _zip({"big.json": b"0" * 1_000_000})  # compresses to ~1 KiB, unpacks to 1 MB
    with pytest.raises(UpstreamError) as refused:
        list(_work_http.unzip(ctx, bomb, "artifact"))
    assert refused.value.step == "response" and "more than PMAP reads" in refused.value.message
    monkeypatch.setattr(_work_http, "MAX_MEMBERS", 1)
    with pytest.raises(UpstreamError):
        list(_work_http.unzip(ctx, _zip({"a": b"1", "b": b"2"}), "artifact"))


def test_only_files_of_an_accepted_format_become_artifacts() -> None:
    sarif = b'{"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "runs": []}'
    picked = _work_http.artifacts_of([("r/results.sarif", sarif), ("r/notes.txt", b"hello"),
                                      ("r/package.json", b'{"name": "x"}')], ("sarif",))
    assert [(a.name, a.format) for a in picked] == [("r/results.sarif", "sarif")]
    assert _work_http.artifacts_of([("r/results.sarif", sarif)], ("gitlab_security_report",)) == []
