"""Mobile application scanners: MobSF (REST) and NowSecure Platform (GraphQL).

MobSF has no version route: the test lists one recent scan. NowSecure answers GraphQL errors with
HTTP 200; a ``Forbidden`` error means the token works but may not read applications.

MobSF findings are pulled from the latest static report of each app: ``GET /scans`` (``page`` from 1 and
``page_size``, ``num_pages``; newest first, as MobSF orders its recent scans by ``-TIMESTAMP``), the first scan
listed per package name is the app's latest, and ``POST /report_json`` (form ``hash``) answers its report, one
report in memory at a time. MobSF keeps no fixed state and has no time filter: every pull is full and complete,
so a finding the latest report no longer holds is resolved by the sync.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

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
from pmap.connectors.vendors._support import check, dig, fail, json_of, text
from pmap.core.outbound import OutboundClient
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.vm_dast.mobsf import KEY as MOBSF_FORMAT
from pmap.findings.formats.vm_dast.mobsf import api_report

#: recent scans per page of ``GET /scans``
SCANS_PAGE = 50


class MobSFKey(Credentials):
    """The MobSF REST API key."""

    api_key: SecretStr = Field(description="REST API key")


class MobSFConnection(ConnectionSettings):
    base_url: str = Field(description="MobSF API base, e.g. https://mobsf.example.com/api/v1")


def _mobsf_headers(ctx: OperationContext) -> dict[str, str]:
    return {"X-Mobsf-Api-Key": ctx.secret("api_key")}


def _latest_scans(ctx: OperationContext, c: OutboundClient) -> Iterator[tuple[str, str]]:
    """(app, hash) of the latest scan of each app, newest first, one page of the scan list at a time."""
    seen: set[str] = set()
    page = 1
    while True:
        resp = check(ctx, c.get("/scans", headers=_mobsf_headers(ctx), params={"page": page, "page_size": SCANS_PAGE}),
                     "listing recent scans", auth_hint="check the REST API key")
        body = json_of(ctx, resp, "the scan list")
        del resp
        content = body.get("content")
        if not isinstance(content, list):
            raise fail(ctx, "MobSF's scan list has no content list", step="response")
        for scan in content:
            digest = text(scan.get("MD5")) if isinstance(scan, dict) else None
            if not digest:
                raise fail(ctx, "a scan of MobSF's list has no MD5", step="response")
            app = text(scan.get("PACKAGE_NAME")) or text(scan.get("APP_NAME")) or text(scan.get("FILE_NAME")) or digest
            if app not in seen:  # an older scan of an app already read
                seen.add(app)
                yield app, digest
        pages = body.get("num_pages")
        if not content or not isinstance(pages, int) or page >= pages:
            return
        page += 1


def _mobsf_findings(ctx: OperationContext, skipped: Counter[str]) -> Iterator[ParsedFinding]:
    with ctx.client() as c:
        for app, digest in _latest_scans(ctx, c):
            # a read: safe to retry when rate-limited
            resp = c.post("/report_json", headers=_mobsf_headers(ctx), data={"hash": digest}, retry_unsafe=True)
            if resp.status == 404:
                continue  # listed, but its report is gone (or the analysis never finished): nothing to read
            report = json_of(ctx, check(ctx, resp, "reading a scan's report", auth_hint="check the REST API key"),
                             "the scan's report")
            del resp
            try:
                yield from api_report(report, app, skipped)
            except ReportError as exc:
                raise fail(ctx, f"a report could not be read: {exc.message}", step="response") from None


class MobSFConnector(Connector, SyncsFindings):
    """MobSF: ``GET /scans`` with ``X-Mobsf-Api-Key``; the latest static report of each app is pulled."""

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed:
        """The findings of each app's latest static report, read as ``mobsf_json``; always a full, complete pull
        (MobSF has no fixed state and no time filter, so ``pull.since`` is not used). Rows of checks that hold
        (``secure``) are counted in the feed's ``skipped``, as an upload of the report counts them."""
        skipped: Counter[str] = Counter()
        return FindingsFeed(format=MOBSF_FORMAT, findings=_mobsf_findings(ctx, skipped), complete=True,
                            skipped=skipped)

    def test_connection(self, ctx: OperationContext) -> Probe:
        """List one recent scan (MobSF has no version route)."""
        with ctx.client() as c:
            resp = check(ctx, c.get("/scans", headers={"X-Mobsf-Api-Key": ctx.secret("api_key")},
                                    params={"page": 1, "page_size": 1}), "GET /scans")
        body = json_of(ctx, resp, "scan list")
        count = body.get("count")
        return Probe(product="MobSF",
                     message=f"connected and authenticated ({count} scans)" if isinstance(count, int) else None)


class NowSecureToken(Credentials):
    """A NowSecure Platform API token."""

    token: SecretStr = Field(description="API bearer token")


class NowSecureConnection(ConnectionSettings):
    base_url: str = Field(default="https://api.nowsecure.com", description="API host; GraphQL is at <base>/graphql")


_NOWSECURE_QUERY = "query PmapConnectionTest { auto { applications { ref } } }"


class NowSecureConnector(Connector):
    """NowSecure: a minimal GraphQL query over the token's applications."""

    def test_connection(self, ctx: OperationContext) -> Probe:
        """``auto { applications { ref } }``; a GraphQL ``Forbidden`` is step ``permission``."""
        with ctx.client() as c:
            # a read-only query: safe to retry when rate-limited
            resp = check(ctx, c.post("/graphql", headers={"Authorization": f"Bearer {ctx.secret('token')}"},
                                     json={"query": _NOWSECURE_QUERY}, retry_unsafe=True), "the GraphQL API")
        body = json_of(ctx, resp, "GraphQL answer")
        errors = body.get("errors") or []
        if errors:
            message = str(dig(errors, 0, "message") or "").lower()
            denied = "forbidden" in message or "permission" in message or "unauthorized" in message
            raise fail(ctx, "the token may not read applications" if denied else "the GraphQL query failed",
                       step="permission" if denied else "response", resp=resp)
        apps = dig(body, "data", "auto", "applications")
        if not isinstance(apps, list):
            raise fail(ctx, "the GraphQL answer has no auto.applications list", step="response")
        return Probe(product="NowSecure Platform", message=f"connected and authenticated ({len(apps)} applications)")


CONNECTOR_TYPES = (
    ConnectorType(
        vendor="mobsf", display_name="MobSF", category=Category.MOBILE,
        connection_model=MobSFConnection, credentials_model=MobSFKey, report_formats=("mobsf_json",),
        implementation=MobSFConnector(),
        docs_url="https://mobsf.github.io/docs/#/rest_api",
        notes="Syncs the latest static report of each app, or import MobSF JSON reports; MobSF has no license or "
              "roles.",
    ),
    ConnectorType(
        vendor="nowsecure", display_name="NowSecure Platform", category=Category.MOBILE,
        connection_model=NowSecureConnection, credentials_model=NowSecureToken,
        default_base_url="https://api.nowsecure.com", implementation=NowSecureConnector(),
        docs_url="https://docs.nowsecure.com/api/auto/graphql",
        notes="Connection test only: no findings sync, PMAP has no NowSecure report format yet.",
    ),
)
