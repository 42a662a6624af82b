"""The identity rules of docs/finding-identity.md, with constructed reports.

For each rule: two entries that differ ONLY in the field the rule adds give two fingerprints (and, for a few,
two stored findings through the real import); two entries sharing their identity (a placeholder fingerprint
included) give one. Findings without identity parts keep the fingerprints earlier releases stored (golden
hashes computed with the code before the rules were added).
"""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest

from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.registry import report_formats
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, findings, nessus_report, upload

FORMATS = report_formats()


@pytest.fixture
def admin(api: Api) -> dict[str, str]:
    """Headers of an admin token of organization acme (as the pipeline tests' fixture)."""
    return api.token("acme", "admin")


def _parse(key: str, data: bytes) -> list[ParsedFinding]:
    return list(FORMATS[key].parse(io.BytesIO(data)))


def _fps(key: str, data: bytes) -> set[str]:
    return {f.fingerprint(key) for f in _parse(key, data)}


# --- Burp: the issue name under the generic "Extension generated issue" type ----------------------------

def _burp_issue(name: str, type_index: str = "134217728", path: str = "/account") -> str:
    return (f"<issue><serialNumber>{len(name)}{type_index}</serialNumber><type>{type_index}</type>"
            f"<name>{name}</name><host ip=\"10.0.0.5\">https://shop.example</host><path>{path}</path>"
            f"<location>{path} [id parameter]</location><severity>Medium</severity>"
            f"<confidence>Firm</confidence></issue>")


def _burp(*issues: str) -> bytes:
    return ('<?xml version="1.0"?><issues burpVersion="2024.1">' + "".join(issues) + "</issues>").encode()


def test_burp_extension_issues_differing_only_in_name_are_two_findings() -> None:
    doc = _burp(_burp_issue("JWT none algorithm accepted"), _burp_issue("GraphQL introspection enabled"))
    assert len(_fps("burp_xml", doc)) == 2


def test_burp_extension_issue_repeated_with_its_name_is_one_finding() -> None:
    doc = _burp(_burp_issue("JWT none algorithm accepted"), _burp_issue("JWT none algorithm accepted"))
    assert len(_fps("burp_xml", doc)) == 1


def test_burp_own_issue_types_keep_type_url_parameter_identity() -> None:
    # a Burp type names its problem: a renamed issue of the same type (Burp versions reword names) stays one
    doc = _burp(_burp_issue("SQL injection", "1049088"), _burp_issue("SQL injection (time-based)", "1049088"))
    assert len(_fps("burp_xml", doc)) == 1
    [f] = _parse("burp_xml", _burp(_burp_issue("SQL injection", "1049088")))
    assert f.identity == []


def test_burp_api_issue_of_the_generic_type_names_its_identity() -> None:
    from pmap.findings.formats.vm_dast.burp import api_issue

    def issue(name: str, index: str) -> dict[str, Any]:
        return {"issue_type": {"name": name, "type_index": index}, "origin": "https://shop.example",
                "path": "/a", "severity": "medium"}

    a, b = api_issue(issue("Ext A", "0x08000000")), api_issue(issue("Ext B", "0x08000000"))
    assert a.fingerprint("burp_xml") != b.fingerprint("burp_xml")
    assert api_issue(issue("XSS", "2097920")).identity == []


def test_burp_extension_issues_stored_as_two_findings(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin, vendor="burp_dast", connection={"base_url": "https://burp.example"},
                             credentials={"api_key": "k" * 32})
    doc = _burp(_burp_issue("JWT none algorithm accepted"), _burp_issue("GraphQL introspection enabled"),
                _burp_issue("JWT none algorithm accepted"))
    s = upload(api, iid, doc, admin, filename="burp.xml").json()
    assert (s["parsed"], s["created"], s["duplicates"]) == (2, 2, 1), s
    assert sorted(f["title"] for f in findings(api, admin, integration_id=iid)) == [
        "GraphQL introspection enabled", "JWT none algorithm accepted"]


