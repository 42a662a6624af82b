"""A report of one PMAP format sent under another format's key is refused, and the refusal names the format
it is (issue 13, item 5): the cross-format cases beyond Snyk Code SARIF (``test_refusal_names_format_api.py``).

Each case was checked by parsing every format's sample under every other key: a parser that read another
tool's file as a report of no findings would have imported it as a clean scan (and, in a full import,
resolved everything); those parsers now refuse files that lack their own structure."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.registry import detect_format, report_formats
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, findings, upload
from tests.findings.sast_sca.sast_sca_samples import SAMPLES

# (the sample's format, the key it is sent under)
CASES = [
    ("trivy_json", "grype_json"),  # a Trivy report given as Grype
    ("cyclonedx", "trivy_json"),  # a CycloneDX SBOM given as Trivy
    ("gitleaks_json", "trivy_json"),  # another tool's array given as Trivy's legacy results array
    ("gitleaks_json", "mobsf_json"),  # ... as MobSF's list export
    ("dependency_track_fpf", "mobsf_json"),  # a "findings" list given as MobSF (its < 3 "findings" is an object)
    ("trivy_json", "invicti_json"),  # Trivy's nested "Vulnerabilities" given as Invicti's top-level ones
    ("trivy_json", "acunetix360_json"),
    ("semgrep_json", "osv_json"),  # Semgrep's "results" given as OSV-Scanner's
    ("bandit_json", "osv_json"),
    ("gitleaks_json", "pip_audit_json"),  # a list of unnamed dependencies
    ("github_vulnerability_json", "trivy_json"),
    ("gitleaks_json", "snyk_json"),  # another tool's array given as Snyk's --all-projects array
    ("gitlab_security_report", "snyk_json"),  # another "vulnerabilities" object given as a Snyk project
    ("cyclonedx", "snyk_json"),
    ("snyk_json", "gitlab_security_report"),  # ... and as a GitLab security report
    ("cyclonedx", "gitlab_security_report"),
    ("gitleaks_json", "gitlab_security_report"),
]


@pytest.mark.parametrize(("sample", "given_as"), CASES)
def test_the_parser_refuses_and_the_file_is_detected_as_its_own_format(sample: str, given_as: str) -> None:
    name, data = SAMPLES[sample]
    fmt = detect_format(data[:65536], name)
    assert fmt is not None and fmt.key == sample
    with pytest.raises(ReportError):
        list(report_formats()[given_as].parse(io.BytesIO(data)))


# what an integration of the vendors needing settings is created with (imports never call the vendor)
SETTINGS: dict[str, dict[str, Any]] = {
    "snyk": {"credentials": {"token": "t" * 36}, "connection": {}},
    "gitlab_ci": {"credentials": {"private_token": "glpat-" + "t" * 20}, "connection": {"project": "shop/app"}},
}


@pytest.mark.parametrize(("sample", "vendor", "given_as"), [
    ("trivy_json", "grype", "grype_json"),
    ("cyclonedx", "trivy", "trivy_json"),
    ("semgrep_json", "osv_scanner", "osv_json"),
    ("gitlab_security_report", "snyk", "snyk_json"),
    ("gitleaks_json", "snyk", "snyk_json"),
    ("cyclonedx", "snyk", "snyk_json"),
    ("snyk_json", "gitlab_ci", "gitlab_security_report"),
    ("cyclonedx", "gitlab_ci", "gitlab_security_report"),
])
def test_the_refusal_names_the_format_to_use(api: Api, sample: str, vendor: str, given_as: str) -> None:
    admin = api.token("acme", "admin")
    iid = create_integration(api, admin, vendor=vendor, **SETTINGS.get(vendor, {}))
    name, data = SAMPLES[sample]
    r = upload(api, iid, data, admin, filename=name, format=given_as)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "report_invalid" and err["format"] == given_as and err["detected_format"] == sample
    # the file's own format is not one this tool's integration imports (only trivy imports trivy_json, ...): the
    # message says so; the "import it with format=" hint is the Snyk Code case of test_refusal_names_format_api
    assert f"looks like a {sample} report, which this integration does not import" in err["message"]
    assert findings(api, admin, integration_id=iid) == []



# reports without findings: read under the wrong key they were a clean scan, which a full import takes for
# "everything fixed"; each is refused and detected as its own format
EMPTY = {
    "gitlab_security_report": {"version": "15.0.7", "vulnerabilities": [], "remediations": [],
                               "scan": {"type": "dependency_scanning", "status": "success",
                                        "scanner": {"id": "gemnasium", "name": "Gemnasium"}}},
    "snyk_json": {"vulnerabilities": [], "ok": True, "dependencyCount": 12, "org": "acme", "packageManager": "npm",
                  "summary": "No known vulnerabilities", "uniqueCount": 0, "projectName": "shop",
                  "displayTargetFile": "package-lock.json", "path": "/src"},
    "cyclonedx": {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": [],
                  "vulnerabilities": []},
}


@pytest.mark.parametrize(("sample", "given_as"), [
    ("gitlab_security_report", "snyk_json"), ("cyclonedx", "snyk_json"),
    ("snyk_json", "gitlab_security_report"), ("cyclonedx", "gitlab_security_report"),
])
def test_an_empty_report_of_another_format_is_refused(sample: str, given_as: str) -> None:
    data = json.dumps(EMPTY[sample]).encode()
    fmt = detect_format(data, "report.json")
    assert fmt is not None and fmt.key == sample
    with pytest.raises(ReportError, match="^" + given_as + ": not a "):
        list(report_formats()[given_as].parse(io.BytesIO(data)))
    assert list(report_formats()[sample].parse(io.BytesIO(data))) == []


def test_an_empty_array_is_no_snyk_report() -> None:
    # gitleaks' clean scan; snyk --all-projects writes one object per project, or an error object
    with pytest.raises(ReportError, match="no Snyk project"):
        list(report_formats()["snyk_json"].parse(io.BytesIO(b"[]")))


def _snyk_project(name: str, vulns: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"vulnerabilities": vulns, "ok": not vulns, "dependencyCount": 3, "org": "acme", "packageManager": "npm",
            "uniqueCount": len(vulns), "projectName": name, "displayTargetFile": "package-lock.json",
            "path": "/src", **extra}


_SNYK_VULN = {"id": "SNYK-JS-LODASH-567746", "title": "Prototype Pollution", "packageName": "lodash",
              "version": "4.17.15", "severity": "high", "from": ["shop@1.0.0", "lodash@4.17.15"],
              "semver": {"vulnerable": ["<4.17.19"]}, "identifiers": {"CVE": ["CVE-2020-8203"]}}


@pytest.mark.parametrize(("doc", "expected"), [
    (_snyk_project("shop", [_SNYK_VULN]), 1),  # snyk test --json
    (_snyk_project("shop", []), 0),
    ([_snyk_project("shop", [_SNYK_VULN]), _snyk_project("api", [])], 1),  # --all-projects
    ([_snyk_project("shop", []), _snyk_project("api", [])], 0),
    # snyk container test --json: the image's project and its applications
    (_snyk_project("docker-image|shop", [], docker={"baseImage": "node:18"}, platform="linux/amd64",
                   applications=[_snyk_project("shop/app", [_SNYK_VULN])]), 1),
    # a project whose ok/dependencyCount follow a vulnerability list longer than the first 64 KiB
    ({"vulnerabilities": [dict(_SNYK_VULN, id=f"SNYK-JS-X-{i}", description="d" * 400) for i in range(300)],
      "ok": False, "projectName": "big"}, 300),
])
def test_snyk_reports_still_import(doc: Any, expected: int) -> None:
    assert len(list(report_formats()["snyk_json"].parse(io.BytesIO(json.dumps(doc).encode())))) == expected


_GITLAB_VULN = {"id": "v1", "category": "sast", "name": "SQL injection", "severity": "High",
                "location": {"file": "app/db.py", "start_line": 4},
                "identifiers": [{"type": "semgrep_id", "name": "sqli", "value": "python.sqli"}]}


@pytest.mark.parametrize("version", ["2.0", "2.3", "3.0", "14.0.0", "14.1.2", "15.0.7", "15.2.1"])
@pytest.mark.parametrize("scan_type", ["sast", "dependency_scanning", "container_scanning", "dast",
                                       "secret_detection", "cluster_image_scanning"])
def test_gitlab_reports_of_every_schema_and_kind_still_import(version: str, scan_type: str) -> None:
    gitlab = report_formats()["gitlab_security_report"]
    envelope: dict[str, Any] = {"version": version, "remediations": []}
    if not version.startswith("2."):
        envelope["scan"] = {"type": scan_type, "status": "success", "scanner": {"id": "x", "name": "X"}}
    assert list(gitlab.parse(io.BytesIO(json.dumps({**envelope, "vulnerabilities": []}).encode()))) == []
    one = {**envelope, "vulnerabilities": [dict(_GITLAB_VULN, category=scan_type)]}
    assert len(list(gitlab.parse(io.BytesIO(json.dumps(one).encode())))) == 1
    # "version" written after a vulnerability list longer than the first 64 KiB
    late = {"vulnerabilities": [dict(_GITLAB_VULN, id=f"v{i}", description="d" * 400,
                                     location={"file": f"f{i}.py", "start_line": 1}) for i in range(300)],
            **envelope}
    assert len(list(gitlab.parse(io.BytesIO(json.dumps(late).encode())))) == 300
