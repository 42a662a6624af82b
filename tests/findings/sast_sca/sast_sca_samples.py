"""One small, valid report per SAST/SCA format key: (file name, bytes), written by hand from each
vendor's documented shape. Tests check detection, parsing and the hostile variants of these."""

from __future__ import annotations

import json

V31 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


def _j(doc: object) -> bytes:
    return json.dumps(doc, indent=1).encode()


SARIF = {
    "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
    "version": "2.1.0",
    "runs": [{
        "tool": {"driver": {"name": "CodeQL", "rules": [{
            "id": "py/sql-injection", "shortDescription": {"text": "SQL injection"},
            "defaultConfiguration": {"level": "error"},
            "properties": {"security-severity": "8.8", "tags": ["security", "external/cwe/cwe-089"]},
        }]}},
        "results": [{
            "ruleId": "py/sql-injection", "ruleIndex": 0, "message": {"text": "Query built from {0}.", "arguments": []},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": "app/db.py"},
                                                "region": {"startLine": 42}}}],
            "partialFingerprints": {"primaryLocationLineHash": "abc:1"},
        }],
    }],
}

CHECKMARX_XML = b"""<?xml version="1.0" encoding="utf-8"?>
<CxXMLResults ScanStart="Sunday, February 25, 2018 11:35:52 AM" ProjectName="Demo">
  <Query id="594" cweId="89" name="SQL_Injection" group="Java_High_Risk" Severity="High">
    <Result FileName="src/A.java" Line="10" Severity="High" FalsePositive="False" state="0" Status="New">
      <Path SimilarityId="-11">
        <PathNode><FileName>src/A.java</FileName><Line>10</Line></PathNode>
        <PathNode><FileName>src/Dao.java</FileName><Line>77</Line></PathNode>
      </Path>
    </Result>
  </Query>
</CxXMLResults>
"""

VERACODE_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<detailedreport xmlns="https://www.veracode.com/schema/reports/export/1.0" app_name="demo">
  <severity level="4">
    <category categoryid="19" categoryname="SQL Injection">
      <cwe cweid="89"><staticflaws>
        <flaw severity="4" categoryname="SQL Injection" issueid="7" cweid="89" categoryid="19"
              sourcefilepath="com/demo/" sourcefile="Dao.java" line="55" remediation_status="Open"
              mitigation_status="none" date_first_occurrence="2020-06-01 10:02:01 UTC" description="d"/>
      </staticflaws></cwe>
    </category>
  </severity>
  <software_composition_analysis><vulnerable_components>
    <component component_id="c1" library="commons-text" version="1.9" file_name="commons-text-1.9.jar">
      <file_paths><file_path value="lib/commons-text-1.9.jar"/></file_paths>
      <vulnerabilities>
        <vulnerability cve_id="CVE-2022-42889" cvss_score="9.8" severity="5" cwe_id="CWE-94" mitigation="false"
                       first_found_date="2022-10-20 10:00:00 UTC" cve_summary="Text4Shell"/>
      </vulnerabilities>
    </component>
  </vulnerable_components></software_composition_analysis>
</detailedreport>
"""

DEPENDENCY_CHECK = b"""<?xml version="1.0"?>
<analysis xmlns="https://jeremylong.github.io/DependencyCheck/dependency-check.2.5.xsd">
  <projectInfo><name>demo</name></projectInfo>
  <dependencies>
    <dependency>
      <fileName>app.war: log4j-core-2.14.1.jar</fileName>
      <filePath>/build/app.war/log4j-core-2.14.1.jar</filePath>
      <packages><package confidence="HIGH"><id>pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1</id></package>