# --- SonarQube: the advisory under the Dependency-Check plugin's generic rule ----------------------------

def _sonar(*issues: tuple[str, str]) -> bytes:
    return json.dumps({"issues": [
        {"key": f"k{i}", "rule": rule, "component": "shop:pom.xml", "project": "shop", "severity": "MAJOR",
         "message": message} for i, (rule, message) in enumerate(issues)],
        "paging": {}, "components": []}).encode()


_DEP = ("Filename: log4j-core-2.14.1.jar | Reference: {ref} | CVSS Score: 9.8 | Category: CWE-502 | "
        "Apache Log4j2 ...")


def test_sonar_generic_rule_advisories_on_one_dependency_are_two_findings() -> None:
    rule = "OWASP:UsingComponentWithKnownVulnerability"
    doc = _sonar((rule, _DEP.format(ref="CVE-2021-44228")), (rule, _DEP.format(ref="CVE-2021-45046")))
    assert len(_fps("sonarqube_json", doc)) == 2
    same = _sonar((rule, _DEP.format(ref="CVE-2021-44228")), (rule, _DEP.format(ref="CVE-2021-44228")))
    assert len(_fps("sonarqube_json", same)) == 1


def test_sonar_generic_rule_reads_a_ghsa_in_a_free_message() -> None:
    rule = "OWASP:UsingComponentWithKnownVulnerability"
    doc = _sonar((rule, "pkg 1.0 is affected by GHSA-jfh8-c2jp-5v3q"),
                 (rule, "pkg 1.0 is affected by GHSA-7rjr-3q55-vv33"))
    assert len(_fps("sonarqube_json", doc)) == 2


def test_sonar_dependency_check_message_under_a_renamed_rule_key() -> None:
    rule = "dependencycheck-custom:vulnerable-component"
    doc = _sonar((rule, _DEP.format(ref="CVE-2021-44228")), (rule, _DEP.format(ref="CVE-2021-45046")))
    assert len(_fps("sonarqube_json", doc)) == 2


def test_sonar_specific_rules_add_no_identity() -> None:
    doc = _sonar(("java:S2076", "CVE-2021-44228 mentioned"), ("java:S2076", "CVE-2021-45046 mentioned"))
    found = _parse("sonarqube_json", doc)
    assert [f.identity for f in found] == [[], []] and len({f.fingerprint("sonarqube_json") for f in found}) == 1


def _sonar_html(*issues: tuple[str, str]) -> bytes:
    """A sonar-report HTML file (sonarqube_html) with the issues of :func:`_sonar`."""
    rows = "".join(f"<tr><td><a href='x'>{rule}</a></td><td>MAJOR</td><td>pom.xml</td><td></td><td>/</td>"
                   f"<td>{message}</td><td>k{i}</td></tr>" for i, (rule, message) in enumerate(issues))
    return ("<html><head><title>SonarQube Vulnerability Report</title></head><body><dl><dt>Project Name</dt>"
            "<dd>shop</dd></dl><h2>Detail of the Detected Vulnerabilities</h2><table><tr><th>Rule</th>"
            "<th>Severity</th><th>Component</th><th>Line</th><th>Description</th><th>Message</th><th>Key</th></tr>"
            f"{rows}</table></body></html>").encode()


def test_sonar_html_follows_the_json_readers_advisory_rule() -> None:
    generic, renamed = "OWASP:UsingComponentWithKnownVulnerability", "dependencycheck-custom:vulnerable-component"
    for rule in (generic, renamed):
        doc = _sonar_html((rule, _DEP.format(ref="CVE-2021-44228")), (rule, _DEP.format(ref="CVE-2021-45046")))
        assert len(_fps("sonarqube_html", doc)) == 2
        same = _sonar_html((rule, _DEP.format(ref="CVE-2021-44228")), (rule, _DEP.format(ref="CVE-2021-44228")))
        assert len(_fps("sonarqube_html", same)) == 1
    ghsa = _sonar_html((generic, "pkg 1.0 is affected by GHSA-jfh8-c2jp-5v3q"),
                       (generic, "pkg 1.0 is affected by GHSA-7rjr-3q55-vv33"))
    assert len(_fps("sonarqube_html", ghsa)) == 2
    specific = _parse("sonarqube_html", _sonar_html(("java:S2076", "CVE-2021-44228 mentioned"),
                                                    ("java:S2076", "CVE-2021-45046 mentioned")))
    assert [f.identity for f in specific] == [[], []] and len({f.fingerprint("sonarqube_html") for f in specific}) == 1


