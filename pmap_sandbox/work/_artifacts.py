"""Small synthetic CI artifacts (SARIF, GitLab security report, zip archives) served by CI vendors.

Generated in code so nothing from the shared corpus is copied into the project; each report
holds one finding so a test can tell an imported artifact from an empty one.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping


def sarif_report(tool: str = "semgrep", rule_id: str = "python.lang.security.audit.eval-detected",
                 path: str = "app/views.py", line: int = 42) -> bytes:
    """A SARIF 2.1.0 log with one ``error`` result."""
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": tool, "rules": [{
                "id": rule_id,
                "shortDescription": {"text": "Detected the use of eval()"},
                "defaultConfiguration": {"level": "error"},
            }]}},
            "results": [{
                "ruleId": rule_id,
                "level": "error",
                "message": {"text": "Detected the use of eval(); this can be dangerous."},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": path},
                    "region": {"startLine": line},
                }}],
            }],
        }],
    }
    return json.dumps(log, indent=2).encode()


def gitlab_sast_report() -> bytes:
    """A ``gl-sast-report.json`` (schema 15.x) with one High vulnerability."""
    report = {
        "version": "15.0.7",
        "scan": {
            "analyzer": {"id": "semgrep", "name": "Semgrep", "version": "5.12.0",
                         "vendor": {"name": "GitLab"}},
            "scanner": {"id": "semgrep", "name": "Semgrep", "version": "1.74.0",
                        "vendor": {"name": "GitLab"}},
            "type": "sast",
            "start_time": "2024-05-01T10:00:00",
            "end_time": "2024-05-01T10:01:00",
            "status": "success",
        },
        "vulnerabilities": [{
            "id": "7c1b2a4e9f0d4c55a4a3b1f0c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1",
            "category": "sast",
            "name": "Improper neutralization of directives in dynamically evaluated code",
            "description": "The application calls eval() with data that may come from a user.",
            "severity": "High",
            "scanner": {"id": "semgrep", "name": "Semgrep"},
            "location": {"file": "app/views.py", "start_line": 42, "end_line": 42},
            "identifiers": [
                {"type": "semgrep_id", "name": "bandit.B307", "value": "bandit.B307"},
                {"type": "cwe", "name": "CWE-95", "value": "95",
                 "url": "https://cwe.mitre.org/data/definitions/95.html"},
            ],
        }],
    }
    return json.dumps(report, indent=2).encode()


def zip_of(files: Mapping[str, bytes]) -> bytes:
    """A zip archive holding ``files`` (name -> content)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()
