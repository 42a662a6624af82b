"""Every JSON shape Trivy has written (issue 13, item 5), one constructed report per shape.

Shapes taken from aquasecurity/trivy: ``pkg/types/report.go`` (``Report``: ``SchemaVersion`` 2,
``ArtifactName``, ``ArtifactType`` container_image/filesystem/repository/cyclonedx/spdx/vm;
``Result``: ``Target``, ``Class`` os-pkgs/lang-pkgs/config/secret/license/license-file/custom,
``Vulnerabilities``, ``Misconfigurations``, ``Secrets``, ``Licenses``, ``ExperimentalModifiedFindings``),
``pkg/types/misconfiguration.go`` (``Status`` PASS/FAIL/EXCEPTION), ``pkg/types/license.go``
(``DetectedLicense``); the JSON writer of v0.19 (``pkg/report/json.go``: the bare results array unless
``TRIVY_NEW_JSON_SCHEMA`` was set; the object is the default from v0.20, ``BREAKING(report): migrate to
new json schema``) and of v0.1 (``pkg/report/writer.go``: results of ``Target`` and ``Vulnerabilities``
only, ``null`` for a clean target); the documentation's example JSON (``docs/.../save/json.md``).
Kubernetes layouts are in ``test_trivy_k8s.py``.
"""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import orjson
import pytest

from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.registry import detect_format
from pmap.findings.formats.sast_sca import trivy
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, upload

VULN = {"VulnerabilityID": "CVE-2021-44228", "PkgID": "org.apache.logging.log4j:log4j-core:2.14.1",
        "PkgName": "org.apache.logging.log4j:log4j-core", "InstalledVersion": "2.14.1",
        "FixedVersion": "2.15.0", "Status": "fixed", "SeveritySource": "ghsa", "Severity": "CRITICAL",
        "PrimaryURL": "https://avd.aquasec.com/nvd/cve-2021-44228", "Title": "log4j-core: Remote code execution",
        "CweIDs": ["CWE-502"], "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H",
                                                "V3Score": 10}}}
OS_VULN = {"VulnerabilityID": "CVE-2023-0286", "PkgName": "openssl", "InstalledVersion": "3.0.7-r0",
           "FixedVersion": "3.0.8-r0", "Severity": "HIGH", "Title": "openssl: X.400 type confusion"}
MISCONF = {"Type": "Dockerfile Security Check", "ID": "DS002", "AVDID": "AVD-DS-0002",
           "Title": "Image user should not be 'root'", "Severity": "HIGH", "Status": "FAIL",
           "Resolution": "Add 'USER <non root user name>' line to the Dockerfile",
           "CauseMetadata": {"Provider": "Dockerfile", "Service": "general", "StartLine": 1}}
PASSED = {**MISCONF, "ID": "DS001", "Title": "':latest' tag used", "Status": "PASS"}
EXCEPTED = {**MISCONF, "ID": "DS026", "Title": "No HEALTHCHECK defined", "Status": "EXCEPTION"}
SECRET = {"RuleID": "github-pat", "Category": "GitHub", "Severity": "CRITICAL", "Title": "GitHub Personal Access Token",
          "StartLine": 4, "EndLine": 4, "Match": "token = ****************************************"}
LICENCE = {"Severity": "HIGH", "Category": "restricted", "PkgName": "libgcc", "FilePath": "", "Name": "GPL-2.0",
           "Confidence": 1, "Link": ""}
LICENCE_FILE = {"Severity": "LOW", "Category": "notice", "FilePath": "LICENSE", "Name": "MIT", "Confidence": 1}
SUPPRESSED = {"Type": "vulnerability", "Status": "not_affected", "Statement": "vulnerable code not in execute path",
              "Source": "openvex.json", "Finding": OS_VULN}