def test_sonar_html_issue_has_the_json_readers_identity_fields() -> None:
    issues = (("OWASP:UsingComponentWithKnownVulnerability", _DEP.format(ref="CVE-2021-44228")),
              ("java:S2076", "Make sure this command is safe"))
    fields = ("rule_id", "repository", "file_path", "line", "package_name", "cve_ids", "identity")
    as_json = [[getattr(f, n) for n in fields] for f in _parse("sonarqube_json", _sonar(*issues))]
    as_html = [[getattr(f, n) for n in fields] for f in _parse("sonarqube_html", _sonar_html(*issues))]
    assert as_html == as_json and as_json[0][-1] == ["advisory=CVE-2021-44228"]


# --- SARIF: one finding per location, taint flow ends, the tool's fingerprints --------------------------

def _loc(uri: str, line: int) -> dict[str, Any]:
    return {"physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": line}}}


def _sarif(*results: dict[str, Any]) -> bytes:
    base = {"ruleId": "js/sql-injection", "level": "error", "message": {"text": "Tainted query"}}
    return json.dumps({"version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "Analyzer", "rules": [{"id": "js/sql-injection"}]}},
        "results": [{**base, **r} for r in results]}]}).encode()


def _flow(*steps: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"threadFlows": [{"locations": [{"location": _loc(u, n)} for u, n in steps]}]}]


def test_sarif_result_with_two_locations_is_two_findings() -> None:
    doc = _sarif({"locations": [_loc("src/a.js", 10), _loc("src/b.js", 20)]})
    found = _parse("sarif", doc)
    assert [(f.file_path, f.line) for f in found] == [("src/a.js", 10), ("src/b.js", 20)]
    assert len({f.fingerprint("sarif") for f in found}) == 2
    # each location's finding is its own object (no shared lists)
    found[0].extra["x"] = 1
    assert "x" not in found[1].extra


def test_sarif_location_listed_twice_is_one_finding() -> None:
    assert len(_parse("sarif", _sarif({"locations": [_loc("src/a.js", 10), _loc("src/a.js", 10)]}))) == 1


def test_sarif_first_location_keeps_its_fingerprint() -> None:
    one = _sarif({"locations": [_loc("src/a.js", 10)]})
    two = _sarif({"locations": [_loc("src/a.js", 10), _loc("src/b.js", 20)]})
    assert _fps("sarif", one) < _fps("sarif", two)


def test_sarif_flows_from_a_reported_source_into_different_sinks_are_two_findings() -> None:
    src = _loc("src/input.js", 5)
    doc = _sarif({"locations": [src], "codeFlows": _flow(("src/input.js", 5), ("src/db.js", 40))},
                 {"locations": [src], "codeFlows": _flow(("src/input.js", 5), ("src/report.js", 9))})
    assert len(_fps("sarif", doc)) == 2
    same = _sarif({"locations": [src], "codeFlows": _flow(("src/input.js", 5), ("src/mid.js", 1), ("src/db.js", 40))},
                  {"locations": [src], "codeFlows": _flow(("src/input.js", 5), ("src/db.js", 40))})
    assert len(_fps("sarif", same)) == 1


def test_sarif_flows_reported_at_their_sink_stay_one_finding_per_sink() -> None:
    sink = _loc("src/db.js", 40)
    doc = _sarif({"locations": [sink], "codeFlows": _flow(("src/a.js", 1), ("src/db.js", 40))},
                 {"locations": [sink], "codeFlows": _flow(("src/b.js", 2), ("src/db.js", 40))})
    found = _parse("sarif", doc)
    assert [f.identity for f in found] == [[], []] and len({f.fingerprint("sarif") for f in found}) == 1


