"""Helpers for the import pipeline tests: small generated reports, integrations, uploads, jobs."""

from __future__ import annotations

import time
from typing import Any
from xml.sax.saxutils import escape

import httpx
import orjson

from tests.conftest import Api

TENABLE_CREDS = {"access_key": "a" * 20, "secret_key": "b" * 20}


def nessus_report(items: list[dict[str, Any]]) -> bytes:
    """A small .nessus v2 file; each item: host, plugin (id), name, severity (0-4 or a word), port, cve, cvss."""
    hosts: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        hosts.setdefault(item.get("host", "10.0.0.1"), []).append(item)
    out = ['<?xml version="1.0" ?>\n<NessusClientData_v2><Report name="t">']
    for host, findings in hosts.items():
        out.append(f'<ReportHost name="{host}"><HostProperties><tag name="host-ip">{host}</tag></HostProperties>')
        for f in findings:
            out.append(
                f'<ReportItem port="{f.get("port", 443)}" svc_name="www" protocol="tcp" '
                f'severity="{f.get("severity", 2)}" pluginID="{f["plugin"]}" '
                f'pluginName="{escape(f.get("name", "Plugin " + str(f["plugin"])))}" pluginFamily="General">'
                f'<description>{escape(f.get("description", "A test finding."))}</description>'
                f'<solution>Upgrade.</solution><risk_factor>Medium</risk_factor>'
                + (f'<cve>{f["cve"]}</cve>' if f.get("cve") else "")
                + (f'<cvss3_base_score>{f["cvss"]}</cvss3_base_score>' if f.get("cvss") is not None else "")
                + "</ReportItem>"
            )
        out.append("</ReportHost>")
    out.append("</Report></NessusClientData_v2>\n")
    return "".join(out).encode()


def sarif_report(results: list[dict[str, Any]], tool: str = "TestTool") -> bytes:
    """A small SARIF 2.1 log; each result: rule, level, file, line, message."""
    rules = sorted({r["rule"] for r in results})
    doc = {
        "version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {"name": tool,
                                "rules": [{"id": r, "shortDescription": {"text": f"Rule {r}"}} for r in rules]}},
            "results": [{
                "ruleId": r["rule"], "level": r.get("level", "warning"),
                "message": {"text": r.get("message", f"Problem {r['rule']}")},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": r.get("file", "src/app.py")},
                                                    "region": {"startLine": r.get("line", 1)}}}],
            } for r in results],
        }],
    }
    return orjson.dumps(doc)


def create_integration(api: Api, headers: dict[str, str], vendor: str = "tenable_vm", name: str | None = None,
                       **extra: Any) -> str:
    """A new integration's id (tenable_vm gets dummy keys: imports never call the vendor)."""
    body: dict[str, Any] = {"name": name or f"{vendor}-{time.monotonic_ns()}", "vendor": vendor, **extra}
    if vendor in ("tenable_vm", "nessus"):
        body.setdefault("credentials", TENABLE_CREDS)
    r = api.client.post("/api/v1/integrations", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def upload(api: Api, iid: str, content: bytes, headers: dict[str, str], filename: str = "report.nessus",
           **fields: str) -> httpx.Response:
    """POST a report to the import endpoint."""
    return api.client.post(f"/api/v1/integrations/{iid}/imports", files={"file": (filename, content)},
                           data=fields, headers=headers)


def wait_job(api: Api, job_id: str, headers: dict[str, str], rounds: int = 600) -> dict[str, Any]:
    """Poll a job until it ends (the loop bound only guards against a hung test)."""
    for _ in range(rounds):
        job = api.client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end: {job}")


def findings(api: Api, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every finding matching ``params`` (walks all pages)."""
    items, cursor = [], None
    while True:
        query = {"limit": 500, **params, **({"cursor": cursor} if cursor else {})}
        r = api.client.get("/api/v1/findings", params=query, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items
