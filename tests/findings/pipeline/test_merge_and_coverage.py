"""Issue 13 items 2 and 3: entries of one report sharing an identity merge (never dropped) with each one's
evidence; a full report resolves the findings it lacks only on the resources it covered (hosts, URL origins,
repositories, named assets), and one that covers nothing resolves nothing unless ``resolve=scope`` says so.
Every test runs on SQLite and PostgreSQL (the ``api`` fixture)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any
from xml.sax.saxutils import escape

import orjson
import pytest

from pmap.findings.coverage import covered_resource, url_origin
from pmap.findings.formats.base import ParsedFinding
from pmap.findings.formats.registry import report_formats
from pmap.findings.importer import FindingSource, ImportOptions, ImportSummary, run_feed, target_for
from pmap.findings.rows import OCCURRENCE_MAX_BYTES, OCCURRENCES_MAX, occurrence
from pmap.integrations.models import Integration
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, findings, upload, wait_job


def nessus(hosts: dict[str, list[tuple[int, str]]], *, port: int = 443) -> bytes:
    """A .nessus file: per host, ``(plugin id, plugin output)`` items (a repeated plugin on one host and
    port is one identity: Nessus' per-user or per-path checks)."""
    out = ['<?xml version="1.0" ?>\n<NessusClientData_v2><Report name="t">']
    for host, items in hosts.items():
        out.append(f'<ReportHost name="{host}"><HostProperties><tag name="host-ip">{host}</tag></HostProperties>')
        for plugin, output in items:
            out.append(f'<ReportItem port="{port}" svc_name="www" protocol="tcp" severity="2" pluginID="{plugin}" '
                       f'pluginName="Plugin {plugin}" pluginFamily="General"><description>A finding.</description>'
                       f'<plugin_output>{escape(output)}</plugin_output></ReportItem>')
        out.append("</ReportHost>")
    out.append("</Report></NessusClientData_v2>\n")
    return "".join(out).encode()


def nuclei(*hits: tuple[str, str]) -> bytes:
    """nuclei JSON lines: ``(template id, matched-at URL)`` per result."""
    return b"".join(orjson.dumps({
        "template-id": template, "info": {"name": f"Template {template}", "severity": "medium"},
        "host": url, "matched-at": url, "type": "http",
    }) + b"\n" for template, url in hits)


def _detail(api: Api, admin: dict[str, str], finding_id: str) -> dict[str, Any]:
    r = api.client.get(f"/api/v1/findings/{finding_id}", headers=admin)
    assert r.status_code == 200, r.text
    return r.json()


def _open_rules(api: Api, admin: dict[str, str], iid: str) -> set[str]:
    return {f["rule_id"] for f in findings(api, admin, integration_id=iid, status="open")}


# --- merge, never drop ----------------------------------------------------------------------------

def test_entries_sharing_an_identity_merge_with_every_occurrences_evidence(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    report = nessus({"10.0.0.1": [(10, "user alice: weak password"), (10, "user bob: weak password"), (11, "x")]})
    s = upload(api, iid, report, admin).json()
    assert (s["parsed"], s["created"], s["merged"], s["duplicates"]) == (2, 2, 1, 1)
    rows = {f["rule_id"]: f for f in findings(api, admin, integration_id=iid)}
    assert rows["10"]["occurrence_count"] == 2 and rows["11"]["occurrence_count"] == 1
    assert "occurrences" not in rows["10"]  # a page shows the count; the detail shows the evidence
    merged = _detail(api, admin, rows["10"]["id"])
    outputs = [o["extra"]["plugin_output"] for o in merged["occurrences"]]
    assert outputs == ["user alice: weak password", "user bob: weak password"]
    assert [o["ip"] for o in merged["occurrences"]] == ["10.0.0.1", "10.0.0.1"]
    assert merged["extra"]["plugin_output"] == "user alice: weak password"  # the first occurrence's fields stand
    single = _detail(api, admin, rows["11"]["id"])
    assert (single["occurrence_count"], single["occurrences"]) == (1, [])

    # a re-import of the same file updates the evidence, never piles it up
    again = upload(api, iid, report, admin).json()
    assert (again["created"], again["updated"], again["merged"]) == (0, 2, 1)
    assert _detail(api, admin, rows["10"]["id"])["occurrences"] == merged["occurrences"]
    # the latest import's occurrences: one now, so none listed; and a third user shows up later
    upload(api, iid, nessus({"10.0.0.1": [(10, "user carol"), (11, "x")]}), admin)
    assert (lambda d: (d["occurrence_count"], d["occurrences"]))(_detail(api, admin, rows["10"]["id"])) == (1, [])
    upload(api, iid, nessus({"10.0.0.1": [(10, "a"), (10, "b"), (10, "c"), (11, "x")]}), admin)
    three = _detail(api, admin, rows["10"]["id"])
    assert three["occurrence_count"] == 3 and [o["extra"]["plugin_output"] for o in three["occurrences"]] == \
        ["a", "b", "c"]


def test_the_evidence_kept_per_finding_is_bounded_and_the_count_goes_on(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    n = OCCURRENCES_MAX + 7
    long = "z" * 5_000  # each occurrence's evidence is capped
    s = upload(api, iid, nessus({"10.0.0.1": [(10, f"{i} {long}") for i in range(n)]}), admin).json()
    assert (s["parsed"], s["merged"]) == (1, n - 1)
    [row] = findings(api, admin, integration_id=iid)
    detail = _detail(api, admin, row["id"])
    assert detail["occurrence_count"] == n and len(detail["occurrences"]) == OCCURRENCES_MAX
    assert all(len(orjson.dumps(o)) <= OCCURRENCE_MAX_BYTES + 16 for o in detail["occurrences"][1:])
    assert detail["occurrences"][1]["extra"]["plugin_output"].startswith("1 zzz")
    assert detail["occurrences"][0] == {"ip": "10.0.0.1", "extra": {"truncated": True}}  # the finding's extra


# --- resolution only where the report looked -----------------------------------------------------

def test_two_scans_of_different_hosts_resolve_nothing_of_each_other(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    a = upload(api, iid, nessus({"10.0.0.1": [(1, "a"), (2, "b")]}), admin).json()
    assert (a["created"], a["covered"], a["resolve"]) == (2, 1, "covered")
    b = upload(api, iid, nessus({"10.0.0.2": [(3, "c")]}), admin).json()
    assert (b["created"], b["resolved"], b["warnings"]) == (1, 0, [])
    assert _open_rules(api, admin, iid) == {"1", "2", "3"}
    assert {f["asset"] for f in findings(api, admin, integration_id=iid)} == {"10.0.0.1", "10.0.0.2"}
    # a rescan of the first host without plugin 2 resolves exactly that finding
    again = upload(api, iid, nessus({"10.0.0.1": [(1, "a")]}), admin).json()
    assert (again["updated"], again["resolved"]) == (1, 1)
    assert _open_rules(api, admin, iid) == {"1", "3"}
    assert [f["rule_id"] for f in findings(api, admin, integration_id=iid, status="resolved")] == ["2"]
    # the whole scope, when the uploader says so
    whole = upload(api, iid, nessus({"10.0.0.1": [(1, "a")]}), admin, resolve="scope").json()
    assert (whole["resolved"], whole["resolve"]) == (1, "scope")
    assert _open_rules(api, admin, iid) == {"1"}


def test_a_finding_filtered_below_the_threshold_still_marks_its_host_covered(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin, severity_threshold="high")
    upload(api, iid, nessus({"10.0.0.1": [(1, "a")]}), admin, resolve="scope")  # medium: filtered, nothing stored
    api.client.patch(f"/api/v1/integrations/{iid}", json={"severity_threshold": "info"}, headers=admin)
    upload(api, iid, nessus({"10.0.0.1": [(1, "a"), (2, "b")], "10.0.0.2": [(3, "c")]}), admin)
    api.client.patch(f"/api/v1/integrations/{iid}", json={"severity_threshold": "high"}, headers=admin)
    s = upload(api, iid, nessus({"10.0.0.1": [(1, "a")]}), admin).json()
    assert (s["kept"], s["filtered_out"], s["covered"], s["resolved"]) == (0, 1, 1, 1)  # plugin 2 on 10.0.0.1
    assert _open_rules(api, admin, iid) == {"3"}


@pytest.mark.parametrize("body", [b"", b"[]"])
def test_an_empty_report_resolves_nothing_unless_asked_and_warns(api: Api, admin: dict[str, str],
                                                                 body: bytes) -> None:
    iid = create_integration(api, admin, vendor="nuclei")
    upload(api, iid, nuclei(("t1", "https://app.test/a"), ("t2", "https://app.test/b")), admin, filename="n.jsonl")
    s = upload(api, iid, body, admin, filename="n.jsonl", format="nuclei_json").json()
    assert (s["parsed"], s["covered"], s["resolved"]) == (0, 0, 0)
    assert any("nothing was resolved" in w and "resolve=scope" in w for w in s["warnings"]), s["warnings"]
    assert _open_rules(api, admin, iid) == {"t1", "t2"}
    whole = upload(api, iid, body, admin, filename="n.jsonl", format="nuclei_json", resolve="scope").json()
    assert (whole["resolved"], whole["warnings"]) == (2, [])
    assert _open_rules(api, admin, iid) == set()


def test_dast_reports_cover_their_url_origins(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin, vendor="nuclei")
    up = lambda body, **kw: upload(api, iid, body, admin, filename="n.jsonl", **kw).json()  # noqa: E731
    up(nuclei(("t1", "https://app.test/login"), ("t2", "https://app.test/admin")))
    other = up(nuclei(("t3", "http://app.test:8080/"), ("t4", "https://api.test/v1")))
    assert (other["created"], other["resolved"], other["covered"]) == (2, 0, 2)  # other origins, other sites
    assert {f["asset"] for f in findings(api, admin, integration_id=iid)} == {
        "https://app.test:443", "http://app.test:8080", "https://api.test:443"}
    by_site = findings(api, admin, integration_id=iid, resource="https://app.test:443")
    assert {f["rule_id"] for f in by_site} == {"t1", "t2"}  # the resource filter matches the asset too
    same = up(nuclei(("t1", "https://app.test/login"), ("t5", "https://app.test:443/new")))  # one origin
    assert (same["resolved"], same["covered"]) == (1, 1) and _open_rules(api, admin, iid) == {"t1", "t3", "t4", "t5"}


def test_a_background_import_keeps_the_resolve_choice(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    upload(api, iid, nessus({"10.0.0.1": [(1, "a"), (2, "b")]}), admin)
    api.state.settings.import_background_bytes = 100  # every upload runs as a job
    r = upload(api, iid, nessus({"10.0.0.2": [(3, "c")]}), admin, resolve="scope")
    assert r.status_code == 202, r.text
    job = wait_job(api, r.json()["job"]["id"], admin)
    assert job["status"] == "succeeded", job
    assert (job["result"]["resolve"], job["result"]["resolved"]) == ("scope", 2)


def test_a_wrong_resolve_value_is_a_422(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin)
    r = upload(api, iid, nessus({"10.0.0.1": [(1, "a")]}), admin, resolve="everything")
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "resolve"


# --- the pipeline fed directly: SAST repositories, named assets, all-skipped reports ------------------

def _feed(api: Api, iid: str, fmt: str, items: Iterable[ParsedFinding], skipped: Counter[str] | None = None,
          **options: Any) -> ImportSummary:
    with api.state.sessions() as session:
        row = session.get(Integration, uuid.UUID(iid))
        assert row is not None
        target = target_for(row)
    source = FindingSource(report_formats()[fmt], iter(list(items)), skipped=skipped or Counter())
    return run_feed(api.state.engine, target, source, ImportOptions(format=fmt, **options))


def _sast(rule: str, repository: str | None) -> ParsedFinding:
    return ParsedFinding(title=f"Rule {rule}", rule_id=rule, vendor_severity="error", repository=repository,
                         file_path="src/app.py", line=3)


def test_sast_reports_cover_their_repositories_and_unnamed_findings_share_one(api: Api,
                                                                               admin: dict[str, str]) -> None:
    iid = create_integration(api, admin, vendor="sarif")
    first = _feed(api, iid, "sarif", [_sast("r1", "acme/web"), _sast("r2", "acme/web"), _sast("r3", None)])
    assert (first.created, first.covered) == (3, 2)
    other = _feed(api, iid, "sarif", [_sast("r4", "acme/api")])
    assert (other.created, other.resolved) == (1, 0)  # another repository: acme/web's findings stay open
    web = _feed(api, iid, "sarif", [_sast("r1", "acme/web")])
    assert web.resolved == 1  # r2; r3 names no repository, and this report covered no unnamed finding
    assert _open_rules(api, admin, iid) == {"r1", "r3", "r4"}
    unnamed = _feed(api, iid, "sarif", [_sast("r5", None)])
    assert unnamed.resolved == 1 and _open_rules(api, admin, iid) == {"r1", "r4", "r5"}


def test_a_named_asset_comes_first(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin, vendor="trivy")

    def vuln(cve: str, image: str) -> ParsedFinding:
        return ParsedFinding(title=cve, cve_ids=[cve], vendor_severity="HIGH", package_name="openssl",
                             package_version="1.0", asset=image, identity=[image])

    _feed(api, iid, "trivy_json", [vuln("CVE-1", "img/a:1"), vuln("CVE-2", "img/a:1")])
    assert _feed(api, iid, "trivy_json", [vuln("CVE-3", "img/b:1")]).resolved == 0
    assert _feed(api, iid, "trivy_json", [vuln("CVE-1", "img/a:1")]).resolved == 1
    assert {f["asset"] for f in findings(api, admin, integration_id=iid, status="open")} == {"img/a:1", "img/b:1"}


def test_an_all_skipped_report_resolves_nothing_unless_asked(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin, vendor="sarif")
    _feed(api, iid, "sarif", [_sast("r1", "acme/web")])
    s = _feed(api, iid, "sarif", [], skipped=Counter({"licence": 3}))
    assert (s.resolved, s.skipped) == (0, {"licence": 3})
    assert any("nothing was resolved" in w and "left out by design" in w for w in s.warnings), s.warnings
    assert _feed(api, iid, "sarif", [], skipped=Counter({"licence": 3}), resolve="scope").resolved == 1
    partial = _feed(api, iid, "sarif", [], full=False)
    assert partial.resolved == 0 and not any("nothing was resolved" in w for w in partial.warnings)


def test_a_merged_finding_stays_open_while_any_occurrence_is_open(api: Api, admin: dict[str, str]) -> None:
    iid = create_integration(api, admin, vendor="sarif")

    def entry(rule: str, status: str | None) -> ParsedFinding:
        return ParsedFinding(title=f"Rule {rule}", rule_id=rule, vendor_severity="error", repository="acme/web",
                             file_path="src/app.py", line=3, status=status)

    # first stated fixed (or dismissed), then open: one finding, open; fixed twice stays stated fixed
    first = _feed(api, iid, "sarif", [entry("r1", "fixed"), entry("r1", None), entry("r2", "false_positive"),
                                      entry("r2", "open"), entry("r3", "fixed"), entry("r3", "fixed")])
    assert (first.created, first.merged, first.created_resolved) == (3, 3, 1)  # only r3 is stored resolved
    statuses = {f["rule_id"]: (f["status"], f["resolved_at"]) for f in findings(api, admin, integration_id=iid)}
    assert statuses["r1"] == ("open", None) and statuses["r2"] == ("open", None)
    assert statuses["r3"][0] == "resolved" and statuses["r3"][1] is not None
    # an open finding reported fixed first and open after is not resolved (nor counted so)
    again = _feed(api, iid, "sarif", [entry("r1", "fixed"), entry("r1", "open"), entry("r2", None),
                                      entry("r3", "fixed")])
    assert (again.resolved, again.reopened) == (0, 0)
    # a resolved one reported fixed first and open after is reopened, and counted so
    back = _feed(api, iid, "sarif", [entry("r1", None), entry("r2", None), entry("r3", "fixed"), entry("r3", None)])
    assert (back.reopened, back.resolved) == (1, 0)
    assert {f["rule_id"] for f in findings(api, admin, integration_id=iid, status="open")} == {"r1", "r2", "r3"}


# --- the rule itself -------------------------------------------------------------------------------

def test_the_covered_resource_rule() -> None:
    assert covered_resource(ParsedFinding("t", asset="img:1", host="h", repository="r")) == "img:1"
    assert covered_resource(ParsedFinding("t", url="HTTPS://App.Test/x?y", host="app.test")) == "https://app.test:443"
    assert covered_resource(ParsedFinding("t", url="app.test:22", host="App.Test")) == "app.test"
    assert covered_resource(ParsedFinding("t", ip="10.0.0.9", repository="r")) == "10.0.0.9"
    assert covered_resource(ParsedFinding("t", repository="acme/web", file_path="a.py")) == "acme/web"
    assert covered_resource(ParsedFinding("t", file_path="a.py", package_name="p")) is None
    assert covered_resource(ParsedFinding("t", asset="x" * 900)) == "x" * 500
    assert url_origin("http://[::1]:8080/a") == "http://[::1]:8080" and url_origin("not a url") is None


def test_one_occurrences_evidence_is_small_json() -> None:
    second_alert = ParsedFinding("t", ip="10.0.0.1", other_ids=["GHSA-aaaa-bbbb-cccc"], extra={"alert_id": "42"})
    assert orjson.loads(occurrence(second_alert)) == {"ip": "10.0.0.1", "other_ids": ["GHSA-aaaa-bbbb-cccc"],
                                                      "extra": {"alert_id": "42"}}
    assert occurrence(ParsedFinding("t")) == "{}"
    big = ParsedFinding("t", other_ids=[f"ID-{i}" * 20 for i in range(200)],
                        extra={f"k{i}": "v" * 900 for i in range(30)})
    text = occurrence(big)
    assert len(text.encode()) <= OCCURRENCE_MAX_BYTES and "extra" in orjson.loads(text)
