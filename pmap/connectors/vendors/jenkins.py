r"""Jenkins: report artifacts of a job's builds (CI/CD).

Authentication is HTTP Basic ``user:api_token`` (an API token, not the password; token requests are
exempt from CSRF crumbs). Jenkins answers an anonymous call 403 when anonymous read is off and may
answer it 200 when it is on, so the connection test asks ``/whoAmI`` who the caller is: an anonymous
answer is a refusal. The version is the ``X-Jenkins`` header. A job the account may not read
answers 404. Least privilege: Overall/Read and Job/Read (with Run/Artifacts) on the job;
a readable ``/pluginManager`` API is more than needed: it needs Overall/SystemRead, which Jenkins
folds into Overall/Administer unless SystemRead is enabled, so the report names both.

Reports: the artifacts of the job's last completed build (or the build number given as ``ref``)
named ``*.sarif`` or ``*.json`` that PMAP's report detectors claim.

Webhooks: Jenkins sends no signed notifications of its own, so PMAP cannot register one through
its API; the catalog names Standard Webhooks, which a pipeline step can sign. With the integration's
webhook secret (``whsec_<base64>``) in a Jenkins "Secret text" credential ``pmap-webhook-secret``
and PMAP's receiving URL in ``PMAP_WEBHOOK_URL``::

    post { always { withCredentials([string(credentialsId: 'pmap-webhook-secret', variable: 'PMAP_SECRET')]) {
      sh '''
        id="jenkins-$BUILD_TAG"; ts=$(date +%s)
        body=$(printf '{"job":"%s","build":%s,"url":"%s"}' "$JOB_NAME" "$BUILD_NUMBER" "$BUILD_URL")
        key=$(printf %s "${PMAP_SECRET#whsec_}" | base64 -d | od -An -tx1 | tr -d ' \n')
        sig=$(printf '%s.%s.%s' "$id" "$ts" "$body" \
          | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | base64)
        curl -fsS -X POST "$PMAP_WEBHOOK_URL" -H 'Content-Type: application/json' -H "webhook-id: $id" \
          -H "webhook-timestamp: $ts" -H "webhook-signature: v1,$sig" --data-binary "$body"
      '''
    } } }
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import Field, SecretStr

from pmap.connectors.base import (
    Category,
    ChecksPermissions,
    ConnectionSettings,
    Connector,
    ConnectorType,
    Credentials,
    FetchesPipelineReports,
    OperationContext,
    PermissionReport,
    Probe,
    ReportArtifact,
)
from pmap.connectors.vendors._support import permission_report, text
from pmap.connectors.vendors._work_http import (
    artifacts_of,
    basic_auth,
    check,
    download,
    fail,
    json_of,
    required,
)
from pmap.core.errors import FieldProblem, ValidationFailed
from pmap.core.outbound import OutboundClient, OutboundResponse
from pmap.core.urlpath import vendor_path

_AUTH_HINT = "use the user name and an API token (user menu > Security > API Token), not the password"
_REPORT_SUFFIXES = (".sarif", ".sarif.json", ".json")
#: what a readable ``/pluginManager/api/json`` proves: its API checks Overall/SystemRead, implied by Administer
EXCESS = "Overall/SystemRead or Overall/Administer"


class JenkinsCredentials(Credentials):
    """A Jenkins user and one of its API tokens (HTTP Basic)."""

    username: str = Field(min_length=1, description="Jenkins user name")
    api_token: SecretStr = Field(description="Jenkins API token")


class JenkinsConnection(ConnectionSettings):
    base_url: str = Field(description="The Jenkins root URL, e.g. https://jenkins.example.com")
    path_settings = {"job": "segments"}

    job: str | None = Field(default=None, pattern=r"^[^/]+(?:/[^/]+)*$", max_length=500,
                            description="Job whose builds carry the reports; folder/job for jobs in folders")
    artifact_pattern: str | None = Field(default=None, max_length=200,
                                         description="Glob of artifact paths to read (default: *.sarif, *.json)")


def headers(ctx: OperationContext) -> dict[str, str]:
    """The Basic user:token header."""
    return {**basic_auth(ctx.credentials.username, ctx.secret("api_token")), "Accept": "application/json"}


def job_path(job: str) -> str:
    """``folder/app`` as Jenkins' ``/job/folder/job/app``."""
    return "".join(vendor_path("/job/{job}", job=part) for part in job.split("/"))


def jk_check(ctx: OperationContext, resp: OutboundResponse, what: str, **kw: Any) -> OutboundResponse:
    """:func:`check` that reads Jenkins' anonymous 403 as missing credentials."""
    if resp.status == 403 and resp.headers.get("x-you-are-authenticated-as", "").lower() == "anonymous":
        raise fail(ctx, f"Jenkins treated {what} as anonymous: {_AUTH_HINT}", step="auth")
    return check(ctx, resp, what, auth_hint=_AUTH_HINT, **kw)