</packages>
      <vulnerabilities>
        <vulnerability source="NVD">
          <name>CVE-2021-44228</name>
          <severity>CRITICAL</severity>
          <cvssV3><baseScore>10.0</baseScore><attackVector>NETWORK</attackVector><attackComplexity>LOW</attackComplexity>
            <privilegesRequired>NONE</privilegesRequired><userInteraction>NONE</userInteraction><scope>CHANGED</scope>
            <confidentialityImpact>HIGH</confidentialityImpact><integrityImpact>HIGH</integrityImpact>
            <availabilityImpact>HIGH</availabilityImpact><baseSeverity>CRITICAL</baseSeverity></cvssV3>
          <cwes><cwe>CWE-502</cwe></cwes>
          <description>Log4Shell</description>
          <references><reference><source>MISC</source><url>https://logging.apache.org/log4j/2.x/security.html</url></reference></references>
        </vulnerability>
      </vulnerabilities>
    </dependency>
  </dependencies>
</analysis>
"""

CYCLONEDX_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<bom xmlns="http://cyclonedx.org/schema/bom/1.5" version="1">
  <components>
    <component type="library" bom-ref="pkg:npm/lodash@4.17.20"><name>lodash</name><version>4.17.20</version>
      <purl>pkg:npm/lodash@4.17.20</purl></component>
  </components>
  <vulnerabilities>
    <vulnerability bom-ref="v1">
      <id>CVE-2021-23337</id>
      <ratings><rating><score>7.2</score><severity>high</severity><method>CVSSv31</method>
        <vector>CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H</vector></rating></ratings>
      <cwes><cwe>94</cwe></cwes>
      <description>Command injection in template</description>
      <affects><target><ref>pkg:npm/lodash@4.17.20</ref></target></affects>
    </vulnerability>
  </vulnerabilities>
</bom>
"""

