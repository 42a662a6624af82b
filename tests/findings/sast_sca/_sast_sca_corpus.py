"""Helpers of the SAST/SCA corpus test: locating the corpus, mapping DefectDojo records to PMAP
format keys, and reading a PMAP finding as the DefectDojo field an assert names."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmap.findings.formats.base import ParsedFinding, ReportFormat

# DefectDojo corpus folder -> PMAP key; formats with several readers choose by file extension
SIMPLE = {
    "sarif": "sarif",
    "semgrep": "semgrep_json",
    "bandit": "bandit_json",
    "gitleaks": "gitleaks_json",
    "gitlab_sast": "gitlab_security_report",
    "trivy": "trivy_json",
    "snyk": "snyk_json",
    "dependency_check": "dependency_check_xml",
    "anchore_grype": "grype_json",
    "github_vulnerability": "github_vulnerability_json",
    "cyclonedx": "cyclonedx",
    "osv_scanner": "osv_json",
    "npm_audit_7_plus": "npm_audit_json",
    "pip_audit": "pip_audit_json",
    "jfrog_xray_unified": "jfrog_xray_json",
    "dependency_track": "dependency_track_fpf",
}
BY_SYNTAX = {
    "checkmarx": {"xml": "checkmarx_xml", "json": "checkmarx_json"},
    "veracode": {"xml": "veracode_xml", "json": "veracode_json"},
    "sonarqube": {"json": "sonarqube_json", "zip": "sonarqube_json", "html": "sonarqube_html"},
}
MY_FOLDERS = set(SIMPLE) | set(BY_SYNTAX)


def corpus_dir() -> Path:
    """``$PMAP_CORPUS_DIR``, else ``shared/corpus`` beside the project checkout."""
    env = os.environ.get("PMAP_CORPUS_DIR")
    if env:
        return Path(env)
    return (Path(__file__).resolve().parents[3] / "../shared/corpus").resolve()


@dataclass(frozen=True)
class Record:
    """One line of expectations.jsonl."""

    raw: dict[str, Any]

    @property
    def file(self) -> str | None:
        return self.raw.get("file")

    @property
    def path(self) -> str:
        """The corpus file of a record that names one (every record these tests parse)."""
        file = self.raw.get("file")
        assert isinstance(file, str), self.raw
        return file

    @property
    def folder(self) -> str:
        return self.raw["format"]

    @property
    def id(self) -> str:
        return f"{self.file}::{self.raw['test'].rsplit('::', 1)[-1]}"

    def key(self) -> str | None:
        """The PMAP key this record maps to; None when PMAP has no reader for it."""
        if self.folder in SIMPLE:
            return SIMPLE[self.folder]
        if self.folder in BY_SYNTAX:
            syntax = (self.raw.get("parser_args") or {}).get("input_syntax") or Path(self.file or "").suffix[1:]
            return BY_SYNTAX[self.folder].get(syntax)
        return None


def load_records(root: Path) -> list[Record]:
    """Every record of the corpus."""
    with (root / "expectations.jsonl").open(encoding="utf-8") as fh:
        return [Record(json.loads(line)) for line in fh if line.strip()]


_UNIQUE_KEYS = ("fingerprint", "id", "key", "alert_id", "issue_id", "matrix", "similarity_id")


def dd_value(finding: ParsedFinding, field: str, fmt: ReportFormat) -> Any:
    """The PMAP counterpart of a DefectDojo field, or ``NotImplemented`` when PMAP has none."""
    f = finding
    if field == "severity":
        sev = fmt.map_severity(f).severity.value
        return "Info" if sev == "info" else sev.capitalize()
    simple = {
        "title": f.title, "file_path": f.file_path, "line": f.line, "component_name": f.package_name,
        "component_version": f.package_version, "vuln_id_from_tool": f.rule_id, "fix_version": f.fixed_version,
        "locations[0].host": f.host, "locations[0].port": f.port, "locations[0].protocol": f.protocol,
    }
    if field in simple:
        return simple[field]
    if field in ("cvssv3", "cvssv3_score"):
        if f.cvss_version and not f.cvss_version.startswith("3"):
            return None
        return f.cvss_vector if field == "cvssv3" else f.cvss_score
    if field in ("cvssv4", "cvssv4_score"):
        if f.cvss_version != "4.0":
            return None
        return f.cvss_vector if field == "cvssv4" else f.cvss_score
    if field in ("cwe", "cwes"):
        return list(f.cwe_ids)
    if field == "vulnerability_ids":
        return list(f.cve_ids) + list(f.other_ids)
    if field == "epss_score":
        return f.extra.get("epss")
    if field == "unique_id_from_tool":
        return next((str(f.extra[k]) for k in _UNIQUE_KEYS if k in f.extra), None)
    return NotImplemented


def holds(field: str, ours: Any, expected: Any, op: str, places: int | None) -> bool:
    """Whether PMAP's value satisfies a DefectDojo assert (with PMAP-side normalisation)."""
    if field == "cwe":
        return (expected in (0, None) and not ours) or expected in ours
    if field == "cwes":
        want = {int(str(c).upper().removeprefix("CWE-")) for c in (expected or [])}
        return want == set(ours)
    if field == "vulnerability_ids":
        if expected is None:
            return not [i for i in ours if i.startswith("CVE-")]
        wanted = [expected] if isinstance(expected, str) else list(expected)
        return set(wanted) <= set(ours)
    if field == "line" and expected is not None:
        return ours == int(expected)
    if op == "contains":
        return ours is not None and expected in ours
    if op == "startswith":
        return isinstance(ours, str) and ours.startswith(expected)
    if op == "endswith":
        return isinstance(ours, str) and ours.endswith(expected)
    if op == "approx":
        return ours is not None and round(float(ours) - float(expected), places or 7) == 0
    if op == "eq_ignore_case":
        return isinstance(ours, str) and ours.lower() == str(expected).lower()
    return ours == expected


def where_field_matches(finding: ParsedFinding, clause: dict[str, Any], fmt: ReportFormat) -> bool | None:
    """Whether a finding matches one ``where`` clause; None when PMAP cannot evaluate it."""
    value = dd_value(finding, clause["field"], fmt)
    if value is NotImplemented:
        return None
    return holds(clause["field"], value, clause["value"], clause.get("op", "eq"), None)
