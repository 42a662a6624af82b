"""Trivy JSON: schema 2 reports (``Results``), Kubernetes cluster reports and legacy reports (a bare
array of results, or ``null``). Vulnerabilities, failed misconfiguration checks and secrets are read.

Every report kind Trivy writes as JSON is one of these shapes (aquasecurity/trivy ``pkg/types``):

- ``SchemaVersion: 2`` (Trivy 0.19 with ``TRIVY_NEW_JSON_SCHEMA``, the default since 0.20) with
  ``ArtifactName``, ``ArtifactType`` and ``Results[]``: ``trivy image`` (``container_image``), ``trivy fs``
  and ``trivy config`` (``filesystem``), ``trivy repo`` (``repository``), ``trivy sbom`` scanning a
  CycloneDX or SPDX file (``cyclonedx``, ``spdx``), ``trivy vm`` (``vm``); the artifact is the findings'
  repository, each result's ``Target`` their file path (the artifact is covered, :meth:`Report.cover`, by any
  result of a package vulnerability scan, ``os-pkgs``/``lang-pkgs`` or with a ``Vulnerabilities`` list, even
  an empty one: a clean rescan resolves its earlier findings). An object with ``Results[]`` of Trivy results but
  no ``SchemaVersion`` (development builds of 0.19) is read the same way;
- a top-level array of results (Trivy before 0.20; 0.1 to 0.3 wrote only ``Target`` and
  ``Vulnerabilities``, later ones ``Type``, ``Class``, ``Misconfigurations``), or ``null`` for a clean scan;
  no artifact is named, so each result's ``Target`` is its findings' ``asset`` (and covered as above);
- ``trivy k8s --format json``: three layouts over its releases, all read: ``Resources[]``
  (``--report all``), the consolidated ``Findings[]`` (``--report summary``), and, in earlier releases,
  top-level ``Vulnerabilities[]`` and ``Misconfigurations[]`` resource lists (secrets sit in the
  results of the ``Vulnerabilities`` list). Every layout's entry is a resource
  (``Namespace``, ``Kind``, ``Name``, ``Results[]``): ``<cluster>:<namespace>/<kind>/<name>`` is the
  findings' repository (artifact), each result's ``Target`` their file path.

A result's ``Class`` (``os-pkgs``, ``lang-pkgs``, ``config``, ``secret``, ``license``, ``license-file``,
``custom``) does not decide what is read: its lists do (``Vulnerabilities``, ``Misconfigurations``,
``Secrets``), whatever the class. What is left out by design, each counted with :meth:`Report.skip` so
the import summary's ``skipped`` and its warning say so (a report holding nothing else warns):

- ``Licenses[]`` (``--scanners license``; classes ``license`` and ``license-file``), counted as
  ``licence``: PMAP does not import licence findings as vulnerabilities. A forbidden or restricted
  licence is a legal/compliance decision about a dependency, not a weakness to fix and verify, and its
  ``Severity`` is Trivy's mapping of the licence category, not a risk rating;
- misconfiguration checks with ``Status`` ``PASS`` (``--include-non-failures``), counted as
  ``passed check``, and ``EXCEPTION`` (excepted by a policy), counted as ``excepted check``: checks that
  hold are not findings (a ``Misconfigurations`` entry without ``Status`` is a failure);
- ``ExperimentalModifiedFindings[]`` (``--show-suppressed``): findings Trivy itself left out on the
  user's word (``.trivyignore``, VEX ``not_affected``), counted as ``suppressed finding``;
- ``Packages[]`` (``--list-all-pkgs``) and ``CustomResources[]`` are inventories, not findings, and
  are not counted.

Identity: a failed check without ``CauseMetadata.StartLine`` (a Kubernetes manifest's or a Terraform
module's check Trivy could not place on a line) adds ``resource=<CauseMetadata.Resource>``: the same check
on two resources of one file (two containers, two buckets) is two findings. A check with a line, and any
vulnerability or secret, adds nothing (see ``docs/finding-identity.md``).

Severity: Trivy's own ``Severity`` (CRITICAL, HIGH, MEDIUM, LOW; UNKNOWN maps to nothing), which
Trivy already picked from its ``SeveritySource``; the CVSS of that source (else NVD's) is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import as_dict, as_list, text, to_float, to_int, uniq
from pmap.findings.formats.errors import ReportError, not_a
from pmap.findings.formats.identifiers import cvss_version, cwe_ids, ghsa_ids, sca_title, vuln_ids
from pmap.findings.formats.sniff import JsonHead, json_head

KEY = "trivy_json"
WHAT = "a Trivy JSON report"
SEVERITIES = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
}


def _cvss(v: dict[str, Any]) -> tuple[str | None, str | None, float | None]:
    """(version, vector, score) from the severity source's CVSS entry, else NVD's, else any."""
    table = as_dict(v.get("CVSS"))
    source = text(v.get("SeveritySource"))
    order = [source, "nvd", *table.keys()]
    for name in order:
        entry = as_dict(table.get(name or ""))
        for vec_key, score_key in (("V3Vector", "V3Score"), ("V40Vector", "V40Score"), ("V2Vector", "V2Score")):
            vector = text(entry.get(vec_key))
            score = to_float(entry.get(score_key))
            if vector or score is not None:
                version = cvss_version(vector) or {"V3Vector": "3.1", "V40Vector": "4.0", "V2Vector": "2.0"}[vec_key]
                return version, vector, score
    return None, None, None


def _vuln(v: Any, target: str | None, artifact: str | None, where: str) -> ParsedFinding:
    if not isinstance(v, dict):
        raise ReportError(KEY, "a vulnerability is not a JSON object", where)
    vid = text(v.get("VulnerabilityID"))
    if not vid:
        raise ReportError(KEY, "a vulnerability has no VulnerabilityID", where)
    pkg, version = text(v.get("PkgName")), text(v.get("InstalledVersion"))
    cves, others = vuln_ids(vid)
    refs = [r for r in (text(x) for x in as_list(v.get("References"))) if r]
    primary = text(v.get("PrimaryURL"))
    version_cvss, vector, score = _cvss(v)
    fix_status = text(v.get("Status"))
    return ParsedFinding(
        title=sca_title(vid, pkg, version),
        vendor_severity=text(v.get("Severity")),
        description=text(v.get("Description")) or text(v.get("Title")),
        cve_ids=cves,
        cwe_ids=cwe_ids(v.get("CweIDs")),
        other_ids=uniq(others + ghsa_ids(*refs)),
        rule_id=vid,
        cvss_version=version_cvss,
        cvss_vector=vector,
        cvss_score=score,
        repository=artifact,
        file_path=target,
        package_name=pkg,
        package_version=version,
        fixed_version=text(v.get("FixedVersion")),
        references=uniq(([primary] if primary else []) + refs),
        # Trivy's Status is the vendor's fix state ("fixed" = a fix exists), not the finding's
        status="not_affected" if fix_status == "not_affected" else None,
        extra={k: val for k, val in (("fix_status", fix_status), ("title", text(v.get("Title"))),
                                     ("pkg_path", text(v.get("PkgPath")))) if val},
    )


# misconfiguration statuses that are checks holding, not findings: what report.skip counts them as
_NOT_FAILED = {"PASS": "passed check", "EXCEPTION": "excepted check"}


def _misconfig(m: Any, target: str | None, artifact: str | None, where: str) -> ParsedFinding | str:
    """The finding of a failed check, or what a check that holds is skipped as."""
    if not isinstance(m, dict):
        raise ReportError(KEY, "a misconfiguration is not a JSON object", where)
    status = (text(m.get("Status")) or "FAIL").upper()
    if status != "FAIL":
        return _NOT_FAILED.get(status, f"{status.lower()} check")
    mid = text(m.get("ID")) or text(m.get("AVDID"))
    title = text(m.get("Title")) or mid
    if not title:
        raise ReportError(KEY, "a misconfiguration has neither ID nor Title", where)
    cause = as_dict(m.get("CauseMetadata"))
    refs = [r for r in (text(x) for x in as_list(m.get("References"))) if r]
    line = to_int(cause.get("StartLine"))
    resource = text(cause.get("Resource"))
    return ParsedFinding(
        title=f"{mid} - {title}" if mid and mid != title else title,
        vendor_severity=text(m.get("Severity")),
        description="\n\n".join(t for t in (text(m.get("Description")), text(m.get("Message"))) if t) or None,
        rule_id=mid,
        repository=artifact,
        file_path=target,
        line=line,
        remediation=text(m.get("Resolution")),
        references=uniq(refs),
        extra={k: val for k, val in (("type", text(m.get("Type"))), ("resource", resource)) if val},
        # without a line, one check failing on two resources of a file (two containers of a manifest, two
        # Terraform resources) is two findings; a check with a line keeps its fingerprint
        identity=[f"resource={resource}"] if resource and line is None else [],
    )


def _secret(s: Any, target: str | None, artifact: str | None, where: str) -> ParsedFinding:
    if not isinstance(s, dict):
        raise ReportError(KEY, "a secret is not a JSON object", where)
    rule = text(s.get("RuleID"))
    title = text(s.get("Title")) or rule
    if not title:
        raise ReportError(KEY, "a secret has neither RuleID nor Title", where)
    # the (masked) Match line is not copied: it can still hold part of the secret
    return ParsedFinding(
        title=f"Hard-coded secret ({title})" + (f" in {target}" if target else ""),
        vendor_severity=text(s.get("Severity")),
        description=f"Trivy secret rule {rule or title!r} matched in {target or 'the artifact'}.",
        cwe_ids=[798],
        rule_id=rule,
        repository=artifact,
        file_path=target,
        line=to_int(s.get("StartLine")),
        remediation="Revoke and rotate the secret, then remove it from the artifact and its history.",
        extra={k: val for k, val in (("category", text(s.get("Category"))),) if val},
    )


def _result(report: Report, result: Any, artifact: str | None, where: str) -> Iterator[ParsedFinding]:
    if not isinstance(result, dict):
        raise ReportError(KEY, "a result is not a JSON object", where)
    if "Target" not in result:  # every release writes it (``json:"Target"``, never omitted)
        raise not_a(KEY, WHAT, "a result has no 'Target'", where)
    target = text(result.get("Target"))
    # a legacy report names no artifact: each result's target (an image, a lockfile) is what was scanned,
    # the findings' asset (fingerprints leave it out), covered even when the result holds nothing
    asset = target if artifact is None else None
    if "Vulnerabilities" in result or text(result.get("Class")) in _PACKAGE_CLASSES:
        # its packages were scanned for vulnerabilities, found or not: a clean rescan resolves the earlier ones
        # (a licence-only or secret-only scan says nothing of them)
        report.cover(artifact or target)
    for v in as_list(result.get("Vulnerabilities")):
        f = _vuln(v, target, artifact, where)
        f.asset = asset
        yield f
    for m in as_list(result.get("Misconfigurations")):
        g = _misconfig(m, target, artifact, where)
        if isinstance(g, str):
            report.skip(g)
        else:
            g.asset = asset
            yield g
    for s in as_list(result.get("Secrets")):
        f = _secret(s, target, artifact, where)
        f.asset = asset
        yield f
    # left out by design (see the module doc): licences, and findings Trivy was told to suppress
    for key, what in (("Licenses", "licence"), ("ExperimentalModifiedFindings", "suppressed finding")):
        if n := len(as_list(result.get(key))):
            report.skip(what, n)


#: result classes of a vulnerability scan of packages (``Vulnerabilities`` may be absent when none was found)
_PACKAGE_CLASSES = frozenset({"os-pkgs", "lang-pkgs"})

# the lists of resources a Kubernetes report holds, by layout (see the module doc)
_K8S_LAYOUTS = (("Resources",), ("Findings",), ("Vulnerabilities", "Misconfigurations"))


def _cluster(report: Report, head: JsonHead) -> Iterator[ParsedFinding]:
    """A ``trivy k8s`` report in any of its layouts, resource by resource (one pass per list)."""
    cluster = text(head.values.get("ClusterName"))
    lists: tuple[str, ...] | None = next((keys for keys in _K8S_LAYOUTS if keys[0] in head.paths), None)
    if lists is None:  # no list in the first 64 KiB: the report names no resource there, look at all of them
        lists = tuple(k for keys in _K8S_LAYOUTS for k in keys)
    for key in lists:
        for res in json_reader.iter_json_items(report.rewind(), f"{key}.item", KEY):
            if not isinstance(res, dict):
                raise ReportError(KEY, "a Kubernetes resource is not a JSON object", f"{key}[]")
            # the cluster resource is the artifact: the same image in two workloads is two findings
            name = "/".join(t for t in (text(res.get("Namespace")), text(res.get("Kind")), text(res.get("Name"))) if t)
            artifact = f"{cluster}:{name}" if cluster else name or None
            for result in as_list(res.get("Results")):
                yield from _result(report, result, artifact, f"{key}[].Results[]")


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream findings result by result (Kubernetes reports: resource by resource)."""
    src, start, head = report.stream, report.start, report.json
    if head.root == "array":
        for result in json_reader.iter_json_items(src, "item", KEY):
            yield from _result(report, result, None, "[]")
        return
    if "ClusterName" in head.paths or "Resources" in head.paths or "Findings" in head.paths:
        yield from _cluster(report, head)
        return
    artifact = text(head.values.get("ArtifactName"))
    if artifact is None and "ArtifactName" not in head.paths:
        src.seek(start)
        artifact = text(json_reader.first_value(src, "ArtifactName", KEY))
        src.seek(start)
    for result in json_reader.items_required(src, "Results.item", KEY, WHAT):
        yield from _result(report, result, artifact, "Results[]")