SONARQUBE_HTML = b"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="UTF-8"><title>SonarQube Vulnerability Report</title><style>td { padding: 5px }</style></head>
<body>
<div class=summup><h1>SonarQube Vulnerability Report</h1>
<dl><dt>Report Generated On</dt><dd>Fri Aug 02 2019</dd><dt>Project Name</dt><dd>shop</dd>
<dt>Application</dt><dd>shop-app</dd><dt>Release</dt><dd>1.0.0</dd></dl>
<h2>Summary of the Detected Vulnerabilities</h2>
<table><thead><tr><th></th><th>Severity</th><th>Number of Issues</th></tr></thead>
<tbody><tr><td>CRITICAL</td><td>1</td></tr></tbody></table></div>
<div class=detail><h2>Detail of the Detected Vulnerabilities</h2>
<table><thead><tr><th>Rule</th><th>Severity</th><th>Component</th><th>Line</th><th>Description</th><th>Message</th>
<th style="display:none;">Key</th></tr></thead><tbody>
<tr><td><a href="https://sonarcloud.io/coding_rules#rule_key=python:S3649">python:S3649</a></td><td>CRITICAL</td>
<td class="component">src/db.py</td><td>8</td><td>Database queries should not be vulnerable to injection attacks</td>
<td>Fix this SQL query</td><td style="display:none;">AX1</td></tr>
</tbody></table>
<h3>Known Security Rules</h3>
<table><thead><tr><th>Rule</th><th>Description</th></tr></thead><tbody>
<tr><td><a href="https://sonarcloud.io/coding_rules#rule_key=python:S3649">python:S3649</a></td>
<td><details><p>User-provided data   reaches a query.</p><table><tr><td>input</td><td>query</td></tr></table>
<h2>See</h2><ul><li><a href="https://cwe.mitre.org/data/definitions/89.html">MITRE, CWE-89</a> - SQL Injection</li></ul>
</details></td></tr>
</tbody></table></div>
<script>var total = 1;</script>
</body>
</html>
"""

SAMPLES: dict[str, tuple[str, bytes]] = {
    "sarif": ("codeql.sarif", _j(SARIF)),
    "semgrep_json": ("semgrep.json", _j({"version": "1.50.0", "errors": [], "paths": {"scanned": ["a.py"]},
                                         "results": [{
        "check_id": "python.lang.security.audit.formatted-sql-query", "path": "app/a.py",
        "start": {"line": 12, "col": 1}, "end": {"line": 12, "col": 40},
        "extra": {"message": "Detected SQL built by formatting", "severity": "ERROR", "is_ignored": False,
                  "metadata": {"cwe": ["CWE-89: SQL Injection"], "references": ["https://owasp.org/"]}}}]})),
    "sonarqube_json": ("issues.json", _j({"total": 1, "p": 1, "ps": 100, "paging": {"pageIndex": 1, "pageSize": 100,
                                                                                    "total": 1},
        "effortTotal": 5, "issues": [{"key": "AX1", "rule": "python:S3649", "severity": "CRITICAL",
        "component": "shop:src/db.py", "project": "shop", "line": 8, "message": "Fix this SQL query",
        "type": "VULNERABILITY", "status": "OPEN", "creationDate": "2023-10-16T15:05:35+0000"}], "components": [],
        "facets": []})),
    "sonarqube_html": ("sonar-report.html", SONARQUBE_HTML),
    "checkmarx_xml": ("cx.xml", CHECKMARX_XML),
    "checkmarx_json": ("cx.json", _j({"reportId": "r", "reportHeader": {"createdDate": "2022-02-25T21:56:10Z"},
        "executiveSummary": {}, "scanSummary": {}, "scanResults": {"sast": {"languages": [{"languageName": "Java",
        "queries": [{"queryName": "SQL_Injection", "queryId": "", "vulnerabilities": [{"id": "v1", "severity": "HIGH",
        "state": "To verify", "cweId": 89, "nodes": [{"fileName": "/A.java", "line": 3}, {"fileName": "/Dao.java",
                                                                                          "line": 9}]}]}]}]}}})),
    "bandit_json": ("bandit.json", _j({"errors": [], "generated_at": "2021-03-30T18:23:12Z",
        "metrics": {"_totals": {"SEVERITY.HIGH": 1.0, "CONFIDENCE.HIGH": 1.0}}, "results": [{
        "filename": "app/run.py", "issue_confidence": "HIGH", "issue_severity": "HIGH",
        "issue_text": "Use of exec detected.",
        "line_number": 4, "test_id": "B102", "test_name": "exec_used", "issue_cwe": {"id": 78, "link": "x"},
        "more_info": "https://bandit.readthedocs.io/en/latest/plugins/b102_exec_used.html"}]})),
    "gitleaks_json": ("gitleaks.json", _j([{"Description": "AWS Access Key", "StartLine": 2, "EndLine": 2,
        "Match": "aws_key = AKIAZZZZSECRETVALUE99", "Secret": "AKIAZZZZSECRETVALUE99", "File": "infra/main.tf",
        "Commit": "74d53286c5", "Author": "A", "Email": "a@example.invalid", "Date": "2021-10-14T17:05:15Z",
        "Tags": [], "RuleID": "aws-access-token"}])),
    "gitlab_security_report": ("gl-sast-report.json", _j({"version": "15.0.4", "vulnerabilities": [{
        "id": "u1", "category": "sast", "name": "SQL injection", "severity": "High",
        "location": {"file": "app/db.py", "start_line": 4},
        "identifiers": [{"type": "bandit_test_id", "name": "Bandit B608", "value": "B608"},
                        {"type": "cwe", "name": "CWE-89", "value": "89", "url": "https://cwe.mitre.org/data/definitions/89.html"}]}],
        "scan": {"type": "sast", "status": "success", "scanner": {"id": "bandit", "name": "Bandit"}}})),
    "veracode_xml": ("detailed.xml", VERACODE_XML),
    "veracode_json": ("findings.json", _j({"_embedded": {"findings": [{"issue_id": 5, "scan_type": "STATIC",
        "description": "d", "finding_status": {"status": "OPEN", "first_found_date": "2021-08-27T07:33:40.989Z"},
        "finding_details": {"severity": 4, "cwe": {"id": 89, "name": "SQL Injection"}, "file_path": "com/demo/Dao.java",
        "file_line_number": 55, "finding_category": {"id": 19, "name": "SQL Injection"}}}]}, "page": {}})),
    "trivy_json": ("trivy.json", _j({"SchemaVersion": 2, "ArtifactName": "shop:1.0", "ArtifactType": "container_image",
        "Results": [{"Target": "shop:1.0 (debian 11.6)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": [{
        "VulnerabilityID": "CVE-2023-0286", "PkgName": "openssl", "InstalledVersion": "1.1.1n-0+deb11u3",
        "FixedVersion": "1.1.1n-0+deb11u4", "Status": "fixed", "SeveritySource": "nvd", "Severity": "HIGH",
        "CweIDs": ["CWE-843"], "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:H",
                                                "V3Score": 7.4}},
        "References": ["https://github.com/advisories/GHSA-x4qr-2fvf-3mr5"]}]}]})),
    "snyk_json": ("snyk.json", _j({"vulnerabilities": [{"id": "SNYK-JS-LODASH-567746", "title": "Prototype Pollution",
        "packageName": "lodash", "name": "lodash", "version": "4.17.15", "severity": "high", "cvssScore": 7.3,
        "CVSSv3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:L", "identifiers": {"CVE": ["CVE-2020-8203"],
                                                                                  "CWE": ["CWE-400"]},
        "semver": {"vulnerable": ["<4.17.19"]}, "from": ["shop@1.0.0", "lodash@4.17.15"], "fixedIn": ["4.17.19"],
        "upgradePath": [False, "lodash@4.17.19"]}], "ok": False, "dependencyCount": 1, "packageManager": "npm",
        "projectName": "shop", "displayTargetFile": "package-lock.json"})),
    "grype_json": ("grype.json", _j({"matches": [{"vulnerability": {"id": "GHSA-jfh8-c2jp-5v3q", "severity": "Critical",
        "urls": ["https://github.com/advisories/GHSA-jfh8-c2jp-5v3q"], "fix": {"versions": ["2.15.0"],
                                                                               "state": "fixed"},
        "cvss": [{"version": "3.1", "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H",
                  "metrics": {"baseScore": 10.0}}]},
        "relatedVulnerabilities": [{"id": "CVE-2021-44228"}],
        "artifact": {"name": "log4j-core", "version": "2.14.1", "type": "java-archive",
                     "locations": [{"path": "/app/lib/log4j-core-2.14.1.jar"}]}}],
        "source": {"type": "image", "target": {"userInput": "shop:1.0"}}, "descriptor": {"name": "grype",
                                                                                         "version": "0.74.0"}})),
    "dependency_check_xml": ("dependency-check-report.xml", DEPENDENCY_CHECK),
    "cyclonedx": ("bom.json", _j({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "components": [{"bom-ref": "c1", "type": "library", "name": "log4j-core", "version": "2.14.1",
                        "purl": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"}],
        "vulnerabilities": [{"id": "CVE-2021-44228", "ratings": [{"severity": "critical", "method": "CVSSv31",
                                                                  "score": 10.0,
        "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}], "cwes": [502], "affects": [{"ref": "c1"}],
        "analysis": {"state": "exploitable"}}]})),
    "osv_json": ("osv.json", _j({"results": [{"source": {"path": "/src/poetry.lock", "type": "lockfile"}, "packages": [{
        "package": {"name": "django", "version": "3.2.4", "ecosystem": "PyPI"},
        "vulnerabilities": [{"id": "GHSA-rxjp-mfm9-w4wr", "aliases": ["CVE-2021-33203"], "summary": "Path traversal",
        "database_specific": {"severity": "MODERATE", "cwe_ids": ["CWE-22"]},
        "affected": [{"package": {"name": "django"}, "ranges": [{"events": [{"introduced": "0"},
                                                                            {"fixed": "3.2.5"}]}]}]}],
        "groups": [{"ids": ["GHSA-rxjp-mfm9-w4wr"], "max_severity": "4.9"}]}]}]})),
    "npm_audit_json": ("npm-audit.json", _j({"auditReportVersion": 2, "vulnerabilities": {"minimist": {
        "name": "minimist", "severity": "critical", "isDirect": False,
        "via": [{"source": 1097677, "name": "minimist", "dependency": "minimist",
        "title": "Prototype Pollution in minimist", "url": "https://github.com/advisories/GHSA-xvch-5gv4-984h",
        "severity": "critical", "cwe": ["CWE-1321"], "cvss": {"score": 9.8, "vectorString": V31}, "range": "<0.2.4"}],
        "effects": [], "range": "<0.2.4", "nodes": ["node_modules/minimist"], "fixAvailable": True}},
        "metadata": {"vulnerabilities": {"critical": 1, "total": 1}}})),
    "pip_audit_json": ("pip-audit.json", _j({"dependencies": [{"name": "django", "version": "3.2.9", "vulns": [{
        "id": "PYSEC-2021-439", "fix_versions": ["2.2.25", "3.2.10"], "aliases": ["CVE-2021-44420"],
        "description": "URL path manipulation"}]}, {"name": "six", "version": "1.16.0", "vulns": []}], "fixes": []})),
    "jfrog_xray_json": ("xray.json", _j({"total_rows": 1, "rows": [{"cves": [{"cve": "CVE-2020-28493",
        "cvss_v3_score": 5.3, "cvss_v3_vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"}],
        "cvss3_max_score": 5.3,
        "severity": "Medium", "vulnerable_component": "pypi://Jinja2:2.11.2", "impacted_artifact": "build://shop:7",
        "path": "pypi-remote/Jinja2-2.11.2.whl", "fixed_versions": ["2.11.3"], "issue_id": "XRAY-139239",
        "package_type": "pypi", "summary": "ReDoS in urlize", "artifact_scan_time": "2021-01-15T15:39:25+11:00"}]})),
    "dependency_track_fpf": ("findings.fpf.json", _j({"version": "1.2", "meta": {"application": "Dependency-Track",
        "version": "4.10.0"}, "project": {"name": "shop", "version": "1.0"}, "findings": [{
        "component": {"name": "timespan", "version": "2.3.0", "purl": "pkg:npm/timespan@2.3.0"},
        "vulnerability": {"vulnId": "GHSA-f523-2f5j-gfcg", "source": "GITHUB", "severity": "HIGH",
        "cvssV3BaseScore": 7.5, "cvssV3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H",
        "aliases": [{"cveId": "CVE-2017-16115", "ghsaId": "GHSA-f523-2f5j-gfcg"}], "cweId": 400},
        "analysis": {"state": "FALSE_POSITIVE", "isSuppressed": False}, "matrix": "p:c:v"}]})),
    "github_vulnerability_json": ("alerts.json", _j({"data": {"repository": {"name": "shop",
                                                                             "vulnerabilityAlerts": {"nodes": [{
        "id": "RVA_1", "createdAt": "2021-09-20T20:33:13Z", "state": "OPEN", "vulnerableManifestPath": "pom.xml",
        "securityVulnerability": {"severity": "CRITICAL", "package": {"name": "org.apache.shiro:shiro-core",
                                                                      "ecosystem": "MAVEN"},
        "advisory": {"summary": "Apache Shiro authentication bypass", "description": "d",
        "identifiers": [{"type": "GHSA", "value": "GHSA-f6jp-j6w3-w9hm"}, {"type": "CVE", "value": "CVE-2021-41303"}],
        "cvss": {"score": 9.8, "vectorString": V31}, "cwes": {"nodes": [{"cweId": "CWE-287"}]}}}}]}}}})),
}

# second samples for keys that read two syntaxes
EXTRA_SAMPLES: dict[str, tuple[str, bytes]] = {"cyclonedx": ("bom.xml", CYCLONEDX_XML)}

XML_KEYS = ("checkmarx_xml", "veracode_xml", "dependency_check_xml", "cyclonedx")
