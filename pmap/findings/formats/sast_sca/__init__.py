"""SAST and SCA report formats, in a deliberate detection order.

Specific shapes come before generic ones: SARIF first (whatever tool wrote it), then formats
recognised by a distinctive root element or key, and the loosest JSON shapes last.
"""

from __future__ import annotations

from pmap.findings.formats.base import ReportFormat
from pmap.findings.formats.sast_sca import (
    bandit,
    checkmarx,
    cyclonedx,
    dependency_check,
    dependency_track,
    github,
    gitlab,
    gitleaks,
    grype,
    jfrog_xray,
    npm_audit,
    osv,
    pip_audit,
    sarif,
    semgrep,
    snyk,
    sonarqube,
    sonarqube_html,
    trivy,
    veracode,
)

FORMATS: tuple[ReportFormat, ...] = (
    sarif.FORMAT,
    checkmarx.XML_FORMAT,
    checkmarx.JSON_FORMAT,
    veracode.XML_FORMAT,
    veracode.JSON_FORMAT,
    sonarqube.FORMAT,
    sonarqube_html.FORMAT,
    semgrep.FORMAT,
    bandit.FORMAT,
    gitleaks.FORMAT,
    gitlab.FORMAT,
    trivy.FORMAT,
    snyk.FORMAT,
    grype.FORMAT,
    dependency_check.FORMAT,
    cyclonedx.FORMAT,
    osv.FORMAT,
    npm_audit.FORMAT,
    jfrog_xray.FORMAT,
    dependency_track.FORMAT,
    github.FORMAT,
    pip_audit.FORMAT,
)

__all__ = ["FORMATS"]
