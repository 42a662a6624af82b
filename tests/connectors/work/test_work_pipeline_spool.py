"""CI/CD vendors with a spool: report downloads stream into the operation's spool directory and each report
artifact is a file there (no bytes held), its content the report the vendor served."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pmap.core.settings import Settings
from pmap.findings.formats.registry import report_formats
from pmap_sandbox.server import SandboxServer

from .cases import PIPELINES, implementation, settings_for
from .conftest import context


@pytest.mark.parametrize("vendor", PIPELINES)
def test_report_artifacts_are_spooled_files(vendor: str, sandbox: SandboxServer, dev_settings: Settings,
                                            tmp_path: Path) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url)
    ctx = context(dev_settings, vendor, connection, credentials, purpose="pipeline_sync")
    ctx.spool = tmp_path
    artifacts = implementation(vendor).fetch_pipeline_reports(ctx)
    assert len(artifacts) == 1
    [artifact] = artifacts
    assert artifact.content == b"" and artifact.path is not None and artifact.path.parent == tmp_path
    assert artifact.format is not None
    findings = list(report_formats()[artifact.format].parse(io.BytesIO(artifact.path.read_bytes())))
    assert len(findings) == 1