def test_sarif_related_locations_naming_source_and_sink() -> None:
    def result(sink_line: int) -> dict[str, Any]:
        return {"locations": [_loc("src/input.js", 5)], "relatedLocations": [
            {**_loc("src/input.js", 5), "message": {"text": "Taint source"}},
            {**_loc("src/db.js", sink_line), "message": {"text": "Sink: query()"}}]}
    assert len(_fps("sarif", _sarif(result(40), result(41)))) == 2
    assert len(_fps("sarif", _sarif(result(40), result(40)))) == 1


@pytest.mark.parametrize("kind", ["fingerprints", "partialFingerprints"])
def test_sarif_tool_fingerprints_tell_apart_results_on_one_line(kind: str) -> None:
    loc = [_loc("src/a.js", 10)]
    doc = _sarif({"locations": loc, kind: {"primaryLocationLineHash": "aaaa:1"}},
                 {"locations": loc, kind: {"primaryLocationLineHash": "aaaa:2"}})
    assert len(_fps("sarif", doc)) == 2
    same = _sarif({"locations": loc, kind: {"k/v1": "aaaa:1"}}, {"locations": loc, kind: {"k/v1": "aaaa:1"}})
    assert len(_fps("sarif", same)) == 1


def test_sarif_fingerprint_is_added_to_the_location_never_replacing_it() -> None:
    doc = _sarif({"locations": [_loc("src/a.js", 10)], "fingerprints": {"id/v1": "same"}},
                 {"locations": [_loc("src/b.js", 10)], "fingerprints": {"id/v1": "same"}})
    assert len(_fps("sarif", doc)) == 2


@pytest.mark.parametrize("placeholder", ["requires login", "Requires Login", " ", "null"])
def test_sarif_placeholder_fingerprints_are_absent(placeholder: str) -> None:
    loc = [_loc("src/a.js", 10)]
    doc = _sarif({"locations": loc, "fingerprints": {"matchBasedId/v1": placeholder}},
                 {"locations": loc, "fingerprints": {"matchBasedId/v1": placeholder}})
    found = _parse("sarif", doc)
    assert len({f.fingerprint("sarif") for f in found}) == 1
    assert found[0].identity == [] and "fingerprint" not in found[0].extra
    # and the finding has the fingerprint of a result that gives none
    assert found[0].fingerprint("sarif") == _parse("sarif", _sarif({"locations": loc}))[0].fingerprint("sarif")


def test_sarif_logical_locations_without_a_file_stay_apart() -> None:
    def logical(name: str) -> dict[str, Any]:
        return {"logicalLocations": [{"fullyQualifiedName": name}]}
    doc = _sarif({"locations": [logical("App.Worker.Run")]}, {"locations": [logical("App.Worker.Stop")]})
    assert len(_fps("sarif", doc)) == 2


def test_sarif_multi_location_result_stored_as_findings(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin, vendor="sarif")
    src = _loc("src/input.js", 5)
    doc = _sarif({"locations": [_loc("src/a.js", 10), _loc("src/b.js", 20)]},
                 {"locations": [src], "codeFlows": _flow(("src/input.js", 5), ("src/db.js", 40))},
                 {"locations": [src], "codeFlows": _flow(("src/input.js", 5), ("src/report.js", 9))},
                 {"locations": [_loc("src/c.js", 1)], "fingerprints": {"m/v1": "requires login"}},
                 {"locations": [_loc("src/c.js", 1)], "fingerprints": {"m/v1": "requires login"}})
    s = upload(api, iid, doc, admin, filename="scan.sarif").json()
    assert (s["parsed"], s["created"], s["duplicates"]) == (5, 5, 1), s
    rows = findings(api, admin, integration_id=iid)
    assert sorted((f["file_path"], f["line"]) for f in rows) == [
        ("src/a.js", 10), ("src/b.js", 20), ("src/c.js", 1), ("src/input.js", 5), ("src/input.js", 5)]
    # the same report again updates them all: the identities are stable
    again = upload(api, iid, doc, admin, filename="scan.sarif").json()
    assert (again["created"], again["updated"], again["resolved"]) == (0, 5, 0)


