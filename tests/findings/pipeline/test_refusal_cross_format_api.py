"""A report of one PMAP format sent under another format's key is refused, and the refusal names the format
it is (issue 13, item 5): the cross-format cases beyond Snyk Code SARIF (``test_refusal_names_format_api.py``).

Each case was checked by parsing every format's sample under every other key: a parser that read another
tool's file as a report of no findings would have imported it as a clean scan (and, in a full import,
resolved everything); those parsers now refuse files that lack their own structure."""

from __future__ import annotations

import io

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
]


@pytest.mark.parametrize(("sample", "given_as"), CASES)
def test_the_parser_refuses_and_the_file_is_detected_as_its_own_format(sample: str, given_as: str) -> None:
    name, data = SAMPLES[sample]
    fmt = detect_format(data[:65536], name)
    assert fmt is not None and fmt.key == sample
    with pytest.raises(ReportError):
        list(report_formats()[given_as].parse(io.BytesIO(data)))


@pytest.mark.parametrize(("sample", "vendor", "given_as"), [
    ("trivy_json", "grype", "grype_json"),
    ("cyclonedx", "trivy", "trivy_json"),
    ("semgrep_json", "osv_scanner", "osv_json"),
])
def test_the_refusal_names_the_format_to_use(api: Api, sample: str, vendor: str, given_as: str) -> None:
    admin = api.token("acme", "admin")
    iid = create_integration(api, admin, vendor=vendor)
    name, data = SAMPLES[sample]
    r = upload(api, iid, data, admin, filename=name, format=given_as)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "report_invalid" and err["format"] == given_as and err["detected_format"] == sample
    # the file's own format is not one this tool's integration imports (only trivy imports trivy_json, ...): the
    # message says so; the "import it with format=" hint is the Snyk Code case of test_refusal_names_format_api
    assert f"looks like a {sample} report, which this integration does not import" in err["message"]
    assert findings(api, admin, integration_id=iid) == []

