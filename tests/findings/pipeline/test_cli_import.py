"""``pmapctl import`` against a real API served on loopback: sync and background imports, errors."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from rich.console import Console
from typer.testing import CliRunner, Result

from pmap.app import create_app
from pmap.auth.principal import Role
from pmap.auth.service import get_or_create_org, issue_token
from pmap.cli.main import app as pmapctl
from pmap.core.crypto import generate_key
from pmap.core.db import transaction
from pmap.core.settings import Settings
from pmap.findings.cli_import import upload_report
from pmap.migrations import upgrade
from tests.findings.pipeline.helpers import TENABLE_CREDS, nessus_report


class Served:
    def __init__(self, url: str, settings: Settings, token: str, integration: str) -> None:
        self.url, self.settings, self.token, self.integration = url, settings, token, integration


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # a database of its own: the shared test databases hold canaries sealed with other tests' keys
    url = f"sqlite:///{tmp_path_factory.mktemp('cli-db') / 'pmap.db'}"
    upgrade(url)
    settings = Settings(database_url=url, data_dir=tmp_path_factory.mktemp("cli-data"),
                        platform_key=generate_key(), bootstrap_admin_token=None)
    application = create_app(settings)
    port = _port()
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started or not thread.is_alive():
            break
        time.sleep(0.02)
    assert server.started, "the API did not start"
    state = application.state.pmap
    with transaction(state.sessions) as session:
        org = get_or_create_org(session, "cli-org")
        token = issue_token(session, org, Role.OPERATOR, "cli").token
    import httpx

    r = httpx.post(f"http://127.0.0.1:{port}/api/v1/integrations", headers={"Authorization": f"Bearer {token}"},
                   json={"name": "cli-tenable", "vendor": "tenable_vm", "credentials": TENABLE_CREDS})
    assert r.status_code == 201, r.text
    yield Served(f"http://127.0.0.1:{port}", settings, token, r.json()["id"])
    server.should_exit = True
    thread.join(timeout=10)


def _report(tmp_path: Path, n: int, name: str = "scan.nessus") -> Path:
    path = tmp_path / name
    path.write_bytes(nessus_report([{"plugin": 500 + i, "host": f"10.5.0.{i}", "severity": i % 5} for i in range(n)]))
    return path


def _run(served: Served, *args: str, token: bool = True) -> Result:
    env = {"PMAP_URL": served.url, **({"PMAP_TOKEN": served.token} if token else {})}
    return CliRunner().invoke(pmapctl, ["import", *args], env=env)


def test_import_prints_the_summary_as_json(served: Served, tmp_path: Path) -> None:
    report = _report(tmp_path, 6)
    result = _run(served, "--integration", served.integration, str(report), "--json", "--scope", "cli-a")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["format"], summary["parsed"], summary["created"], summary["scope"]) == ("nessus", 6, 6, "cli-a")
    again = _run(served, "--integration", served.integration, str(report), "--json", "--scope", "cli-a")
    assert json.loads(again.stdout)["created"] == 0
    fewer = _report(tmp_path, 2, name="fewer.nessus")
    partial = _run(served, "--integration", served.integration, str(fewer), "--json", "--scope", "cli-a", "--partial")
    assert (json.loads(partial.stdout)["full"], json.loads(partial.stdout)["resolved"]) == (False, 0)
    full = _run(served, "--integration", served.integration, str(fewer), "--json", "--scope", "cli-a")
    # a full report resolves what it no longer lists on the hosts it covered: the other four were not scanned
    assert (json.loads(full.stdout)["resolved"], json.loads(full.stdout)["resolve"]) == (0, "covered")
    whole = _run(served, "--integration", served.integration, str(fewer), "--json", "--scope", "cli-a",
                 "--resolve", "scope")
    assert (json.loads(whole.stdout)["resolved"], json.loads(whole.stdout)["resolve"]) == (4, "scope")


def test_import_waits_for_a_background_job(served: Served, tmp_path: Path) -> None:
    served.settings.import_background_bytes = 64  # the served app reads it per request
    try:
        report = _report(tmp_path, 9)
        result = _run(served, "--integration", served.integration, str(report), "--json", "--scope", "cli-b")
    finally:
        served.settings.import_background_bytes = 8 * 1024 * 1024
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["parsed"], summary["created"]) == (9, 9)


def test_table_output_and_format_override(served: Served, tmp_path: Path) -> None:
    report = _report(tmp_path, 2, name="renamed.bin")
    result = _run(served, "--integration", served.integration, str(report), "--format", "nessus", "--scope", "cli-c")
    assert result.exit_code == 0, result.output
    assert "created" in result.stdout and "nessus" in result.stdout
    tagged = _run(served, "--integration", served.integration, str(report), "--format", "nessus",
                  "--scope", "[red]q3[/]")
    assert tagged.exit_code == 0 and "[red]q3[/]" in tagged.stdout  # the uploader's text, not Rich markup


def test_failures_exit_non_zero_with_the_api_message(served: Served, tmp_path: Path) -> None:
    sarif = tmp_path / "x.sarif"
    sarif.write_text('{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "t"}}, "results": []}]}')
    result = _run(served, "--integration", served.integration, str(sarif), "--json")
    assert result.exit_code == 1
    assert "accepted: nessus, tenable_csv" in result.stderr and result.stdout == ""
    missing = _run(served, "--integration", "00000000-0000-0000-0000-000000000000", str(sarif))
    assert missing.exit_code == 1 and "integration not found" in missing.stderr
    not_an_id = _run(served, "--integration", "nope", str(sarif))
    # the field problem is shown: "[...]" in a message is text, not markup Rich would swallow
    assert not_an_id.exit_code == 1 and "[integration_id: " in " ".join(not_an_id.stderr.split())
    no_token = _run(served, "--integration", served.integration, str(sarif), token=False)
    assert no_token.exit_code == 1 and "PMAP_TOKEN" in no_token.stderr
    down = CliRunner().invoke(pmapctl, ["import", "--integration", served.integration, str(sarif),
                                        "--url", f"http://127.0.0.1:{_port()}", "--token", "x"])
    assert down.exit_code == 1 and "cannot reach PMAP" in down.stderr


def test_progress_bar_on_a_terminal(served: Served, tmp_path: Path) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    report = _report(tmp_path, 5)
    summary = upload_report(report, served.integration, url=served.url, token=served.token, scope="cli-d",
                            show_progress=True, console=console)
    assert summary["created"] == 5
    served.settings.import_background_bytes = 64
    try:
        summary = upload_report(report, served.integration, url=served.url, token=served.token, scope="cli-e",
                                show_progress=True, console=console)
    finally:
        served.settings.import_background_bytes = 8 * 1024 * 1024
    assert summary["created"] == 5
    assert "uploading" in screen.getvalue() or "importing" in screen.getvalue()