# --- Semgrep: the match fingerprint --------------------------------------------------------------------

def _semgrep(*fingerprints: str) -> bytes:
    return json.dumps({"results": [
        {"check_id": "python.lang.security.eval", "path": "app.py", "start": {"line": 3, "col": c},
         "extra": {"message": "eval of input", "severity": "ERROR", "fingerprint": fp, "metadata": {}}}
        for c, fp in enumerate(fingerprints)], "errors": []}).encode()


def test_semgrep_fingerprints_tell_apart_two_matches_on_one_line() -> None:
    assert len(_fps("semgrep_json", _semgrep("0f1e2d", "9a8b7c"))) == 2
    assert len(_fps("semgrep_json", _semgrep("0f1e2d", "0f1e2d"))) == 1


def test_semgrep_requires_login_is_no_fingerprint() -> None:
    found = _parse("semgrep_json", _semgrep("requires login", "requires login"))
    assert len({f.fingerprint("semgrep_json") for f in found}) == 1 and found[0].identity == []


def test_semgrep_matches_stored_as_two_findings(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin, vendor="semgrep", credentials={"token": "t" * 40})
    s = upload(api, iid, _semgrep("0f1e2d", "9a8b7c", "requires login", "requires login"), admin,
               filename="semgrep.json").json()
    assert (s["parsed"], s["created"], s["duplicates"]) == (3, 3, 1), s


# --- the other formats' rules -----------------------------------------------------------------------------

def _compliance_item(check_id: str, name: str) -> str:
    return (f'<ReportItem port="0" svc_name="general" protocol="tcp" severity="2" pluginID="21157" '
            f'pluginName="Unix Compliance Checks" pluginFamily="Policy Compliance">'
            f'<description>{name}</description>'
            f'<cm:compliance-check-name>{name}</cm:compliance-check-name>'
            f'<cm:compliance-check-id>{check_id}</cm:compliance-check-id>'
            f'<cm:compliance-result>FAILED</cm:compliance-result></ReportItem>')


def _nessus(*items: str) -> bytes:
    return ('<?xml version="1.0" ?><NessusClientData_v2 xmlns:cm="http://www.nessus.org/cm"><Report name="t">'
            '<ReportHost name="10.0.0.1"><HostProperties><tag name="host-ip">10.0.0.1</tag></HostProperties>'
            + "".join(items) + "</ReportHost></Report></NessusClientData_v2>").encode()


def test_nessus_compliance_checks_under_one_plugin_are_findings_of_their_own() -> None:
    doc = _nessus(_compliance_item("a1b2", "1.1 Ensure /tmp is a separate partition"),
                  _compliance_item("c3d4", "5.2 Ensure SSH root login is disabled"))
    assert len(_fps("nessus", doc)) == 2
    same = _nessus(_compliance_item("a1b2", "1.1 Ensure /tmp is a separate partition"),
                   _compliance_item("a1b2", "1.1 Ensure /tmp is a separate partition"))
    assert len(_fps("nessus", same)) == 1


def test_checkmarx_kics_results_without_a_line_use_their_similarity_id() -> None:
    def vuln(sim: str, line: int | None = None) -> dict[str, Any]:
        return {"id": sim, "similarityId": sim, "severity": "LOW", "fileName": "/docker/Dockerfile",
                "queryName": "Chown Flag Exists", "queryId": "q1", "state": "To verify",
                **({"line": line} if line is not None else {})}

    def report(*vulns: dict[str, Any]) -> bytes:
        return json.dumps({"reportId": "r", "reportHeader": {}, "scanResults": {
            "kics": {"results": [{"name": "Dockerfile", "vulnerabilities": list(vulns)}]}}}).encode()

    assert len(_fps("checkmarx_json", report(vuln("s1"), vuln("s2")))) == 2
    assert len(_fps("checkmarx_json", report(vuln("s1"), vuln("s1")))) == 1
    with_line = _parse("checkmarx_json", report(vuln("s1", 7), vuln("s2", 7)))
    assert [f.identity for f in with_line] == [[], []]
    assert len({f.fingerprint("checkmarx_json") for f in with_line}) == 1


