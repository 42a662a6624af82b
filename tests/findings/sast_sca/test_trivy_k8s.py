"""Trivy Kubernetes reports in every layout ``trivy k8s --format json`` has written (issue 13, item 5).

Layouts (aquasecurity/trivy ``pkg/k8s/report``): ``Resources[]`` (``--report all``), the consolidated
``Findings[]`` (``--report summary``) and, in releases before both, top-level ``Vulnerabilities[]`` and
``Misconfigurations[]`` resource lists. The reports here are constructed; the same resources and
results are put into each layout, so each test differs from the others only in the layout.
"""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.registry import detect_format
from pmap.findings.formats.sast_sca import trivy

VULN = {"VulnerabilityID": "CVE-2023-0286", "PkgName": "openssl", "InstalledVersion": "3.0.7-r0",
        "FixedVersion": "3.0.8-r0", "Severity": "HIGH", "Title": "openssl: X.400 type confusion"}
SECRET = {"RuleID": "aws-access-key-id", "Category": "AWS", "Severity": "CRITICAL", "Title": "AWS Access Key ID",
          "StartLine": 3, "EndLine": 3, "Match": "AWS_ACCESS_KEY_ID=********"}
MISCONF = {"Type": "Kubernetes Security Check", "ID": "KSV001", "AVDID": "AVD-KSV-0001",
           "Title": "Process can elevate its own privileges", "Severity": "MEDIUM", "Status": "FAIL",
           "Resolution": "Set 'allowPrivilegeEscalation' to false.",
           "CauseMetadata": {"Provider": "Kubernetes", "Service": "general", "StartLine": 120}}
PASSING = {**MISCONF, "ID": "KSV002", "Title": "Default AppArmor profile not set", "Status": "PASS"}

WORKLOAD = {"Namespace": "shop", "Kind": "Deployment", "Name": "web"}
IMAGE_RESULTS = [
    {"Target": "registry.test/web:1.0 (alpine 3.17.1)", "Class": "os-pkgs", "Type": "alpine",
     "Vulnerabilities": [VULN]},
    {"Target": "/app/.env", "Class": "secret", "Secrets": [SECRET]},
]
CONFIG_RESULTS = [{"Target": "Deployment/web", "Class": "config", "Type": "kubernetes",
                   "MisconfSummary": {"Successes": 1, "Failures": 1, "Exceptions": 0},
                   "Misconfigurations": [MISCONF, PASSING]}]


def _doc(layout: str) -> dict[str, Any]:
    vulns = {**WORKLOAD, "Results": IMAGE_RESULTS}
    configs = {**WORKLOAD, "Results": CONFIG_RESULTS}
    clean = {"Namespace": "shop", "Kind": "Service", "Name": "web"}  # a resource without results
    if layout == "resources":
        return {"ClusterName": "prod", "Resources": [vulns, configs, clean]}
    if layout == "findings":  # consolidated: one entry per resource, its results together
        return {"ClusterName": "prod", "Findings": [{**WORKLOAD, "Results": CONFIG_RESULTS + IMAGE_RESULTS}, clean]}
    if layout == "lists":
        return {"ClusterName": "prod", "Vulnerabilities": [vulns, clean], "Misconfigurations": [configs]}
    raise AssertionError(layout)


def _parse(doc: Any) -> list[ParsedFinding]:
    return list(trivy.FORMAT.parse(io.BytesIO(orjson.dumps(doc))))


@pytest.mark.parametrize("layout", ["resources", "findings", "lists"])
def test_every_layout_reads_vulnerabilities_misconfigurations_and_secrets(layout: str) -> None:
    body = orjson.dumps(_doc(layout))
    fmt = detect_format(body[:65536], "cluster.json")
    assert fmt is not None and fmt.key == "trivy_json"
    found = sorted(_parse(_doc(layout)), key=lambda f: f.rule_id or "")
    assert [f.rule_id for f in found] == ["CVE-2023-0286", "KSV001", "aws-access-key-id"]
    assert {f.repository for f in found} == {"prod:shop/Deployment/web"}
    vuln, misconf, secret = found
    assert (vuln.package_name, vuln.package_version, vuln.fixed_version, vuln.vendor_severity) == \
        ("openssl", "3.0.7-r0", "3.0.8-r0", "HIGH")
    assert vuln.file_path == "registry.test/web:1.0 (alpine 3.17.1)"
    assert (misconf.file_path, misconf.line, misconf.vendor_severity) == ("Deployment/web", 120, "MEDIUM")
    assert (secret.file_path, secret.line, secret.cwe_ids) == ("/app/.env", 3, [798])
    assert "********" not in repr(secret)


def test_layouts_give_the_same_fingerprints() -> None:
    layouts = ("resources", "findings", "lists")
    prints = [{f.fingerprint("trivy_json") for f in _parse(_doc(layout))} for layout in layouts]
    assert prints[0] == prints[1] == prints[2] and len(prints[0]) == 3


def test_lists_layout_with_the_misconfigurations_list_beyond_the_head() -> None:
    # the second list starts after the 64 KiB the detector sees: it is still read
    doc = _doc("lists")
    many = [{"Namespace": "ns", "Kind": "Pod", "Name": f"p{i}", "Results": IMAGE_RESULTS[:1]} for i in range(400)]
    doc["Vulnerabilities"] = many + doc["Vulnerabilities"]
    assert len(orjson.dumps(doc)) > 65536 * 2
    found = _parse(doc)
    assert len(found) == 400 + 3 and sum(f.rule_id == "KSV001" for f in found) == 1


def test_a_cluster_without_findings_is_no_findings() -> None:
    assert _parse({"ClusterName": "prod"}) == []
    assert _parse({"ClusterName": "prod", "Vulnerabilities": [], "Misconfigurations": []}) == []
    assert _parse({"ClusterName": "prod", "Resources": [{"Namespace": "a", "Kind": "Pod", "Name": "b",
                                                         "Error": "scan failed"}]}) == []


def test_a_resource_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ReportError, match="Kubernetes resource"):
        _parse({"ClusterName": "prod", "Vulnerabilities": ["web"]})
