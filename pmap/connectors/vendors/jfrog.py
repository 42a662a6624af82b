"""JFrog Xray REST API (``https://HOST/xray/api/v1``), ``Authorization: Bearer <access token>``.

``/system/ping`` answers anonymously and proves nothing. Whether ``/system/version`` needs the token is
not documented per route (Xray's REST introduction says a few calls, "such as SYSTEM calls", need no
authentication), and its answer (``xray_version``, ``xray_revision``) names no user: the test reports the
version, not who is authenticated.

Findings are pulled through a vulnerabilities report on the repositories of the ``repositories`` connection setting
(Xray reports on named resources; there is no "everything" scope): ``POST /reports/vulnerabilities`` starts it,
``GET /reports/{id}`` is polled until ``completed``, its rows are read page by page with
``POST /reports/vulnerabilities/{id}?page_num=&num_of_rows=`` (``total_rows``), one page in memory, each read as a row
of the ``jfrog_xray_json`` format (the report's own shape), and the report is deleted after its last page. A report
is the repositories' current state: Xray keeps no fixed state there and offers no change-time filter (its
``scan_date`` filter is the artifact's scan), so every pull is full and complete, resolving what it no longer lists.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import Field, SecretStr

from pmap.connectors.base import (
    Category,
    ConnectionSettings,
    Connector,
    ConnectorType,
    Credentials,
    FindingsFeed,
    FindingsPull,
    OperationContext,
    Probe,
    SyncsFindings,
)
from pmap.connectors.vendors._support import check, fail, json_of, poll, text
from pmap.core.errors import FieldProblem, UpstreamError, ValidationFailed
from pmap.core.outbound import OutboundClient
from pmap.core.urlpath import vendor_path
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.sast_sca.jfrog_xray import KEY as FINDINGS_FORMAT
from pmap.findings.formats.sast_sca.jfrog_xray import api_row

#: rows per page of a report's content
PAGE_SIZE = 100
_REPORT_HINT = "the token's user needs the Manage Reports permission (and read access to the repositories)"
_FAILED = {"failed", "aborted", "error"}


class JFrogToken(Credentials):
    """A JFrog platform access token (or an identity token)."""

    access_token: SecretStr = Field(description="Access token")


class XrayConnection(ConnectionSettings):
    base_url: str = Field(description="Xray API base, e.g. https://example.jfrog.io/xray/api/v1")
    repositories: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list, max_length=500,
        description="Repositories a findings sync reports on (an Xray vulnerabilities report)")


def _headers(ctx: OperationContext) -> dict[str, str]:
    return {"Authorization": f"Bearer {ctx.secret('access_token')}"}


def _repositories(ctx: OperationContext) -> list[str]:
    repos = list(dict.fromkeys(ctx.connection.repositories))
    if not repos:
        raise ValidationFailed("a JFrog Xray findings sync needs the repositories to report on (connection setting "
                               "repositories)", fields=[FieldProblem("repositories", "name at least one repository")])
    return repos


def _report(ctx: OperationContext, c: OutboundClient, repos: list[str]) -> str:
    """Start a vulnerabilities report on ``repos`` and wait until Xray completed it; its id."""
    body = {"name": f"pmap-sync-{uuid.uuid4().hex[:12]}", "resources": {"repositories": [{"name": r} for r in repos]}}
    # asked again when rate-limited (Xray did not take it) or on a server error (then, at worst, a second report
    # is left behind): a sync that fails for a retry it could have made helps no one
    resp = check(ctx, c.post("/reports/vulnerabilities", headers=_headers(ctx), json=body, retry_unsafe=True),
                 "starting a vulnerabilities report", auth_hint="check the access token (it may have expired)",
                 permission_hint=_REPORT_HINT)
    report = text(json_of(ctx, resp, "the new report").get("report_id"))
    if not report:
        raise fail(ctx, "Xray answered the new report without a report_id", step="response")
    target = vendor_path("/reports/{id}", id=report)

    def ready() -> str | None:
        status = (text(json_of(ctx, check(ctx, c.get(target, headers=_headers(ctx)), "reading the report's status",
                                          permission_hint=_REPORT_HINT), "the report's status").get("status")) or "")
        if status.lower() in _FAILED:
            raise fail(ctx, f"Xray's vulnerabilities report ended {status.lower()}", step="response")
        return report if status.lower() == "completed" else None

    return poll(ctx, ready, what="Xray's vulnerabilities report")


def _rows(ctx: OperationContext, repos: list[str]) -> Iterator[ParsedFinding]:
    with ctx.client() as c:
        report = _report(ctx, c, repos)
        target = vendor_path("/reports/vulnerabilities/{id}", id=report)
        page = 1
        while True:
            params: dict[str, Any] = {"direction": "asc", "order_by": "severity", "page_num": page,
                                      "num_of_rows": PAGE_SIZE}
            # reading a report's content is a POST that changes nothing: safe to retry
            resp = check(ctx, c.post(target, headers=_headers(ctx), params=params, retry_unsafe=True),
                         "reading the report's rows", permission_hint=_REPORT_HINT)
            body = json_of(ctx, resp, "the report's rows")
            del resp
            rows = body.get("rows")
            if rows is None and body.get("total_rows") == 0:
                rows = []  # an empty report may carry no rows at all
            if not isinstance(rows, list):
                raise fail(ctx, "Xray's report content has no rows list", step="response")
            for row in rows:
                try:
                    finding = api_row(row)
                except ReportError as exc:
                    raise fail(ctx, f"a report row could not be read: {exc.message}", step="response") from None
                yield finding
            total = body.get("total_rows")
            if len(rows) < PAGE_SIZE or (isinstance(total, int) and page * PAGE_SIZE >= total):
                break
            page += 1
        # the report served its purpose (Xray keeps reports until they are deleted); every row is read, so a
        # failed deletion (a report left behind) does not fail the pull
        with contextlib.suppress(UpstreamError):
            c.request("DELETE", vendor_path("/reports/{id}", id=report), headers=_headers(ctx))


class XrayConnector(Connector, SyncsFindings):
    """Xray: ``GET /system/version`` with the token; findings through a vulnerabilities report."""

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """The rows of a vulnerabilities report on the configured repositories, read as ``jfrog_xray_json``; always
        a full, complete pull (no fixed state, no change-time filter: ``pull.since`` is not used)."""
        return FindingsFeed(format=FINDINGS_FORMAT, findings=_rows(ctx, _repositories(ctx)), complete=True)

    def test_connection(self, ctx: OperationContext) -> Probe:
        """The Xray version and revision (an authenticated read)."""
        with ctx.client() as c:
            resp = check(ctx, c.get("/system/version", headers=_headers(ctx)), "GET /system/version",
                         auth_hint="check the access token (it may have expired)")
        body = json_of(ctx, resp, "version")
        version = text(body.get("xray_version"))
        if version is None:
            raise fail(ctx, "the version answer has no xray_version", step="response")
        revision = text(body.get("xray_revision"))
        return Probe(product="JFrog Xray", version=version,
                     message=f"connected (revision {revision})" if revision else None)


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="jfrog_xray", display_name="JFrog Xray", category=Category.SCA,
        connection_model=XrayConnection, credentials_model=JFrogToken, report_formats=("jfrog_xray_json",),
        implementation=XrayConnector(),
        docs_url="https://jfrog.com/help/r/xray-rest-apis/introduction-to-the-xray-rest-apis",
        notes="Syncs a vulnerabilities report on the repositories named in the connection, or import Xray JSON "
              "reports; report generation needs the Manage Reports permission.",
    ),
)
