"""Issue 13, none falsely resolved: formats whose report names its target set ``ParsedFinding.asset`` (never a
part of the fingerprint), and reports that scanned a resource without finding anything on it say so with
``Report.cover``. Parse-level checks per format, then the real import on SQLite and PostgreSQL (``api``)."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import replace
from typing import Any

import orjson

from pmap.findings.coverage import covered_resource
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.registry import report_formats
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, findings, upload


def _parse(key: str, body: bytes) -> tuple[list[ParsedFinding], set[str]]:
    covered: set[str] = set()
    out = list(report_formats()[key].parse(io.BytesIO(body), Counter(), covered))
    for f in out:  # the asset never changes a fingerprint
        assert f.fingerprint(key) == replace(f, asset=None).fingerprint(key)
    return out, covered


def _assets(key: str, body: bytes) -> set[str | None]:
    return {f.asset for f in _parse(key, body)[0]}


# --- generated reports ----------------------------------------------------------------------------

def cyclonedx(component: dict[str, Any] | None, vulns: list[tuple[str, str]]) -> bytes:
    """A CycloneDX 1.5 JSON BOM of ``component`` (metadata) with ``(vulnerability id, package)`` entries."""
    packages = sorted({p for _, p in vulns})
    doc: dict[str, Any] = {
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "components": [{"bom-ref": f"pkg:npm/{p}@1.0.0", "type": "library", "name": p, "version": "1.0.0",
                        "purl": f"pkg:npm/{p}@1.0.0"} for p in packages],
        "vulnerabilities": [{"id": vid, "ratings": [{"severity": "high"}], "affects": [{"ref": f"pkg:npm/{p}@1.0.0"}]}
                            for vid, p in vulns],
    }
    if component is not None:
        doc["metadata"] = {"component": component}
    return orjson.dumps(doc)


def cyclonedx_xml(name: str, version: str) -> bytes:
    return (f'<?xml version="1.0"?><bom xmlns="http://cyclonedx.org/schema/bom/1.4" version="1">'
            f'<metadata><component type="application"><name>{name}</name><version>{version}</version></component>'
            f'</metadata><components><component type="library" bom-ref="lib"><name>lib</name><version>1</version>'
            f'</component></components><vulnerabilities><vulnerability><id>CVE-2024-1</id>'
            f'<ratings><rating><severity>high</severity></rating></ratings><affects><target><ref>lib</ref></target>'
            f'</affects></vulnerability></vulnerabilities></bom>').encode()


def sarif(runs: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "T", "rules": [{"id": "r1"}]}},
        "results": [{"ruleId": "r1", "level": "error", "message": {"text": "m"},
                     "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a.py"},
                                                         "region": {"startLine": 1}}}]}],
        **run} for run in runs]})


def nessus(hosts: dict[str, list[int]]) -> bytes:
    """A .nessus file: per host (name = ip), the plugin ids it reports (none: scanned, nothing found)."""
    out = ['<?xml version="1.0" ?>\n<NessusClientData_v2><Report name="t">']
    for host, plugins in hosts.items():
        out.append(f'<ReportHost name="{host}"><HostProperties><tag name="host-ip">{host}</tag></HostProperties>')
        out += [f'<ReportItem port="443" svc_name="www" protocol="tcp" severity="2" pluginID="{p}" '
                f'pluginName="Plugin {p}" pluginFamily="General"><description>d</description></ReportItem>'
                for p in plugins]
        out.append("</ReportHost>")
    out.append("</Report></NessusClientData_v2>\n")
    return "".join(out).encode()


# --- parse level: the asset each format names ---------------------------------------------------------

def test_cyclonedx_names_its_bom_subject() -> None:
    vulns = [("CVE-2024-1", "left-pad")]
    assert _assets("cyclonedx", cyclonedx({"bom-ref": "pkg:npm/app@2.0", "name": "app", "version": "2.0"},
                                          vulns)) == {"pkg:npm/app@2.0"}
    assert _assets("cyclonedx", cyclonedx({"name": "app", "version": "2.0"}, vulns)) == {"app@2.0"}
    assert _assets("cyclonedx", cyclonedx({"name": "app"}, vulns)) == {"app"}
    # a UUID bom-ref is drawn afresh per BOM by some generators: not a stable name of the subject
    uuid_ref = {"bom-ref": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79", "name": "app", "version": "2"}
    assert _assets("cyclonedx", cyclonedx(uuid_ref, vulns)) == {"app@2"}
    assert _assets("cyclonedx", cyclonedx(None, vulns)) == {None}
    assert _assets("cyclonedx", cyclonedx_xml("web", "3.1")) == {"web@3.1"}


def test_sarif_names_the_runs_repository_else_its_automation_id() -> None:
    provenance = {"versionControlProvenance": [{"repositoryUri": "https://github.com/acme/web"}],
                  "automationDetails": {"id": "nightly/web/"}}
    assert _assets("sarif", sarif([provenance])) == {"https://github.com/acme/web"}
    assert _assets("sarif", sarif([{"automationDetails": {"id": "nightly/web/"}}])) == {"nightly/web/"}
    assert _assets("sarif", sarif([{}])) == {None}
    findings_, _ = _parse("sarif", sarif([provenance]))
    assert findings_[0].repository is None  # the fingerprint stays the one earlier releases stored
    two = sarif([{"versionControlProvenance": [{"repositoryUri": "https://x/a"}]},
                 {"versionControlProvenance": [{"repositoryUri": "https://x/b"}]}])
    assert [f.asset for f in _parse("sarif", two)[0]] == ["https://x/a", "https://x/b"]


def test_checkmarx_names_its_project() -> None:
    xml = (b'<?xml version="1.0"?><CxXMLResults ProjectName="Webgoat" ScanStart="Sunday, January 1, 2023 1:00:00 PM">'
           b'<Query id="1" name="SQL_Injection" Severity="High" cweId="89"><Result FileName="a.java" Line="3" '
           b'NodeId="1" Status="New" Severity="High" state="0"><Path><PathNode><FileName>a.java</FileName>'
           b'<Line>3</Line></PathNode></Path></Result></Query></CxXMLResults>')
    assert _assets("checkmarx_xml", xml) == {"Webgoat"}
    doc = {"reportId": "x", "reportHeader": {"projectName": "DIVA"}, "scanResults": {"sast": {"languages": [
        {"queries": [{"queryName": "SQL_Injection", "severity": "HIGH", "vulnerabilities": [
            {"nodes": [{"fileName": "a.java", "line": 3}]}]}]}]}}}
    assert _assets("checkmarx_json", orjson.dumps(doc)) == {"DIVA"}


def test_dependency_check_names_its_project() -> None:
    xml = (b'<?xml version="1.0"?><analysis xmlns="https://jeremylong.github.io/DependencyCheck/dependency-check.2.0'
           b'.xsd"><projectInfo><name>Shop</name></projectInfo><dependencies><dependency><fileName>a.jar</fileName>'
           b'<vulnerabilities><vulnerability><name>CVE-2024-2</name><severity>HIGH</severity></vulnerability>'
           b'</vulnerabilities></dependency></dependencies></analysis>')
    assert _assets("dependency_check_xml", xml) == {"Shop"}


def test_osv_names_the_scanned_lockfile() -> None:
    doc = {"results": [{"source": {"path": "/src/app/package-lock.json", "type": "lockfile"}, "packages": [
        {"package": {"name": "lodash", "version": "4.17.0", "ecosystem": "npm"},
         "vulnerabilities": [{"id": "GHSA-aaaa-bbbb-cccc"}]}]}]}
    assert _assets("osv_json", orjson.dumps(doc)) == {"/src/app/package-lock.json"}


def test_veracode_static_flaws_name_the_application_dynamic_ones_their_site() -> None:
    xml = (b'<?xml version="1.0"?><detailedreport xmlns="https://www.veracode.com/schema/reports/export/1.0" '
           b'app_name="shop"><severity level="3"><category categoryname="SQL Injection"><cwe cweid="89">'
           b'<staticflaws><flaw issueid="1" severity="3" categoryname="SQL Injection" categoryid="19" cweid="89" '
           b'sourcefile="a.java" sourcefilepath="src/" line="3"/></staticflaws><dynamicflaws><flaw issueid="2" '
           b'severity="3" categoryname="SQL Injection" categoryid="19" cweid="89" url="https://shop.test/q"/>'
           b'</dynamicflaws></cwe></category></severity></detailedreport>')
    flaws, _ = _parse("veracode_xml", xml)
    assert [(f.asset, covered_resource(f)) for f in flaws] == [("shop", "shop"),
                                                               (None, "https://shop.test:443")]


def test_mobsf_names_the_app_on_every_finding() -> None:
    doc = {"app_name": "Shop", "package_name": "com.acme.shop", "file_name": "shop.apk", "md5": "0" * 32,
           "permissions": {"android.permission.CAMERA": {"status": "dangerous", "info": "camera"}},
           "firebase_urls": [{"url": "https://shop-1.firebaseio.com", "open": True}]}
    found, _ = _parse("mobsf_json", orjson.dumps(doc))
    assert len(found) == 2 and {covered_resource(f) for f in found} == {"com.acme.shop"}
    del doc["package_name"]
    assert _assets("mobsf_json", orjson.dumps(doc)) == {"shop.apk"}


def test_legacy_trivy_results_name_their_target() -> None:
    doc = [{"Target": "alpine:3.10 (alpine 3.10.2)", "Vulnerabilities": [
        {"VulnerabilityID": "CVE-2024-3", "PkgName": "musl", "InstalledVersion": "1.1", "Severity": "HIGH"}]},
        {"Target": "app/package-lock.json", "Vulnerabilities": None}]
    found, covered = _parse("trivy_json", orjson.dumps(doc))
    assert {f.asset for f in found} == {"alpine:3.10 (alpine 3.10.2)"}
    assert covered == {"alpine:3.10 (alpine 3.10.2)", "app/package-lock.json"}


# --- parse level: resources scanned without a finding --------------------------------------------------

def test_nessus_covers_a_host_without_items() -> None:
    found, covered = _parse("nessus", nessus({"10.0.0.1": [1], "10.0.0.2": []}))
    assert {covered_resource(f) for f in found} == {"10.0.0.1"} and covered == {"10.0.0.2"}
    ip_tag = b'<tag name="host-ip">10.0.0.3</tag>'
    named = nessus({"10.0.0.3": []}).replace(ip_tag, ip_tag + b'<tag name="host-fqdn">DB.Acme.Test</tag>')
    assert _parse("nessus", named)[1] == {"db.acme.test"}  # as its findings would name it


def test_nmap_covers_hosts_up_without_open_ports() -> None:
    xml = (b'<?xml version="1.0"?><nmaprun scanner="nmap" start="1700000000">'
           b'<host><status state="up"/><address addr="10.0.0.5" addrtype="ipv4"/><ports>'
           b'<port protocol="tcp" portid="22"><state state="closed"/></port></ports></host>'
           b'<host><status state="down"/><address addr="10.0.0.6" addrtype="ipv4"/></host>'
           b'<host><status state="up"/><address addr="10.0.0.7" addrtype="ipv4"/><hostnames>'
           b'<hostname name="Web.Test" type="user"/></hostnames><ports><port protocol="tcp" portid="80">'
           b'<state state="open"/></port></ports></host></nmaprun>')
    found, covered = _parse("nmap_xml", xml)
    assert {covered_resource(f) for f in found} == {"web.test"}
    assert covered == {"10.0.0.5", "web.test"}  # the down host was not scanned


def test_qualys_and_nexpose_cover_hosts_without_detections() -> None:
    qualys = (b'<?xml version="1.0"?><HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><HOST_LIST>'
              b'<HOST><ID>1</ID><IP>10.0.0.8</IP><DETECTION_LIST><DETECTION><QID>38170</QID><TYPE>Confirmed</TYPE>'
              b'<SEVERITY>3</SEVERITY></DETECTION></DETECTION_LIST></HOST>'
              b'<HOST><ID>2</ID><IP>10.0.0.9</IP><DNS>Clean.Test</DNS></HOST>'
              b'</HOST_LIST></RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>')
    found, covered = _parse("qualys_xml", qualys)
    assert {covered_resource(f) for f in found} == {"10.0.0.8"} and covered == {"clean.test"}
    nexpose = (b'<?xml version="1.0"?><NexposeReport version="2.0"><nodes>'
               b'<node address="10.0.1.1"><names><name>app.test</name></names><tests>'
               b'<test id="ssh-weak" status="vulnerable-exploited"/></tests></node>'
               b'<node address="10.0.1.2"><tests><test id="ssh-weak" status="not-vulnerable"/></tests></node>'
               b'</nodes><VulnerabilityDefinitions/></NexposeReport>')
    found, covered = _parse("nexpose_xml", nexpose)
    assert {covered_resource(f) for f in found} == {"app.test"} and covered == {"10.0.1.2"}


def test_sca_reports_cover_their_target_even_when_clean() -> None:
    grype = {"matches": [], "source": {"type": "image", "target": {"userInput": "acme/web:1"}},
             "descriptor": {"name": "grype"}}
    assert _parse("grype_json", orjson.dumps(grype)) == ([], {"acme/web:1"})
    trivy: dict[str, Any] = {"SchemaVersion": 2, "ArtifactName": "acme/web:1", "ArtifactType": "container_image",
                             "Results": [{"Target": "acme/web:1 (alpine 3.19)", "Class": "os-pkgs", "Type": "alpine"}]}
    assert _parse("trivy_json", orjson.dumps(trivy)) == ([], {"acme/web:1"})
    # a scan for licences (or secrets) only says nothing of the image's vulnerabilities
    trivy["Results"] = [{"Target": "OS Packages", "Class": "license", "Licenses": [{"Name": "MIT"}]}]
    assert _parse("trivy_json", orjson.dumps(trivy)) == ([], set())


# --- through the import, on SQLite and PostgreSQL ---------------------------------------------------

def _open(api: Api, admin: dict[str, str], iid: str) -> set[tuple[str | None, str]]:
    return {(f["asset"], f["rule_id"]) for f in findings(api, admin, integration_id=iid, status="open")}


def test_two_sboms_of_different_components_resolve_nothing_of_each_other(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin, vendor="cyclonedx")
    up = lambda body: upload(api, iid, body, admin, filename="bom.json").json()  # noqa: E731
    web = {"name": "web", "version": "1.0"}
    first = up(cyclonedx(web, [("CVE-2024-1", "left-pad"), ("CVE-2024-2", "lodash")]))
    assert (first["created"], first["covered"]) == (2, 1)
    other = up(cyclonedx({"name": "api", "version": "1.0"}, [("CVE-2024-3", "express")]))
    assert (other["created"], other["resolved"]) == (1, 0)  # another component: web's findings stay open
    assert _open(api, admin, iid) == {("web@1.0", "CVE-2024-1"), ("web@1.0", "CVE-2024-2"),
                                      ("api@1.0", "CVE-2024-3")}
    # a rescan of web without one vulnerability resolves exactly it
    again = up(cyclonedx(web, [("CVE-2024-1", "left-pad")]))
    assert (again["updated"], again["resolved"]) == (1, 1)
    assert _open(api, admin, iid) == {("web@1.0", "CVE-2024-1"), ("api@1.0", "CVE-2024-3")}
    assert [f["rule_id"] for f in findings(api, admin, integration_id=iid, status="resolved")] == ["CVE-2024-2"]


def test_a_host_scanned_clean_is_covered_a_host_not_scanned_is_not(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    upload(api, iid, nessus({"10.0.0.1": [1, 2], "10.0.0.2": [3], "10.0.0.3": [4]}), admin)
    # 10.0.0.1 rescanned with nothing found, 10.0.0.2 rescanned with its finding, 10.0.0.3 not in the report
    s = upload(api, iid, nessus({"10.0.0.1": [], "10.0.0.2": [3]}), admin).json()
    assert (s["updated"], s["resolved"], s["covered"]) == (1, 2, 2)
    assert _open(api, admin, iid) == {("10.0.0.2", "3"), ("10.0.0.3", "4")}
    # a report of clean hosts only covers them too (it is not a report that covers nothing)
    clean = upload(api, iid, nessus({"10.0.0.3": []}), admin).json()
    assert (clean["parsed"], clean["covered"], clean["resolved"], clean["warnings"]) == (0, 1, 1, [])
    assert _open(api, admin, iid) == {("10.0.0.2", "3")}


def test_openvas_covers_every_host_of_the_report() -> None:
    xml = (b'<?xml version="1.0"?><report id="r" format_id="a994b278"><report id="i"><gmp><version>22.4</version>'
           b'</gmp><results><result id="1"><name>Weak SSH</name><host>10.0.2.1<asset asset_id="a"/>'
           b'<hostname>SSH.Test</hostname></host><port>22/tcp</port><nvt oid="1.3.6.1.4.1.25623.1.0.1">'
           b'<name>Weak SSH</name></nvt><threat>Medium</threat><severity>5.0</severity></result></results>'
           b'<host><ip>10.0.2.1</ip><asset asset_id="a"/><detail><name>hostname</name><value>SSH.Test</value>'
           b'</detail></host><host><ip>10.0.2.2</ip><asset asset_id="b"/></host></report></report>')
    found, covered = _parse("openvas_xml", xml)
    assert {covered_resource(f) for f in found} == {"ssh.test"}
    assert covered == {"ssh.test", "10.0.2.2"}
