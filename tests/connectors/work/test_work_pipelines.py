"""CI/CD vendors against the sandbox: the latest run's security reports, fetched and importable."""

from __future__ import annotations

import io

import pytest

from pmap.core.errors import UpstreamError, ValidationFailed
from pmap.core.settings import Settings
from pmap.findings.formats.registry import report_formats
from pmap_sandbox.server import SandboxServer

from .cases import PIPELINES, catalog_entry, implementation, settings_for
from .conftest import context

#: (artifact name, format) each vendor's latest completed run carries in the sandbox
EXPECTED = {
    "github": ("codeql-sarif/results.sarif", "sarif"),
    "gitlab_ci": ("semgrep-sast/gl-sast-report.json", "gitlab_security_report"),
    "azure_pipelines": ("CodeAnalysisLogs/semgrep.sarif", "sarif"),
    "jenkins": ("reports/semgrep.sarif", "sarif"),
}
#: a run / pipeline / build still in progress, whose reports do not exist yet
RUNNING = {"github": "12962692", "gitlab_ci": "102", "azure_pipelines": "346", "jenkins": "8"}


def test_every_pipeline_vendor_is_covered() -> None:
    assert sorted(EXPECTED) == PIPELINES


@pytest.mark.parametrize("vendor", PIPELINES)
def test_the_latest_run_reports_are_fetched_and_parse(vendor: str, sandbox: SandboxServer,
                                                      dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url)
    artifacts = implementation(vendor).fetch_pipeline_reports(
        context(dev_settings, vendor, connection, credentials, purpose="pipeline_reports"))
    assert [(a.name, a.format) for a in artifacts] == [EXPECTED[vendor]]
    artifact = artifacts[0]
    assert artifact.format in catalog_entry(vendor).report_formats  # the importer accepts it for this vendor type
    findings = list(report_formats()[artifact.format].parse(io.BytesIO(artifact.content)))
    assert len(findings) == 1  # the sandbox's report holds exactly one finding


@pytest.mark.parametrize("vendor", PIPELINES)
def test_a_run_still_in_progress_has_no_reports(vendor: str, sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url)
    ctx = context(dev_settings, vendor, connection, credentials)
    assert implementation(vendor).fetch_pipeline_reports(ctx, RUNNING[vendor]) == []


def test_azure_pipelines_finds_a_branchs_latest_build_through_the_build_api(sandbox: SandboxServer,
                                                                           dev_settings: Settings) -> None:
    connection, credentials = settings_for("azure_pipelines", sandbox.base_url)
    impl = implementation("azure_pipelines")
    for ref in ("main", "refs/heads/main"):
        reports = impl.fetch_pipeline_reports(context(dev_settings, "azure_pipelines", connection, credentials), ref)
        assert [(a.name, a.format) for a in reports] == [EXPECTED["azure_pipelines"]], ref
    ctx = context(dev_settings, "azure_pipelines", connection, credentials)
    assert impl.fetch_pipeline_reports(ctx, "feature") == []


@pytest.mark.parametrize("vendor", ["github", "gitlab_ci", "jenkins"])
def test_an_account_that_cannot_read_the_project_fails_at_permission(vendor: str, sandbox: SandboxServer,
                                                                     dev_settings: Settings) -> None:
    connection, credentials = settings_for(vendor, sandbox.base_url, "noperm")
    with pytest.raises(UpstreamError) as caught:
        implementation(vendor).fetch_pipeline_reports(context(dev_settings, vendor, connection, credentials))
    assert caught.value.step == "permission", caught.value.message


@pytest.mark.parametrize("vendor", PIPELINES)
def test_without_a_project_the_missing_setting_is_named(vendor: str, sandbox: SandboxServer,
                                                       dev_settings: Settings) -> None:
    setting = {"github": "repository", "gitlab_ci": "project", "azure_pipelines": "project", "jenkins": "job"}[vendor]
    connection, credentials = settings_for(vendor, sandbox.base_url)
    connection.pop(setting)
    with pytest.raises(ValidationFailed) as caught:
        implementation(vendor).fetch_pipeline_reports(context(dev_settings, vendor, connection, credentials))
    assert caught.value.fields[0].field == f"connection.{setting}"


def test_an_artifact_filter_that_matches_nothing_fetches_nothing(sandbox: SandboxServer,
                                                                  dev_settings: Settings) -> None:
    connection, credentials = settings_for("github", sandbox.base_url, artifact_pattern="trivy-*")
    assert implementation("github").fetch_pipeline_reports(
        context(dev_settings, "github", connection, credentials)) == []


def test_a_workflow_filter_picks_that_workflows_runs(sandbox: SandboxServer, dev_settings: Settings) -> None:
    impl = implementation("github")
    connection, credentials = settings_for("github", sandbox.base_url, workflow="codeql.yml")
    assert len(impl.fetch_pipeline_reports(context(dev_settings, "github", connection, credentials))) == 1
    connection, credentials = settings_for("github", sandbox.base_url, workflow="release.yml")
    assert impl.fetch_pipeline_reports(context(dev_settings, "github", connection, credentials)) == []


def test_jenkins_least_privilege_names_what_a_readable_plugin_manager_proves(sandbox: SandboxServer,
                                                                            dev_settings: Settings) -> None:
    # /pluginManager/api/json checks Overall/SystemRead (implied by Administer): the report names both
    impl = implementation("jenkins")
    connection, credentials = settings_for("jenkins", sandbox.base_url)
    normal = impl.check_permissions(context(dev_settings, "jenkins", connection, credentials))
    assert normal.ok and normal.excess == []
    connection, credentials = settings_for("jenkins", sandbox.base_url, "admin")
    admin = impl.check_permissions(context(dev_settings, "jenkins", connection, credentials))
    assert admin.excess == ["Overall/SystemRead or Overall/Administer"]
    connection, credentials = settings_for("jenkins", sandbox.base_url, "noperm")
    limited = impl.check_permissions(context(dev_settings, "jenkins", connection, credentials))
    assert not limited.ok and {p.name: p.state.value for p in limited.permissions}["Job/Read"] == "missing"