RESULTS: list[dict[str, Any]] = [
    {"Target": "shop:1.0 (alpine 3.17.1)", "Class": "os-pkgs", "Type": "alpine", "Vulnerabilities": [OS_VULN]},
    {"Target": "app/pom.xml", "Class": "lang-pkgs", "Type": "pom", "Vulnerabilities": [VULN]},
    {"Target": "Dockerfile", "Class": "config", "Type": "dockerfile",
     "MisconfSummary": {"Successes": 1, "Failures": 1, "Exceptions": 1},
     "Misconfigurations": [MISCONF, PASSED, EXCEPTED]},
    {"Target": "app/config.py", "Class": "secret", "Secrets": [SECRET]},
    {"Target": "OS Packages", "Class": "license", "Licenses": [LICENCE]},
    {"Target": "Loose File License(s)", "Class": "license-file", "Licenses": [LICENCE_FILE]},
]
EXPECTED = ["CVE-2021-44228", "CVE-2023-0286", "DS002", "github-pat"]
SKIPPED = {"licence": 2, "passed check": 1, "excepted check": 1}


def _parse(doc: Any) -> tuple[list[ParsedFinding], Counter[str]]:
    body = orjson.dumps(doc)
    fmt = detect_format(body[:65536], "results.json")
    assert fmt is not None and fmt.key == "trivy_json"
    skipped: Counter[str] = Counter()
    found = sorted(trivy.FORMAT.parse(io.BytesIO(body), skipped), key=lambda f: f.rule_id or "")
    return found, skipped


def _schema2(artifact_type: str, name: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"SchemaVersion": 2, "CreatedAt": "2024-05-01T10:00:00Z", "ArtifactName": name,
            "ArtifactType": artifact_type, "Metadata": {"ImageConfig": {}}, "Results": results}


@pytest.mark.parametrize(("artifact_type", "name"), [
    ("container_image", "shop:1.0"),  # trivy image
    ("filesystem", "."),  # trivy fs, trivy config
    ("repository", "https://github.com/acme/shop"),  # trivy repo
    ("cyclonedx", "shop.cdx.json"),  # trivy sbom of a CycloneDX file
    ("spdx", "shop.spdx.json"),  # trivy sbom of an SPDX file
    ("vm", "disk.vmdk"),  # trivy vm
])
def test_schema_2_of_every_artifact_type(artifact_type: str, name: str) -> None:
    found, skipped = _parse(_schema2(artifact_type, name, RESULTS))
    assert [f.rule_id for f in found] == EXPECTED
    assert {f.repository for f in found} == {name}
    log4j, openssl, misconf, secret = found
    assert (log4j.file_path, log4j.package_name, log4j.package_version, log4j.fixed_version) == \
        ("app/pom.xml", "org.apache.logging.log4j:log4j-core", "2.14.1", "2.15.0")
    assert (log4j.cvss_score, log4j.cwe_ids, log4j.vendor_severity) == (10.0, [502], "CRITICAL")
    assert openssl.file_path == "shop:1.0 (alpine 3.17.1)"
    assert (misconf.title, misconf.line, misconf.file_path) == \
        ("DS002 - Image user should not be 'root'", 1, "Dockerfile")
    assert (secret.file_path, secret.line, secret.cwe_ids) == ("app/config.py", 4, [798])
    assert "****" not in repr(secret)
    assert skipped == SKIPPED


def test_sbom_scan_without_findings_in_lang_pkgs() -> None:
    # trivy sbom of an SBOM whose packages have no known vulnerability: results with packages only
    doc = _schema2("cyclonedx", "bom.json", [{"Target": "Java", "Class": "lang-pkgs", "Type": "jar",
                                              "Packages": [{"Name": "log4j-core", "Version": "2.17.1"}]}])
    found, skipped = _parse(doc)
    assert found == [] and skipped == Counter()


def test_a_report_of_licences_only_is_all_skipped() -> None:
    found, skipped = _parse(_schema2("filesystem", ".", RESULTS[4:]))
    assert found == [] and skipped == {"licence": 2}


