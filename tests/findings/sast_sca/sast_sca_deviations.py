"""Where PMAP's SAST/SCA readers differ from DefectDojo's tests on purpose (see the corpus test).

PMAP counts distinct fingerprints (rule + resource: file/line, package/version, host/url, ...);
DefectDojo counts what each of its parsers returns, after parser-specific merging.
"""

from __future__ import annotations

_SNYK_PATHS = ("Snyk repeats a vulnerability once per dependency path; PMAP locates it at the manifest, "
               "one finding per package")
_CX_SINK = ("PMAP identifies a Checkmarx result by query + sink file + sink line: flows from different sources "
            "into one sink are one finding")
_VC_CLOSED = "DefectDojo drops CLOSED findings; PMAP keeps them with status 'fixed' so an import can close them"
_SCA_TITLE = "PMAP titles dependency findings '<id> in <package> <version>' for every SCA format"

# file -> (PMAP's count of distinct fingerprints, why it differs from DefectDojo's count)
DEVIATIONS: dict[str, tuple[int, str]] = {
    "sarif/bash-report.sarif": (
        12, "the report lists 12 issues 2-3 times each, with identical rule, file, line and fingerprint"),
    "semgrep/sca-deployments-vulns.json": (
        22, "the same advisory/lock-file line in different repositories is a different resource in PMAP; "
            "DefectDojo ignores the repository"),
    "sonarqube/findings_over_api.zip": (
        5, "the two pages repeat the same Dependency-Check issue (rule, project, package, CVE) under two keys"),
    "sonarqube/sonar-4-findings-3-to-aggregate.html": (
        4, "one finding per issue, as DefectDojo's 'detailed' mode (4) and PMAP's JSON reader; DefectDojo's default "
           "mode merges the three S2068 issues of SolutionConstants.java (lines 12-14) into one"),
    "checkmarx/multiple_findings.json": (8, _CX_SINK),
    "checkmarx/multiple_findings.xml": (2, _CX_SINK + " (matches DefectDojo's default, aggregated mode)"),
    "checkmarx/multiple_findings_different_sourceFilename_same_sinkFilename.xml": (1, _CX_SINK),
    "checkmarx/multiple_findings_same_query_id.xml": (
        11, "DefectDojo's default mode merges a query's results per file; PMAP keeps each sink line"),
    "checkmarx/sample_report.json": (
        733, _CX_SINK + " (KICS results without a line are told apart by their similarityId: all 31 are kept)"),
    "bandit/dd2.json": (164, "two B608 results on the same line of migrate_surveys.py are one issue"),
    "gitlab_sast/gl-sast-report-many-vuln_v14.json": (
        467, "DefectDojo keeps one finding per legacy 'cve' key (content hash); PMAP one per rule and location"),
    "gitlab_sast/gl-sast-report-many-vuln_v15.json": (
        467, "DefectDojo keeps one finding per legacy 'cve' key (content hash); PMAP one per rule and location"),
    "veracode/dynamic_embedded_format.json": (5, _VC_CLOSED),
    "veracode/dynamic_findings_list_format.json": (5, _VC_CLOSED),
    "veracode/sca_embedded_format.json": (10, _VC_CLOSED),
    "veracode/sca_findings_list_format.json": (10, _VC_CLOSED),
    "veracode/static_embedded_format.json": (4, _VC_CLOSED),
    "veracode/veracode_scan.xml": (6, "flaws 18 and 20 are the same CWE on the same line of utility.jsp"),
    "veracode/veracode_scan_changed_severity.xml": (6, "flaws 18 and 20 are the same CWE on the same line"),
    "snyk/all_containers_target_output.json": (17, _SNYK_PATHS),
    "snyk/all_projects_issue4277.json": (50, _SNYK_PATHS),
    "snyk/single_project_upgrade_libs.json": (52, _SNYK_PATHS),
    "snyk/snykcontainer_issue_9270.json": (13, _SNYK_PATHS),
    "snyk/snykcontainer_issue_epss.json": (
        13, "PMAP also reads the image's applications[] projects (12 npm findings); DefectDojo only the OS one"),
    "anchore_grype/same_cve_different_paths.json": (
        2, "a package found at two paths is two findings (DefectDojo's 'detailed' mode; its default merges)"),
    "github_vulnerability/github_search2.json": (
        1, "the two alerts name the same advisory and package and no manifest: nothing tells them apart"),
    "npm_audit_7_plus/one_vuln.json": (
        2, "one finding per advisory (GHSA) of the package; DefectDojo merges a package's advisories"),
}

