"""CycloneDX BOMs with vulnerabilities: JSON (1.4+ ``vulnerabilities[]`` with ``affects``) and XML
(1.4+ ``vulnerabilities`` and the older vulnerability extension 1.0, inside components or at BOM
level). One finding per vulnerability and affected component. A BOM without vulnerabilities (a
plain SBOM) imports as zero findings. The BOM's subject (``metadata.component``: its bom-ref unless a
UUID, else name@version, else name) is every finding's ``asset``: what a full import of the BOM covers.

Components are indexed by ``bom-ref`` (JSON: a first pass; XML: as they stream by, CycloneDX
lists components before vulnerabilities), keeping only name, version and purl. The package name
is the component's ``name`` as written (the group stays in the purl, kept in ``extra``).

Severity (CycloneDX ``ratings[].severity``): critical, high, medium, low, info map one to one;
none -> info; unknown maps to nothing, and a rating score then falls back to the CVSS bands.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, map_by_table
from pmap.findings.formats.convert import as_dict, as_list, parse_dt, text, to_float, uniq
from pmap.findings.formats.errors import ReportError, not_a
from pmap.findings.formats.identifiers import cvss_version, cwe_ids, purl_name_version, sca_title, vuln_ids
from pmap.findings.formats.sniff import json_head, xml_head
from pmap.findings.formats.xml_reader import clear_element, iter_xml, xml_text

KEY = "cyclonedx"
WHAT = "a CycloneDX BOM"
SEVERITIES = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "info": Severity.INFO,
    "none": Severity.INFO,
}
# VEX analysis.state -> PMAP status
_STATE = {"resolved": "fixed", "resolved_with_pedigree": "fixed", "false_positive": "false_positive",
          "not_affected": "not_affected"}
_METHOD_RANK = {"cvssv4": 4, "cvssv31": 3, "cvssv3": 2, "cvssv2": 1}
_MAX_COMPONENTS = 2_000_000

Component = tuple[str | None, str | None, str | None]  # name, version, purl


def _rating(ratings: list[dict[str, Any]]) -> tuple[str | None, str | None, str | None, float | None]:
    """(severity, cvss version, vector, score): the first stated severity, the best CVSS rating."""
    severity = next((s for s in (text(r.get("severity")) for r in ratings) if s and s.lower() != "unknown"), None)
    best: dict[str, Any] | None = None
    for r in ratings:
        method = (text(r.get("method")) or "").lower()
        if method in _METHOD_RANK and (best is None or _METHOD_RANK[method] > _METHOD_RANK[best["m"]]):
            best = {"m": method, "r": r}
    if best is None:
        scored = next((r for r in ratings if to_float(r.get("score")) is not None), None)
        return severity, None, None, to_float(scored.get("score")) if scored else None
    r = best["r"]
    vector = text(r.get("vector"))
    version = cvss_version(vector) or {"cvssv4": "4.0", "cvssv31": "3.1", "cvssv3": "3.0", "cvssv2": "2.0"}[best["m"]]
    if vector and version in ("3.0", "3.1") and not vector.startswith("CVSS:"):
        vector = f"CVSS:{version}/{vector}"
    return severity, version, vector, to_float(r.get("score"))


_UUID = re.compile(r"(urn:uuid:)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def _asset(ref: str | None, name: str | None, version: str | None) -> str | None:
    """The BOM's own subject (``metadata.component``): its bom-ref, else name@version, else name. A bom-ref
    that is a UUID is passed over: generators (trivy for a file system, ...) draw one afresh per BOM, so
    the same subject would be a new resource on every scan."""
    if ref and not _UUID.fullmatch(ref):
        return ref
    if name and version:
        return f"{name}@{version}"
    return name


def _finding(vuln: dict[str, Any], comp: Component, ref: str | None, asset: str | None = None) -> ParsedFinding:
    vid = text(vuln.get("id"))
    if not vid:
        raise ReportError(KEY, "a vulnerability has no id", "vulnerabilities[]")
    name, version, purl = comp
    if name is None and ref and ref.startswith("pkg:"):
        # an affected ref the BOM does not list as a component: it is often a purl itself
        name, version = purl_name_version(ref)
        purl = ref
    ref_ids = [text(as_dict(r).get("id")) for r in as_list(vuln.get("references"))]
    cves, others = vuln_ids(vid, *[r for r in ref_ids if r])
    severity, cv_version, vector, score = _rating([as_dict(r) for r in as_list(vuln.get("ratings"))])
    analysis = as_dict(vuln.get("analysis"))
    recommendation = text(vuln.get("recommendation"))
    advisories = [text(as_dict(a).get("url")) if isinstance(a, dict) else text(a)
                  for a in as_list(vuln.get("advisories"))]
    source_url = text(as_dict(vuln.get("source")).get("url"))
    return ParsedFinding(
        title=sca_title(vid, name or ref, version),
        vendor_severity=severity,
        description=text(vuln.get("description")) or text(vuln.get("detail")),
        cve_ids=cves,
        cwe_ids=cwe_ids(vuln.get("cwes")),
        other_ids=others,
        rule_id=vid,
        cvss_version=cv_version,
        cvss_vector=vector,
        cvss_score=score,
        package_name=name,
        package_version=version,
        remediation=recommendation,
        references=uniq(([source_url] if source_url else []) + [a for a in advisories if a]),
        first_seen=parse_dt(vuln.get("created")),
        status=_STATE.get((text(analysis.get("state")) or "").lower()),
        extra={k: v for k, v in (("purl", purl), ("bom_ref", ref)) if v},
        asset=asset,
    )


def vex_finding(vuln: dict[str, Any], name: str | None, version: str | None, purl: str | None = None) -> ParsedFinding:
    """One CycloneDX vulnerability (``id``, ``ratings``, ``cwes``, ``analysis.state``, ...) affecting one component
    as this format reads it: for a vendor whose API answers the same facts in its own shape (Black Duck)."""
    return _finding(vuln, (name, version, purl), None)


# --- JSON -------------------------------------------------------------------------------------

def _index_json(comp: Any, out: dict[str, Component]) -> None:
    stack = [comp]
    while stack:
        c = as_dict(stack.pop())
        ref = text(c.get("bom-ref"))
        if ref and len(out) < _MAX_COMPONENTS:
            out[ref] = (text(c.get("name")), text(c.get("version")), text(c.get("purl")))
        stack.extend(as_list(c.get("components")))


def _parse_json(src: IO[bytes], start: int) -> Iterator[ParsedFinding]:
    components: dict[str, Component] = {}
    meta = json_reader.first_value(src, "metadata.component", KEY)
    asset = None
    if meta is not None:
        _index_json(meta, components)
        m = as_dict(meta)
        asset = _asset(text(m.get("bom-ref")), text(m.get("name")), text(m.get("version")))
    src.seek(start)
    for comp in json_reader.iter_json_items(src, "components.item", KEY):
        _index_json(comp, components)
    src.seek(start)
    for vuln in json_reader.iter_json_items(src, "vulnerabilities.item", KEY):
        if not isinstance(vuln, dict):
            raise ReportError(KEY, "a vulnerability is not a JSON object", "vulnerabilities[]")
        refs = [text(as_dict(a).get("ref")) for a in as_list(vuln.get("affects"))] or [None]
        targets: list[str | None] = list(uniq(refs)) or [None]
        for ref in targets:
            yield _finding(vuln, components.get(ref or "", (None, None, None)), ref, asset)


# --- XML --------------------------------------------------------------------------------------

def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _xml_component(elem: Any) -> Component:
    return (xml_text(elem, "name"), xml_text(elem, "version"), xml_text(elem, "purl"))


def _xml_vuln(v: Any) -> dict[str, Any]:
    """An XML vulnerability (1.4+ or extension 1.0) as the JSON-shaped dict _finding reads."""
    ratings = []
    for r in (e for e in v.iter() if _local(e.tag) == "rating"):
        score = r.find("./{*}score")
        base = xml_text(r, "score/base") if score is not None and len(score) else xml_text(r, "score")
        ratings.append({"severity": xml_text(r, "severity"), "method": xml_text(r, "method"),
                        "vector": xml_text(r, "vector"), "score": base})
    cwes = [e.text for e in v.iter() if _local(e.tag) == "cwe" and e.text]
    advisories = [xml_text(a, "url") or (a.text or "").strip() for a in v.iter() if _local(a.tag) == "advisory"]
    refs = [{"id": xml_text(r, "id")} for r in v.iter() if _local(r.tag) == "reference"]
    affects = [{"ref": (t.text or "").strip()} for t in v.iter() if _local(t.tag) == "ref" and t.text]
    source = v.find("./{*}source")
    recs = [(e.text or "").strip() for e in v.iter() if _local(e.tag) in ("recommendation",) and e.text]
    state = v.find("./{*}analysis/{*}state")
    return {
        "id": xml_text(v, "id"),
        "ratings": ratings,
        "cwes": cwes,
        "description": xml_text(v, "description"),
        "detail": xml_text(v, "detail"),
        "recommendation": "\n".join(recs) or None,
        "advisories": [a for a in advisories if a],
        "references": refs,
        "affects": affects,
        "source": {"url": xml_text(source, "url") if source is not None else None},
        "created": xml_text(v, "created"),
        "analysis": {"state": state.text if state is not None else None},
        "_ref": v.get("ref"),  # extension 1.0: the affected component's bom-ref
    }


def _parse_xml(src: IO[bytes]) -> Iterator[ParsedFinding]:
    components: dict[str, Component] = {}
    asset: str | None = None
    checked = False
    for tag, elem in iter_xml(src, KEY, ("component", "vulnerability", "bom")):
        if not checked:
            root = elem.getroottree().getroot()
            if _local(root.tag) != "bom" or "cyclonedx" not in (root.tag or "").lower():
                raise not_a(KEY, WHAT, "the root element is not a CycloneDX bom", "line 1")
            checked = True
        if tag == "component":
            ref = elem.get("bom-ref")
            if ref and len(components) < _MAX_COMPONENTS:
                components[ref] = _xml_component(elem)
            if elem.getparent() is not None and _local(elem.getparent().tag) == "metadata":
                asset = _asset(ref, xml_text(elem, "name"), xml_text(elem, "version"))
            if elem.getparent() is not None and _local(elem.getparent().tag) == "components":
                clear_element(elem)
        elif tag == "vulnerability":
            vuln = _xml_vuln(elem)
            owner = elem.getparent().getparent() if elem.getparent() is not None else None
            if owner is not None and _local(owner.tag) == "component":
                # extension 1.0 nested in its component
                refs: list[str | None] = [None]
                comp = _xml_component(owner)
            else:
                refs = uniq([vuln["_ref"]] + [a["ref"] for a in vuln["affects"]]) or [None]
                comp = None
            for ref in refs:
                yield _finding(vuln, comp or components.get(ref or "", (None, None, None)), ref, asset)
            clear_element(elem)
    if not checked:
        raise not_a(KEY, WHAT, "no bom element", "line 1")


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream the vulnerabilities of a CycloneDX BOM (JSON or XML, told apart by the first byte)."""
    src, start = report.stream, report.start
    body = report.head.lstrip(b"\xef\xbb\xbf").lstrip()
    if body.startswith(b"<"):
        yield from _parse_xml(src)
        return
    if not body:
        raise ReportError(KEY, "empty file: no BOM", "byte 0")
    head = json_head(report.head)
    if head is None or head.root != "object":
        raise not_a(KEY, WHAT, "neither a JSON object nor XML")
    fmt = head.values.get("bomFormat")
    if fmt is not None and str(fmt) != "CycloneDX":
        raise not_a(KEY, WHAT, f"bomFormat is {fmt!r}", "$.bomFormat")
    if fmt is None and "specVersion" not in head.paths:
        raise not_a(KEY, WHAT, "missing bomFormat/specVersion", "$")
    yield from _parse_json(src, start)


_XML_NS = re.compile(r"cyclonedx\.org/schema/bom/")


def detect(head: bytes, filename: str | None) -> bool:
    """JSON ``bomFormat: CycloneDX``, or an XML ``bom`` in a cyclonedx.org namespace."""
    xml = xml_head(head)
    if xml is not None:
        return xml.name == "bom" and bool(_XML_NS.search(xml.namespace))
    info = json_head(head)
    return info is not None and info.root == "object" and info.values.get("bomFormat") == "CycloneDX"


FORMAT = ReportFormat(
    key=KEY,
    title="CycloneDX (JSON or XML) with vulnerabilities",
    detect=detect,
    read=parse,
    map_severity=map_by_table(SEVERITIES),
)