class JenkinsConnector(Connector, FetchesPipelineReports, ChecksPermissions):
    """Jenkins remote access API: identity, job and build artifacts."""

    def __init__(self, formats: tuple[str, ...]) -> None:
        self.formats = formats

    def _whoami(self, ctx: OperationContext, c: OutboundClient) -> OutboundResponse:
        resp = jk_check(ctx, c.get("/whoAmI/api/json", headers=headers(ctx)), "GET /whoAmI")
        who = json_of(ctx, resp, "whoAmI")
        if who.get("anonymous") is True or who.get("authenticated") is False:
            raise fail(ctx, f"Jenkins treated the call as anonymous: {_AUTH_HINT}", step="auth")
        return resp

    def _job(self, ctx: OperationContext, c: OutboundClient, path: str) -> None:
        jk_check(ctx, c.get(f"{path}/api/json", headers=headers(ctx), params={"tree": "name"}),
                 f"reading job {ctx.connection.job}", permission=(403, 404),
                 permission_hint="the job does not exist or the user lacks Job/Read on it")

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``/whoAmI`` proves the token; ``/api/json`` gives the version and the security mode."""
        with ctx.client() as c:
            self._whoami(ctx, c)
            root = jk_check(ctx, c.get("/api/json", headers=headers(ctx), params={"tree": "useSecurity,mode"}),
                            "GET /api/json", permission_hint="the user needs Overall/Read")
            info = json_of(ctx, root, "Jenkins")
            if ctx.connection.job:
                self._job(ctx, c, job_path(ctx.connection.job))
        warnings = []
        if info.get("useSecurity") is False:
            warnings.append("Jenkins security is disabled: anyone who reaches it can run builds and read artifacts")
        return Probe(product="Jenkins", version=text(root.headers.get("x-jenkins")), warnings=warnings,
                     message="authenticated with the API token")

    def check_permissions(self, ctx: OperationContext) -> PermissionReport:
        """Overall/Read and Job/Read probed; Overall/SystemRead or Administer is more than PMAP needs."""
        job = ctx.connection.job
        with ctx.client() as c:
            self._whoami(ctx, c)
            root = c.get("/api/json", headers=headers(ctx), params={"tree": "mode"}).status == 200
            readable = (c.get(f"{job_path(job)}/api/json", headers=headers(ctx), params={"tree": "name"}).status
                        == 200) if job else None
            admin = c.get("/pluginManager/api/json", headers=headers(ctx), params={"tree": "plugins[shortName]"})
        return permission_report(
            [("Overall/Read", "reaching Jenkins", root), ("Job/Read", "reading builds and their artifacts", readable)],
            [EXCESS] if admin.status == 200 else [],
            [] if job else ["no job configured: Job/Read cannot be checked"])

    def fetch_pipeline_reports(self, ctx: OperationContext, ref: str | None = None) -> list[ReportArtifact]:
        """Report artifacts of the last completed build (``ref``: a build number)."""
        if ref is not None and not ref.isdigit():
            raise ValidationFailed("a Jenkins build is named by its number",
                                   fields=[FieldProblem("ref", "must be digits")])
        path = job_path(required(ctx.connection.job, "job", "reading build reports"))
        pattern = ctx.connection.artifact_pattern
        files: list[tuple[str, bytes | Path]] = []
        with ctx.client() as c:
            resp = c.get(f"{path}/{ref or 'lastCompletedBuild'}/api/json", headers=headers(ctx),
                         params={"tree": "number,building,artifacts[relativePath]"})
            if resp.status == 404 and ref is None:
                # no completed build yet, or a job the account may not read: Jenkins answers 404 for both
                self._job(ctx, c, path)
                return []
            build = json_of(ctx, jk_check(ctx, resp, "reading the build", permission=(403,)), "the build")
            if build.get("building") is True:
                return []
            for artifact in build.get("artifacts") or []:
                rel = text(artifact.get("relativePath")) if isinstance(artifact, dict) else None
                if not rel or not (fnmatch(rel, pattern) if pattern else rel.lower().endswith(_REPORT_SUFFIXES)):
                    continue
                got, spooled = download(ctx, c, f"{path}/{build.get('number')}/artifact/{quote(rel)}",
                                        headers=headers(ctx))
                jk_check(ctx, got, f"downloading {rel}")
                files.append((rel, spooled or got.content))
        return artifacts_of(files, self.formats)


SARIF = ("sarif",)

CONNECTOR_TYPES = (
    ConnectorType(
        vendor="jenkins", display_name="Jenkins", category=Category.CICD,
        connection_model=JenkinsConnection, credentials_model=JenkinsCredentials, report_formats=SARIF,
        webhook_scheme="standard_webhooks", implementation=JenkinsConnector(SARIF),
        docs_url="https://www.jenkins.io/doc/book/using/remote-access-api/",
        notes="Reads SARIF artifacts of the job's last completed build. Webhooks: a pipeline step signs a "
              "Standard Webhooks notification (see the connector's documentation); nothing is registered by API.",
    ),
)