def test_passing_checks_only_are_skipped_not_findings() -> None:
    # trivy config --include-non-failures of a clean Dockerfile
    doc = _schema2("filesystem", ".", [{"Target": "Dockerfile", "Class": "config", "Type": "dockerfile",
                                        "Misconfigurations": [PASSED, {**PASSED, "ID": "DS005"}]}])
    found, skipped = _parse(doc)
    assert found == [] and skipped == {"passed check": 2}


def test_a_misconfiguration_without_status_is_a_failure() -> None:
    # the first misconfiguration results (0.19-0.22) wrote Status; a list without it holds failures only
    bare = {k: v for k, v in MISCONF.items() if k != "Status"}
    found, _ = _parse(_schema2("filesystem", ".", [{"Target": "Dockerfile", "Misconfigurations": [bare]}]))
    assert [f.rule_id for f in found] == ["DS002"]


def test_suppressed_findings_are_counted_not_imported() -> None:
    doc = _schema2("container_image", "shop:1.0", [{**RESULTS[0], "ExperimentalModifiedFindings": [SUPPRESSED]}])
    found, skipped = _parse(doc)
    assert [f.rule_id for f in found] == ["CVE-2023-0286"] and skipped == {"suppressed finding": 1}


def test_results_without_schema_version() -> None:
    # a development build of 0.19 (TRIVY_NEW_JSON_SCHEMA before SchemaVersion was added)
    doc = {"ArtifactName": "shop:1.0", "ArtifactType": "container_image", "Results": RESULTS}
    found, skipped = _parse(doc)
    assert [f.rule_id for f in found] == EXPECTED and {f.repository for f in found} == {"shop:1.0"}
    assert skipped == SKIPPED


def test_legacy_array_of_typed_results() -> None:
    # Trivy 0.5 to 0.19: the results array (Type, later Class and Misconfigurations), no artifact
    found, skipped = _parse(RESULTS)
    assert [f.rule_id for f in found] == EXPECTED and {f.repository for f in found} == {None}
    assert skipped == SKIPPED


def test_first_legacy_array_target_and_vulnerabilities_only() -> None:
    # Trivy 0.1-0.4: {"Target", "Vulnerabilities"}; a clean target's list is null
    doc = [{"Target": "php-app/composer.lock", "Vulnerabilities": None},
           {"Target": "trivy-ci-test (alpine 3.7.1)", "Vulnerabilities": [OS_VULN]}]
    found, _ = _parse(doc)
    assert [(f.rule_id, f.file_path) for f in found] == [("CVE-2023-0286", "trivy-ci-test (alpine 3.7.1)")]


def test_first_legacy_array_of_clean_targets_is_detected_and_empty() -> None:
    found, skipped = _parse([{"Target": "php-app/composer.lock", "Vulnerabilities": None}])
    assert found == [] and skipped == Counter()


def test_custom_and_unknown_classes_are_read_by_their_lists() -> None:
    doc = _schema2("filesystem", ".", [{"Target": "x", "Class": "custom", "CustomResources": [{"Type": "t"}]},
                                       {"Target": "y", "Class": "unknown", "Vulnerabilities": [OS_VULN]}])
    found, skipped = _parse(doc)
    assert [(f.rule_id, f.file_path) for f in found] == [("CVE-2023-0286", "y")] and skipped == Counter()


def test_a_licence_only_report_imports_nothing_and_warns(api: Api) -> None:
    admin = api.token("acme", "admin")
    iid = create_integration(api, admin, vendor="trivy")
    r = upload(api, iid, orjson.dumps(_schema2("filesystem", ".", RESULTS[4:])), admin, filename="trivy.json",
               format="trivy_json")
    assert r.status_code == 200, r.text
    summary = r.json()
    assert summary["parsed"] == 0 and summary["skipped"] == {"licence": 2}
    assert any("2 licence" in w for w in summary["warnings"]), summary["warnings"]