def detect(head: bytes, filename: str | None) -> bool:
    """Schema 2 (``SchemaVersion`` + ``ArtifactName``/``Results``), Trivy results without ``SchemaVersion``,
    a cluster report (``ClusterName`` and a resource list of any layout), or legacy results (an array of
    ``Target`` + ``Vulnerabilities``, even all ``null``, or of typed results)."""
    info = json_head(head)
    if info is None:
        return False
    if info.root == "object":
        if info.has("SchemaVersion") and info.any("ArtifactName", "Results", "ArtifactType"):
            return True
        if info.has("Results.item.Target") and info.any(
                "Results.item.Vulnerabilities.item.VulnerabilityID", "Results.item.Misconfigurations",
                "Results.item.Secrets", "Results.item.Class"):
            return True
        return info.has("ClusterName") and info.any("Resources", "Findings", "Vulnerabilities", "Misconfigurations")
    return info.has("item.Target") and info.any(
        "item.Vulnerabilities", "item.Misconfigurations", "item.Secrets", "item.Type"
    )


FORMAT = ReportFormat(
    key=KEY,
    title="Trivy JSON",
    detect=detect,
    read=parse,
    syntax="json",
    null_is_empty=True,  # legacy Trivy writes null for a clean scan
    what=WHAT,
    map_severity=map_by_table(SEVERITIES),
)
