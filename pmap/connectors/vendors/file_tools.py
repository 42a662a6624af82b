"""File-only tools: scanners PMAP has no API connector for; their reports are imported.

Each is a vendor type without an implementation (no connection settings, no credentials, no
operations), listing the report formats an integration of that type accepts at
``POST /api/v1/integrations/{id}/imports``.
"""

from __future__ import annotations

from pmap.connectors.base import Category, ConnectorType, FileOnlySettings, NoCredentials


def _file_tool(vendor: str, name: str, category: Category, formats: tuple[str, ...], docs_url: str,
               notes: str | None = None) -> ConnectorType:
    return ConnectorType(vendor=vendor, display_name=name, category=category, connection_model=FileOnlySettings,
                         credentials_model=NoCredentials, report_formats=formats, docs_url=docs_url,
                         notes=notes or "File import only: upload the tool's report.")


CONNECTOR_TYPES = (
    _file_tool("nmap", "Nmap", Category.NETWORK_DISCOVERY, ("nmap_xml",), "https://nmap.org/book/output-formats-xml-output.html",
               "File import only: upload `nmap -oX` output."),
    _file_tool("masscan", "masscan", Category.NETWORK_DISCOVERY, ("masscan",), "https://github.com/robertdavidgraham/masscan",
               "File import only: XML (-oX), JSON (-oJ) or list (-oL) output."),
    _file_tool("greenbone", "Greenbone / OpenVAS", Category.VM, ("openvas_xml", "openvas_csv"), "https://docs.greenbone.net/",
               "File import only: XML or CSV report export."),
    _file_tool("nuclei", "Nuclei", Category.DAST, ("nuclei_json",), "https://docs.projectdiscovery.io/tools/nuclei/running",
               "File import only: `nuclei -json-export` (array) or `-jsonl` output."),
    _file_tool("trivy", "Trivy", Category.SCA, ("trivy_json",), "https://aquasecurity.github.io/trivy/",
               "File import only: `trivy ... --format json` output."),
    _file_tool("grype", "Anchore Grype", Category.SCA, ("grype_json",), "https://github.com/anchore/grype",
               "File import only: `grype -o json` output."),
    _file_tool("osv_scanner", "OSV-Scanner", Category.SCA, ("osv_json",), "https://google.github.io/osv-scanner/",
               "File import only: `osv-scanner --format json` output."),
    _file_tool("npm_audit", "npm audit", Category.SCA, ("npm_audit_json",), "https://docs.npmjs.com/cli/commands/npm-audit",
               "File import only: `npm audit --json` output (npm 7+)."),
    _file_tool("pip_audit", "pip-audit", Category.SCA, ("pip_audit_json",), "https://github.com/pypa/pip-audit",
               "File import only: `pip-audit -f json` output."),
    _file_tool("dependency_check", "OWASP Dependency-Check", Category.SCA, ("dependency_check_xml",),
               "https://jeremylong.github.io/DependencyCheck/", "File import only: the XML report."),
    _file_tool("cyclonedx", "CycloneDX SBOM (any tool)", Category.SCA, ("cyclonedx",), "https://cyclonedx.org/specification/overview/",
               "File import only: a CycloneDX JSON or XML document with vulnerabilities."),
    _file_tool("sarif", "SARIF (any tool)", Category.SAST, ("sarif",), "https://docs.oasis-open.org/sarif/sarif/v2.1.0/",
               "File import only: a SARIF 2.1 log, whatever tool wrote it."),
    _file_tool("bandit", "Bandit", Category.SAST, ("bandit_json",), "https://bandit.readthedocs.io/",
               "File import only: `bandit -f json` output."),
    _file_tool("gitleaks", "Gitleaks", Category.SAST, ("gitleaks_json",), "https://github.com/gitleaks/gitleaks",
               "File import only: `gitleaks --report-format json` output."),
)
