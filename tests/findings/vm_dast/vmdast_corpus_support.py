"""Support for the corpus test: DefectDojo format -> PMAP key, and DefectDojo field asserts
evaluated against PMAP findings.

DefectDojo asserts address findings by their position in its (aggregated) output. PMAP keeps
one finding per resource, so positions do not line up; an assert group (same index) is matched
to the PMAP findings with the same identity (title / tool ids), and each asserted value must
hold for one of them. Location asserts (``locations[k]``) hold when some finding of that
identity has the location, since DefectDojo's k-th endpoint is one of PMAP's findings.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pmap.findings.formats.base import ParsedFinding, ReportFormat


def corpus_dir() -> Path:
    """The shared corpus folder: $PMAP_CORPUS_DIR, else ``shared/corpus`` beside the checkout."""
    env = os.environ.get("PMAP_CORPUS_DIR")
    if env:
        return Path(env)
    return (Path(__file__).resolve().parents[3] / "../shared/corpus").resolve()


_BY_EXT = {
    "tenable": {"csv": "tenable_csv", "*": "nessus"},
    "qualys": {"csv": "qualys_csv", "*": "qualys_xml"},
    "qualys_vmdr": {"*": "qualys_vmdr_csv"},
    "openvas": {"csv": "openvas_csv", "*": "openvas_xml"},
    "nexpose": {"*": "nexpose_xml"},
    "burp": {"*": "burp_xml"},
    "zap": {"json": "zap_json", "*": "zap_xml"},
    "acunetix": {"json": "acunetix360_json", "*": "acunetix_xml"},
    "netsparker": {"*": "invicti_json"},
    "invicti": {"*": "invicti_json"},
    "nuclei": {"*": "nuclei_json"},
    "nmap": {"*": "nmap_xml"},
    "masscan": {"*": "masscan"},
    "mobsf": {"*": "mobsf_json"},
}


def pmap_key(dd_format: str, file: str | None, parser_args: dict[str, Any] | None) -> str | None:
    """The PMAP format key for a corpus record; None when the format is not this package's.

    DefectDojo picks a reader from ``input_syntax`` or the file extension; PMAP has one key per
    syntax. OpenVAS parser classes V1/V2 and Django settings map to the same PMAP behaviour.
    """
    table = _BY_EXT.get(dd_format)
    if table is None:
        return None
    syntax = (parser_args or {}).get("input_syntax")
    ext = syntax or (file.rsplit(".", 1)[-1].lower() if file and "." in file else "*")
    return table.get(ext, table["*"])


def load_records(corpus: Path) -> list[dict[str, Any]]:
    """All expectation records of this package's formats."""
    out = []
    with (corpus / "expectations.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["format"] in _BY_EXT:
                out.append(rec)
    return out


# --- asserts ----------------------------------------------------------------------------------

NOT_MODELLED = {
    "nb_occurences": "PMAP does not aggregate occurrences: one finding per resource",
    "locations_count": "PMAP does not aggregate endpoints: one finding per resource",
    "active": "workflow flag of DefectDojo, not a report fact",
    "verified": "workflow flag of DefectDojo, not a report fact",
    "static_finding": "DefectDojo classification flag, not a report fact",
    "dynamic_finding": "DefectDojo classification flag, not a report fact",
    "epss_percentile": "not kept",
}
_IDENTITY = ("title", "vuln_id_from_tool", "unique_id_from_tool")
# DefectDojo names an endpoint's scheme "protocol"; Nessus calls the http service "www"
_SERVICE_ALIASES = {"www": "http"}
TITLE_NORMALIZERS: dict[str, tuple[str, str]] = {
    # DefectDojo prefixes Qualys titles with the QID; PMAP keeps the QID in rule_id
    "qualys_xml": (r"^QID-\d+ \| ", ""),
    # DefectDojo appends the address to masscan titles; PMAP keeps it in ip
    "masscan": (r" on \S+$", ""),
}


def _vector(v: Any) -> str | None:
    return re.sub(r"^CVSS:\d\.\d/", "", v) if isinstance(v, str) else v


def _date_matches(expected: str, f: ParsedFinding) -> bool:
    for dt in (f.first_seen, f.last_seen):
        if dt is None:
            continue
        naive = dt.replace(tzinfo=None)
        if len(expected) == 10 and naive.date().isoformat() == expected:
            return True
        if naive.isoformat() == expected or naive.isoformat(timespec="microseconds") == expected:
            return True
    return False


def _location(field: str, expected: Any, op: str, f: ParsedFinding) -> bool:
    part = field.split("]", 1)[1].lstrip(".") if "]" in field else ""
    if part == "":
        if not f.url:
            return False
        return unquote(f.url).rstrip("/") == unquote(str(expected)).rstrip("/")
    if part == "host":
        values = [v for v in (f.host, f.ip) if v]
        if op == "eq_ignore_case":
            return str(expected).lower() in [v.lower() for v in values]
        return expected in values
    if part == "port":
        return f.port == expected
    if part == "protocol":
        scheme = urlsplit(f.url).scheme if f.url else None
        service = str(f.extra.get("service") or "").rstrip("?")  # Nessus marks unsure services with "?"
        options = {str(v).lower() for v in (f.protocol, scheme, service, _SERVICE_ALIASES.get(service)) if v}
        return str(expected).lower() in options
    if part == "path":
        return f.url is not None and urlsplit(f.url).path.lstrip("/") == expected
    if part == "fragment":
        return f.protocol == expected
    raise AssertionError(f"unsupported location field {field}")


def holds(a: dict[str, Any], f: ParsedFinding, fmt: ReportFormat) -> bool:
    """Whether one DefectDojo assert holds for one PMAP finding."""
    field: str = a["field"]
    expected: Any = a.get("value")
    op: str = a.get("op", "eq")
    if field.startswith("locations["):
        return _location(field, expected, op, f)
    if field == "title":
        pattern, repl = TITLE_NORMALIZERS.get(fmt.key, ("", ""))
        want = re.sub(pattern, repl, expected) if pattern else expected
        return f.title.lower() == want.lower() if op == "eq_ignore_case" else f.title == want
    if field == "severity":
        return fmt.map_severity(f).severity.value == str(expected).lower()
    if field == "cwe":
        return (not f.cwe_ids) if expected in (0, None) else expected in f.cwe_ids
    if field == "cwes":
        return set(expected) == set(f.cwe_ids)
    if field == "vulnerability_ids":
        ids = f.cve_ids + f.other_ids
        if op == "contains":
            return expected in ids
        return set(expected) in (set(f.cve_ids), set(ids))
    if field == "vulnerability_ids_count":
        return len(f.cve_ids) == expected
    if field in ("component_name", "component_version"):
        return (f.package_name if field == "component_name" else f.package_version) == expected
    if field == "file_path":
        return f.file_path == expected
    if field == "line":
        return f.line == expected
    if field == "cvssv3":
        if expected:
            return _vector(f.cvss_vector) == _vector(expected)
        return not (f.cvss_vector or "").startswith("CVSS:3")
    if field == "cvssv3_score":
        if expected is None:
            return f.cvss_score is None
        return f.cvss_score is not None and abs(f.cvss_score - float(expected)) < 1e-6
    if field == "vuln_id_from_tool":
        return expected in {f.rule_id, (f.rule_id or "").split(":")[0], f.extra.get("template")}
    if field == "unique_id_from_tool":
        return expected in {f.rule_id, f.extra.get("serial_number"), f.extra.get("lookup_id")}
    if field == "epss_score":
        return f.extra.get("epss_score") is not None and abs(f.extra["epss_score"] - expected) < 1e-6
    if field == "date":
        return _date_matches(str(expected), f)
    if field == "false_p":
        return (f.status == "false_positive") == bool(expected)
    if field == "risk_accepted":
        return (f.status == "risk_accepted") == bool(expected)
    if field == "tags":
        tags = f.extra.get("tags") or f.extra.get("asset_tags") or []
        return (expected in tags) if op == "contains" else (not tags if expected is None else tags == expected)
    if field == "service":
        return expected in (f.extra.get("service"), f.extra.get("category"))
    raise AssertionError(f"unsupported field {field}")


def _identity_match(group: list[dict[str, Any]], f: ParsedFinding, fmt: ReportFormat) -> bool:
    return all(holds(a, f, fmt) for a in group if a["field"] in _IDENTITY)


def field_name(a: dict[str, Any]) -> str:
    """The assert's field with endpoint positions folded (``locations[2].host`` -> ``locations[].host``)."""
    return re.sub(r"\[\d+\]", "[]", a["field"])


def _skipped(a: dict[str, Any], skipped: dict[str, str]) -> bool:
    name = field_name(a)
    if a["field"] in NOT_MODELLED:
        return True
    return name in skipped or f"{name}:{a.get('op', 'eq')}" in skipped


def evaluate(record: dict[str, Any], findings: list[ParsedFinding], fmt: ReportFormat,
             skipped: dict[str, str]) -> list[str]:
    """Failures of a record's asserts.

    Not checked: NOT_MODELLED fields and the fields named in ``skipped`` (``field`` or
    ``field:op``, endpoint positions folded as by :func:`field_name`).
    """
    failures: list[str] = []
    asserts = [a for a in record.get("asserts") or [] if not _skipped(a, skipped)]
    groups: dict[Any, list[dict[str, Any]]] = {}
    for a in asserts:
        if a.get("scope") == "all":
            failures += _check_scope_all(a, findings, fmt)
        elif a.get("where"):
            groups.setdefault(("where", json.dumps(a["where"], sort_keys=True)), []).append(a)
        else:
            groups.setdefault(("index", a["index"]), []).append(a)
    for (kind, ident), group in groups.items():
        if kind == "where":
            where = json.loads(ident)
            candidates = [f for f in findings if all(holds({**w, "op": w.get("op", "eq")}, f, fmt) for w in where)]
        elif any(a["field"] in _IDENTITY for a in group):
            candidates = [f for f in findings if _identity_match(group, f, fmt)]
        elif len(findings) == record.get("expected_findings"):
            candidates = [findings[ident]] if ident is not None and ident < len(findings) else []
        else:
            candidates = list(findings)
        if not candidates:
            failures.append(f"{record['file']} [{kind} {ident}]: no PMAP finding with this identity")
            continue
        plain = [a for a in group if not a["field"].startswith("locations[") and a["field"] not in _IDENTITY]
        if plain and not any(all(holds(a, f, fmt) for a in plain) for f in candidates):
            for a in plain:
                if not any(holds(a, f, fmt) for f in candidates):
                    failures.append(f"{record['file']} [{kind} {ident}]: {a['field']} != {a.get('value')!r}")
        for a in group:
            if a["field"].startswith("locations[") and not any(holds(a, f, fmt) for f in candidates):
                failures.append(f"{record['file']} [{kind} {ident}]: {a['field']} != {a.get('value')!r}")
    return failures


def _check_scope_all(a: dict[str, Any], findings: list[ParsedFinding], fmt: ReportFormat) -> list[str]:
    if a.get("op") == "value_counts" and a["field"] == "severity":
        got = Counter(fmt.map_severity(f).severity.value for f in findings)
        want = {k.lower(): v for k, v in a["value"].items()}
        return [] if dict(got) == want else [f"severity counts {dict(got)} != {want}"]
    bad = [f.title for f in findings if not holds(a, f, fmt)]
    return [f"{a['field']} != {a.get('value')!r} for {len(bad)} findings"] if bad else []