def test_zap_script_rule_alerts_keep_their_names_apart() -> None:
    def alert(name: str, plugin: str) -> dict[str, Any]:
        return {"pluginid": plugin, "alertRef": plugin, "alert": name, "name": name, "riskcode": "2",
                "confidence": "2", "instances": [{"uri": "https://shop.example/a", "method": "GET", "param": "q"}]}

    def report(*alerts: dict[str, Any]) -> bytes:
        return json.dumps({"@version": "2.14.0", "site": [{"@name": "https://shop.example", "alerts": list(alerts)}]}
                          ).encode()

    assert len(_fps("zap_json", report(alert("Custom A", "50000"), alert("Custom B", "50000")))) == 2
    own = _parse("zap_json", report(alert("Name A", "10020"), alert("Name B", "10020")))
    assert [f.identity for f in own] == [[], []] and len({f.fingerprint("zap_json") for f in own}) == 1


def test_nuclei_named_extractors_without_a_matcher_are_findings_of_their_own() -> None:
    def line(extractor: str) -> str:
        return json.dumps({"template-id": "dns-saas", "info": {"name": "DNS SaaS", "severity": "info"},
                           "type": "dns", "host": "shop.example", "matched-at": "shop.example",
                           "extractor-name": extractor, "timestamp": "2024-01-01T00:00:00Z"})
    assert len(_fps("nuclei_json", "\n".join([line("cloudfront"), line("azure")]).encode())) == 2
    assert len(_fps("nuclei_json", "\n".join([line("azure"), line("azure")]).encode())) == 1


def _trivy_misconfig(resource: str | None, line: int | None = None) -> dict[str, Any]:
    cause: dict[str, Any] = {"Provider": "Kubernetes", "Service": "general"}
    if resource is not None:
        cause["Resource"] = resource
    if line is not None:
        cause.update(StartLine=line, EndLine=line + 3)
    return {"Type": "Kubernetes Security Check", "ID": "KSV001", "AVDID": "AVD-KSV-0001",
            "Title": "Process can elevate its own privileges", "Severity": "MEDIUM", "Status": "FAIL",
            "CauseMetadata": cause}


def _trivy(*misconfigs: dict[str, Any]) -> bytes:
    return json.dumps({"SchemaVersion": 2, "ArtifactName": "deploy", "ArtifactType": "filesystem", "Results": [
        {"Target": "k8s/app.yaml", "Class": "config", "Type": "kubernetes",
         "Misconfigurations": list(misconfigs)}]}).encode()


def test_trivy_misconfigurations_without_a_line_differing_only_in_resource_are_two_findings() -> None:
    two = _parse("trivy_json", _trivy(_trivy_misconfig("Deployment/web container app"),
                                      _trivy_misconfig("Deployment/web container sidecar")))
    assert [f.identity for f in two] == [["resource=Deployment/web container app"],
                                         ["resource=Deployment/web container sidecar"]]
    assert len({f.fingerprint("trivy_json") for f in two}) == 2
    same = _trivy(_trivy_misconfig("Deployment/web container app"), _trivy_misconfig("Deployment/web container app"))
    assert len(_fps("trivy_json", same)) == 1


