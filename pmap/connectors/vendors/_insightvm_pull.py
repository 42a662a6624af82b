"""The Rapid7 InsightVM findings pull: ``GET /assets`` paged, each asset's ``/assets/{id}/vulnerabilities``
paged, each vulnerability's definition from ``/vulnerabilities/{id}`` through a bounded cache.

The console API v3 answers JSON, which no report format reads; a finding is built as the ``nexpose_xml``
format builds one from a vulnerable ``test`` of an XML 2.0 export (rule id the vulnerability id, severity its
1-10 ``severityScore``, the node's host name and address, the endpoint's port and protocol), so a synced
finding and the same one of an uploaded export are identified alike.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pmap.connectors.base import FindingsFeed, FindingsPull, OperationContext
from pmap.connectors.vendors._support import check, dig, json_of, parse_when, text
from pmap.core.outbound import OutboundClient
from pmap.core.urlpath import vendor_path
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.convert import compact, cvss_score, evidence, port_of, to_float
from pmap.findings.formats.identifiers import cve_ids, cvss_version
from pmap.findings.formats.vm_dast.nexpose import KEY as SYNC_FORMAT

#: resources per page of both paged lists (the API's largest page is 500)
PAGE = 100
#: vulnerability definitions kept between assets (least recently used dropped first)
DEFINITIONS_KEPT = 1000
#: a finding's ``status`` (VulnerabilityFinding / AssessmentResult enum) -> PMAP's; any other is open
_STATUS = {"not-vulnerable": "fixed", "vulnerable-with-exception-applied": "accepted",
           "vulnerable-version-with-exception-applied": "accepted",
           "vulnerable-potential-with-exception-applied": "accepted"}

Auth = Callable[[], tuple[str, str]]


def _pages(ctx: OperationContext, c: OutboundClient, auth: Auth, path: str, what: str) -> Iterator[list[Any]]:
    """A paged list's ``resources``, one page at a time (``page``/``size``), until ``page.totalPages``."""
    number = 0
    while True:
        resp = check(ctx, c.get(path, auth=auth(), params={"page": number, "size": PAGE}), f"GET {path}")
        body = json_of(ctx, resp, what)
        resources = body.get("resources") or []
        total = dig(body, "page", "totalPages")
        yield [r for r in resources if isinstance(r, Mapping)] if isinstance(resources, list) else []
        number += 1
        if not isinstance(total, int) or number >= total or not resources:
            return


class Definitions:
    """Vulnerability definitions fetched once each while they stay among the ``size`` most recently used."""

    def __init__(self, ctx: OperationContext, c: OutboundClient, auth: Auth, size: int | None = None) -> None:
        self._ctx, self._c, self._auth, self._size = ctx, c, auth, size or DEFINITIONS_KEPT
        self._kept: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def get(self, vid: str) -> dict[str, Any]:
        """The definition of ``vid``, from the cache or ``GET /vulnerabilities/{id}``."""
        if vid in self._kept:
            self._kept.move_to_end(vid)
            return self._kept[vid]
        path = vendor_path("/vulnerabilities/{vid}", vid=vid)
        found: dict[str, Any] = json_of(self._ctx, check(self._ctx, self._c.get(path, auth=self._auth()),
                                                         "GET /vulnerabilities/{id}"), "vulnerability")
        self._kept[vid] = found
        if len(self._kept) > self._size:
            self._kept.popitem(last=False)
        return found


def _cvss(d: Mapping[str, Any]) -> tuple[float | None, str | None, str | None]:
    """CVSS v3 when the definition has it, else v2 (as the XML export's ``cvssV3Score``/``cvssScore``)."""
    v3s, v3v = cvss_score(dig(d, "cvss", "v3", "score")), text(dig(d, "cvss", "v3", "vector"))
    if v3s is not None or v3v:
        return v3s, v3v, cvss_version(v3v) or "3.0"
    v2s, v2v = cvss_score(dig(d, "cvss", "v2", "score")), text(dig(d, "cvss", "v2", "vector"))
    if v2s is not None or v2v:
        return v2s, (v2v or "").strip("()") or None, "2.0"
    return None, None, None


def findings_of(asset: Mapping[str, Any], vuln: Mapping[str, Any], d: Mapping[str, Any]) -> list[ParsedFinding]:
    """One finding per assessment result with a port (an endpoint), else one for the host."""
    vid = text(vuln.get("id")) or "unknown"
    score, vector, version = _cvss(d)
    results = [r for r in vuln.get("results") or [] if isinstance(r, Mapping)]
    places: list[Mapping[str, Any] | None] = [r for r in results if port_of(r.get("port")) is not None]
    found = []
    for place in places or [None]:
        status = (text(place.get("status")) if place is not None else None) or text(vuln.get("status")) or ""
        proofs = [text(r.get("proof")) for r in ([place] if place is not None else results)]
        found.append(ParsedFinding(
            title=text(d.get("title")) or vid,
            vendor_severity=text(d.get("severityScore")),
            description=text(dig(d, "description", "text")),
            cve_ids=cve_ids(d.get("cves") or []),
            rule_id=vid,
            cvss_version=version,
            cvss_vector=vector,
            cvss_score=score,
            host=text(asset.get("hostName")),
            ip=text(asset.get("ip")),
            port=port_of(place.get("port")) if place is not None else None,
            protocol=((text(place.get("protocol")) or "").lower() or None) if place is not None else None,
            first_seen=parse_when(vuln.get("since")),
            status=_STATUS.get(status.lower()),
            extra=compact({"test_status": status.lower() or None, "risk_score": to_float(d.get("riskScore")),
                           "proof": evidence("\n".join(p for p in proofs if p)) or None}),
        ))
    return found


def pull(ctx: OperationContext, request: FindingsPull, auth: Auth) -> FindingsFeed:
    """The feed: assets page by page, each asset's vulnerabilities page by page, read lazily."""

    def findings() -> Iterator[ParsedFinding]:
        with ctx.client() as c:
            definitions = Definitions(ctx, c, auth)
            for assets in _pages(ctx, c, auth, "/assets", "assets"):
                for asset in assets:
                    aid = text(asset.get("id"))
                    if not aid:
                        continue
                    path = vendor_path("/assets/{aid}/vulnerabilities", aid=aid)
                    for vulns in _pages(ctx, c, auth, path, "asset vulnerabilities"):
                        for vuln in vulns:
                            vid = text(vuln.get("id"))
                            if vid:
                                yield from findings_of(asset, vuln, definitions.get(vid))

    # InsightVM documents no change-time filter on asset vulnerabilities: every pull is a complete full pull
    return FindingsFeed(format=SYNC_FORMAT, findings=findings(), complete=True)