_TITLES = "PMAP titles differ by design"
# (file, DefectDojo field) -> why PMAP's value differs by design
FIELD_DEVIATIONS: dict[tuple[str, str], str] = {
    ("bandit/dd.json", "vuln_id_from_tool"): "rule_id is Bandit's test id (B303); the test name is in extra",
    ("bandit/dd2.json", "vuln_id_from_tool"): "rule_id is Bandit's test id; the test name is in extra",
    ("bandit/one_vuln.json", "vuln_id_from_tool"): "rule_id is Bandit's test id; the test name is in extra",
    ("checkmarx/multiple_findings.xml", "title"): "the query name, without DefectDojo's '(file)' suffix",
    ("checkmarx/multiple_findings_same_query_id.xml", "title"): "the query name, without the '(file)' suffix",
    ("checkmarx/sample_report.json", "title"): _SCA_TITLE + "; KICS results are titled by query name",
    ("cyclonedx/jake2.json", "cvssv3"): "rating method CVSSv3 is CVSS 3.0 in CycloneDX; DefectDojo writes 3.1",
    ("cyclonedx/jake2.json", "title"): _SCA_TITLE,
    ("cyclonedx/log4j.json", "title"): _SCA_TITLE,
    ("cyclonedx/log4j.xml", "title"): _SCA_TITLE,
    ("cyclonedx/spec1.xml", "cvssv3"): "rating method CVSSv3 is CVSS 3.0 in CycloneDX; DefectDojo writes 3.1",
    ("dependency_check/multiple_vulnerabilities_has_multiple_findings.xml", "component_name"):
        "no package URL or identifier: DefectDojo guesses the name from the file name, PMAP leaves it empty",
    ("dependency_check/multiple_vulnerabilities_has_multiple_findings.xml", "component_version"):
        "no package URL or identifier: DefectDojo guesses the version from the file name",
    ("dependency_check/multiple_vulnerabilities_has_multiple_findings.xml", "cvssv3"):
        "the report states the vector (CVSS:3.0/...); DefectDojo rebuilds it as 3.1",
    ("dependency_check/multiple_vulnerabilities_has_multiple_findings.xml", "title"): _SCA_TITLE,
    ("dependency_check/single_vuln.xml", "title"): _SCA_TITLE,
    ("dependency_track/one_finding.json", "cvssv4"): "one CVSS per finding: v3 when given; the v4 vector is in extra",
    ("github_vulnerability/issue_9582.json", "title"): "code scanning alerts are titled by rule description",
    ("gitlab_sast/gl-sast-report_issue4344_v14.json", "title"):
        "no severity prefix in the title: the missing severity maps to unknown",
    ("gitleaks/data_many.json", "title"): _TITLES + ": 'Hard-coded secret (<rule>) in <file>'",
    ("gitleaks/gitleaks8_many.json", "title"): _TITLES + ": 'Hard-coded secret (<rule>) in <file>'",
    ("jfrog_xray_unified/issue_13628.json", "title"): _SCA_TITLE,
    ("jfrog_xray_unified/one_vuln.json", "title"): _SCA_TITLE,
    ("jfrog_xray_unified/one_vuln.json", "unique_id_from_tool"): "Xray's issue id is the rule_id",
    ("npm_audit_7_plus/one_vuln.json", "severity"): "each advisory keeps its own severity (moderate here)",
    ("osv_scanner/many_findings.json", "title"): _SCA_TITLE,
    ("pip_audit/many_vulns.json", "cwe"): "DefectDojo stamps CWE-1395 on every finding; pip-audit gives none",
    ("pip_audit/many_vulns.json", "severity"): "pip-audit gives no severity: unknown, not an invented medium",
    ("pip_audit/many_vulns.json", "title"): _SCA_TITLE,
    ("pip_audit/many_vulns_new.json", "cwe"): "DefectDojo stamps CWE-1395 on every finding; pip-audit gives none",
    ("pip_audit/many_vulns_new.json", "severity"): "pip-audit gives no severity: unknown, not an invented medium",
    ("pip_audit/many_vulns_new.json", "title"): _SCA_TITLE,
    ("sarif/cxf-3.4.6.sarif",
     "cvssv3_score"): "security-severity is not a CVSS score: kept in extra, used for severity",
    ("snyk/single_project_one_vuln.json", "file_path"): "the manifest; the dependency path is in extra",
    ("snyk/single_project_one_vuln.json", "title"): _SCA_TITLE + " (+ Snyk's issue title)",
    ("snyk/single_project_one_vuln_with_ampersands.json", "file_path"): "the manifest; the path is in extra",
    ("snyk/snykcontainer_issue_epss.json", "title"): _SCA_TITLE + " (+ Snyk's issue title)",
    ("sonarqube/findings_over_api.zip",
     "file_path"): "a project-level issue has no file: the project is the repository",
    ("sonarqube/findings_over_api.zip", "title"): "the rule name or issue message, not DefectDojo's 'rule_key' join",
    ("trivy/all_statuses.json", "title"): _SCA_TITLE,
    ("trivy/misconfigurations_and_secrets.json", "title"): _TITLES + ": 'Hard-coded secret (<rule>) in <target>'",
    ("veracode/many_findings.xml",
     "line"): "DefectDojo adds functionrelativelocation (a relative position) to the line",
    ("veracode/many_findings.xml", "title"): _SCA_TITLE,
    ("veracode/many_findings.xml",
     "unique_id_from_tool"): "Veracode's issue id as written; DefectDojo prefixes the app",
    ("veracode/many_findings_different_hash_code_different_unique_id.xml", "line"):
        "DefectDojo adds functionrelativelocation (a relative position) to the line",
    ("veracode/many_findings_different_hash_code_different_unique_id.xml", "title"): _SCA_TITLE,
    ("veracode/many_findings_different_hash_code_different_unique_id.xml", "unique_id_from_tool"):
        "Veracode's issue id as written; DefectDojo prefixes the app",
    ("veracode/mitigated_finding.xml", "unique_id_from_tool"): "Veracode's issue id as written",
    ("veracode/mitigated_fixed_finding.xml", "unique_id_from_tool"): "Veracode's issue id as written",
    ("veracode/veracode_scan.xml", "line"): "DefectDojo adds functionrelativelocation to the line",
    **{(f"veracode/{name}", field): _VC_CLOSED + " (positions shift); " + _SCA_TITLE
       for name in ("sca_embedded_format.json", "sca_findings_list_format.json")
       for field in ("component_name", "component_version", "cwe", "title", "vulnerability_ids")},
}

# files no detector can recognise -> why
DETECT_DEVIATIONS: dict[str, str] = {
    "gitleaks/no_findings.json": "the file is the JSON literal null: nothing in it names Gitleaks",
    "trivy/legacy_no_vuln.json": "the file is the JSON literal null: nothing in it names Trivy",
    "sonarqube/empty_zip.zip": "a ZIP holding only an empty folder: no JSON page to recognise",
}

# files of our folders PMAP has no reader for -> why
UNSUPPORTED: dict[str, str] = {}