def test_trivy_misconfigurations_with_a_line_or_without_a_resource_keep_their_fingerprints() -> None:
    with_line = _parse("trivy_json", _trivy(_trivy_misconfig("Deployment/web", 12), _trivy_misconfig("Other", 12)))
    assert [f.identity for f in with_line] == [[], []]
    assert len({f.fingerprint("trivy_json") for f in with_line}) == 1
    assert len(_fps("trivy_json", _trivy(_trivy_misconfig("Deployment/web", 12),
                                         _trivy_misconfig("Deployment/web", 30)))) == 2
    [bare] = _parse("trivy_json", _trivy(_trivy_misconfig(None)))
    assert bare.identity == []
    assert bare.fingerprint("trivy_json") == ParsedFinding(
        title=bare.title, rule_id="KSV001", repository="deploy", file_path="k8s/app.yaml").fingerprint("trivy_json")


# --- findings without identity parts keep their stored fingerprints ----------------------------------

def test_a_finding_without_identity_parts_keeps_its_fingerprint() -> None:
    # golden hashes computed with the code before ParsedFinding.identity was used by any format
    plain = ParsedFinding(title="t", rule_id="19506", host="10.0.0.1", port=443, protocol="tcp")
    assert plain.fingerprint("nessus") == "7e45f2f3552671a4cf5580f223fc44e430163e6fa7340db345f18a2deb3fc2b2"
    no_rule = ParsedFinding(title="XSS", cve_ids=["CVE-2024-1"], url="https://a.example/x", parameter="q")
    assert no_rule.fingerprint("zap_xml") == "caf225bd342f5afb912e7e42b9fb5b48ed85295d2e884269cea0c561428e2fe9"
    with_parts = copy.deepcopy(plain)
    with_parts.identity = ["x"]
    assert with_parts.fingerprint("nessus") != plain.fingerprint("nessus")


GOLDEN = {
    "nessus": (nessus_report([{"plugin": 19506, "host": "10.0.0.1"}]),
               "7e45f2f3552671a4cf5580f223fc44e430163e6fa7340db345f18a2deb3fc2b2"),
    "sarif": (json.dumps({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Tool", "rules": [{"id": "R1"}]}},
              "results": [{"ruleId": "R1", "message": {"text": "m"}, "locations": [
                  _loc("src/a.py", 7)]}]}]}).encode(),
              "6720b4f3e00861a51449ec1820786a08896a55305b63cc09305464d57b9fc548"),
    "semgrep_json": (json.dumps({"results": [{"check_id": "python.lang.eval", "path": "app.py", "start": {"line": 3},
                     "extra": {"message": "eval", "severity": "ERROR", "fingerprint": "requires login",
                               "metadata": {}}}], "errors": []}).encode(),
                     "fcfc76dc4087130b9cfc2e84a2fa1dac40c928bc224bbaee7a5ab58125a48e5d"),
    "sonarqube_json": (json.dumps({"issues": [{"key": "k1", "rule": "python:S5332", "component": "proj:src/a.py",
                       "project": "proj", "line": 4, "message": "Using http protocol is insecure.",
                       "severity": "CRITICAL"}], "paging": {}, "components": []}).encode(),
                       "1d3875125a02db9bfe07491eaad8c01cc50b911e02ab433755a14cb0ddf0c544"),
}


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_parsed_findings_without_identity_parts_keep_their_fingerprints(key: str) -> None:
    doc, golden = GOLDEN[key]
    [f] = _parse(key, doc)
    assert f.identity == [] and f.fingerprint(key) == golden


def test_burp_issue_of_an_own_type_keeps_its_fingerprint() -> None:
    doc = (b'<?xml version="1.0"?><issues burpVersion="2023.1"><issue><serialNumber>1</serialNumber>'
           b'<type>1049088</type><name>SQL injection</name><host ip="10.0.0.5">https://shop.example</host>'
           b'<path>/search</path><location>/search [q parameter]</location><severity>High</severity>'
           b'<confidence>Firm</confidence></issue></issues>')
    [f] = _parse("burp_xml", doc)
    assert f.fingerprint("burp_xml") == "ad4e1db0f4e9e672c0df5e652cf84fa464b2db246dc1e624f3448b3b2105eb5b"
