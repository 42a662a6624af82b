"""pip-audit JSON (``pip-audit -f json``): a bare array of dependencies (before 2.5) or
``{"dependencies": [...]}``; each dependency lists its ``vulns``.

Severity: pip-audit reports none (its advisories carry no severity), so every finding is
unmapped (unknown) and left to triage; DefectDojo rates them medium.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, map_by_table
from pmap.findings.formats.convert import as_dict, as_list, text
from pmap.findings.formats.errors import ReportError, not_a
from pmap.findings.formats.identifiers import sca_title, vuln_ids
from pmap.findings.formats.sniff import json_head

KEY = "pip_audit_json"
WHAT = "a pip-audit JSON report"


def _version_key(version: str) -> tuple[int, ...]:
    """A rough release ordering: the numeric parts of a version (enough to compare fix releases)."""
    return tuple(int(n) for n in re.findall(r"\d+", version.split("+", 1)[0])[:6])


def _first_fix(installed: str | None, fixes: list[str]) -> str | None:
    """The lowest fix release above the installed version (pip-audit lists one per release line)."""
    if not fixes:
        return None
    if installed:
        above = [f for f in fixes if _version_key(f) > _version_key(installed)]
        if above:
            return min(above, key=_version_key)
    return fixes[0]


def _dependency(dep: Any) -> Iterator[ParsedFinding]:
    if not isinstance(dep, dict):
        raise ReportError(KEY, "a dependency is not a JSON object", "dependencies[]")
    if "name" not in dep:  # every pip-audit dependency is named: this is another tool's list (gitleaks', ...)
        raise not_a(KEY, WHAT, "a dependency has no 'name'", "dependencies[]")
    name, version = text(dep.get("name")), text(dep.get("version"))
    for v in as_list(dep.get("vulns")):
        v = as_dict(v)
        vid = text(v.get("id"))
        if not vid:
            raise ReportError(KEY, f"a vulnerability of {name!r} has no id", "dependencies[].vulns[]")
        cves, others = vuln_ids(vid, v.get("aliases"))
        fixes = [f for f in (text(x) for x in as_list(v.get("fix_versions"))) if f]
        yield ParsedFinding(
            title=sca_title(vid, name, version),
            vendor_severity=None,
            description=text(v.get("description")),
            cve_ids=cves,
            other_ids=others,
            rule_id=vid,
            package_name=name,
            package_version=version,
            fixed_version=_first_fix(version, fixes),
            remediation=f"Upgrade {name} to {' or '.join(fixes)}." if fixes else None,
        )


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream the vulnerable dependencies of a pip-audit report."""
    src, head = report.stream, report.json
    prefix = "item" if head.root == "array" else "dependencies.item"
    items = json_reader.iter_json_items(src, prefix, KEY) if head.root == "array" else json_reader.items_required(
        src, prefix, KEY, WHAT
    )
    for dep in items:
        yield from _dependency(dep)


def detect(head: bytes, filename: str | None) -> bool:
    """Dependencies with ``name``/``version`` and ``vulns`` (or ``skip_reason``), bare or wrapped."""
    info = json_head(head)
    if info is None:
        return False
    base = "item" if info.root == "array" else "dependencies.item"
    if info.has(f"{base}.name") and info.any(f"{base}.vulns", f"{base}.skip_reason"):
        return True
    # an empty report of the current shape
    return info.root == "object" and info.top_keys() <= {"dependencies", "fixes"} and "dependencies" in info.paths \
        and not any(p.startswith("dependencies.item") for p in info.paths)


FORMAT = ReportFormat(
    key=KEY,
    title="pip-audit JSON",
    detect=detect,
    read=parse,
    syntax="json",
    what=WHAT,
    map_severity=map_by_table({}),
)
