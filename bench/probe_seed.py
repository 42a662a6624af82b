"""Seeding for ``python -m bench.probe``: integrations holding canary credentials, and records with ids.

Every secret field of every vendor type gets a unique, greppable canary (half of them carry the
sandbox's ``echo`` marker, so the vendor's error body echoes the credential back and PMAP must scrub it).
Each integration points at the vendor sandbox; the probe then tests its connection, checks its
permissions, generates and reveals a webhook secret, imports a small report and saves some rules, so that
schemathesis finds real records behind the routes with ids.
"""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from bench.gen_nessus import write_nessus
from pmap.connectors.base import Operation, secret_field_names
from pmap.connectors.catalog import connector_types

RULES = (
    {"name": "lab hosts are low", "condition": 'host != null && host.endsWith(".lab.example")',
     "action": "set_severity", "value": "low"},
    {"name": "log4shell", "condition": '"CVE-2021-44228" in cve_ids', "action": "set_severity", "value": "critical"},
    {"name": "tag tls", "condition": "port == 443", "action": "tag", "value": "tls"},
)


@dataclass
class Seeded:
    """What the probe planted: canary value -> where it was planted, webhook secrets, ids by path parameter."""

    canaries: dict[str, str] = field(default_factory=dict)
    webhook_secrets: list[str] = field(default_factory=list)
    ids: dict[str, list[str]] = field(default_factory=dict)
    first_of: dict[str, str] = field(default_factory=dict)  # vendor -> its first integration's id
    examples: list[dict[str, Any]] = field(default_factory=list)  # one valid creation body per vendor
    responses: list[str] = field(default_factory=list)  # every seeding answer, checked like the probe's

    def add_id(self, name: str, value: Any) -> None:
        self.ids.setdefault(name, []).append(str(value))


def _accepts(model: type[BaseModel], values: dict[str, Any], name: str) -> bool:
    try:
        model.model_validate(values)
    except Exception as exc:
        return not any(e["loc"][:1] == (name,) for e in exc.errors())  # type: ignore[attr-defined]
    return True


def _first_accepted(model: type[BaseModel], values: dict[str, Any], name: str, candidates: list[Any]) -> Any:
    for candidate in candidates:
        if _accepts(model, {**values, name: candidate}, name):
            return candidate
    return None


def credentials_for(vendor: str, n: int, seeded: Seeded) -> dict[str, str]:
    """A fresh canary in every secret field, in a form the vendor's schema accepts (some demand hex)."""
    model = connector_types()[vendor].credentials_model
    secret_names = secret_field_names(model)
    out: dict[str, str] = {}
    for name, info in model.model_fields.items():
        if name in secret_names:
            marker = "echo" if n % 2 else ""
            value = _first_accepted(model, out, name,
                                    [f"CANARY{marker}{secrets.token_hex(12)}", "ca11ab1e" + secrets.token_hex(24)])
            if value is not None:
                seeded.canaries[value] = f"{vendor}#{n}.credentials.{name}"
        elif info.is_required():
            value = _first_accepted(model, out, name, [f"probe-{name}@acme.test", "acme", "1" * 12])
        else:
            continue
        if value is not None:
            out[name] = value
    return out


def connection_for(vendor: str, base_url: str) -> dict[str, Any]:
    """The sandbox's base URL and plausible values for the vendor's other required settings."""
    model = connector_types()[vendor].connection_model
    out: dict[str, Any] = {"base_url": base_url}
    for name, info in model.model_fields.items():
        if name != "base_url" and info.is_required():
            value = _first_accepted(model, out, name, ["acme", "acme/webapp", "Security", "1"])
            if value is not None:
                out[name] = value
    return out


def _post(client: httpx.Client, seeded: Seeded, path: str, **kwargs: Any) -> httpx.Response:
    r = client.post(path, **kwargs)
    seeded.responses.append(f"POST {path} -> {r.status_code}\n{r.headers}\n{r.text}")
    return r


def seed(client: httpx.Client, sandbox_vendors: dict[str, dict[str, Any]], per_vendor: int) -> Seeded:
    """Create ``per_vendor`` integrations of every vendor type the sandbox serves, and records around them."""
    seeded = Seeded()
    types = connector_types()
    for vendor, ct in types.items():
        if vendor not in sandbox_vendors or not secret_field_names(ct.credentials_model):
            continue
        for n in range(per_vendor):
            legacy = f"CANARYlegacy{secrets.token_hex(12)}"
            seeded.canaries[legacy] = f"{vendor}#{n}.connection.api_key"
            connection = {**connection_for(vendor, sandbox_vendors[vendor]["base_url"]), "api_key": legacy}
            body = {"name": f"{vendor} {n}", "vendor": vendor, "connection": connection,
                    "credentials": credentials_for(vendor, n, seeded)}
            r = _post(client, seeded, "/api/v1/integrations", json=body)
            if r.status_code != 201:
                raise RuntimeError(f"seeding {vendor}: {r.status_code} {r.text[:300]}")
            iid = r.json()["id"]
            seeded.add_id("integration_id", iid)
            if n == 0:
                seeded.first_of[vendor] = iid
                seeded.examples.append({k: body[k] for k in ("vendor", "connection", "credentials")})
            _post(client, seeded, f"/api/v1/integrations/{iid}/test", json={})
            if Operation.CHECK_PERMISSIONS in ct.operations:
                _post(client, seeded, f"/api/v1/integrations/{iid}/permissions-check")
            if n == 0 and _post(client, seeded, f"/api/v1/integrations/{iid}/webhook/generate").status_code == 201:
                revealed = client.post(f"/api/v1/integrations/{iid}/webhook/reveal")
                if revealed.status_code == 200:
                    seeded.webhook_secrets.append(revealed.json()["secret"])
    _seed_findings(client, seeded)
    for rule in RULES:
        r = _post(client, seeded, "/api/v1/rules", json=rule)
        if r.status_code == 201:
            seeded.add_id("rule_id", r.json()["id"])
    return seeded


def _seed_findings(client: httpx.Client, seeded: Seeded) -> None:
    """Import a small .nessus report into a Nessus integration: findings, an import and its job to target."""
    nessus = seeded.first_of["nessus"]
    with tempfile.TemporaryDirectory() as tmp:
        report = write_nessus(Path(tmp) / "probe.nessus", findings=200, hosts=10)
        r = _post(client, seeded, f"/api/v1/integrations/{nessus}/imports",
                  files={"file": ("probe.nessus", report.read_bytes())})
    if r.status_code not in (200, 202):
        raise RuntimeError(f"seeding an import: {r.status_code} {r.text[:300]}")
    summary = r.json()
    seeded.add_id("import_id", summary.get("import_id") or summary.get("id"))
    if summary.get("job_id"):
        seeded.add_id("job_id", summary["job_id"])
    page = client.get("/api/v1/findings", params={"limit": 20}).json()
    for finding in page["items"]:
        seeded.add_id("finding_id", finding["id"])

