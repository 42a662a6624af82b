"""SARIF 2.1.0 (OASIS Static Analysis Results Interchange Format), any producing tool.

Streaming strategy (files can hold hundreds of thousands of results):

- pass 1 streams ``runs[].tool`` objects only (rules metadata, driver name), whatever their
  position in the run; results are skipped by the C parser without being built;
- pass 2 streams ``runs[].results[]`` one result at a time. With at most one run (the usual case)
  every result belongs to that run and pass 2 is a bare C ``items`` pass; with several runs, a
  thin event filter counts run boundaries so each result gets its own run's tool and rules.

Both passes go through the depth guard of :mod:`._json`. A stream that cannot seek is spooled to
a temporary file first. Run-level dates (``invocations``) and ``artifacts`` are not read, to keep
pass 1 to one small object per run.

Severity: a rule's ``security-severity`` property (GitHub's convention, a 0-10 score banded like
CVSS) wins; otherwise the SARIF ``level``: error -> high, warning -> medium, note -> info,
none -> info. Per SARIF 3.27.10 a missing level is the rule's ``defaultConfiguration.level``,
else ``warning``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import ijson

from pmap.findings.formats.base import (
    ParsedFinding,
    ReportError,
    ReportFormat,
    Severity,
    SeverityResult,
    cvss_band,
)
from pmap.findings.formats.sast_sca import _json
from pmap.findings.formats.sast_sca._util import (
    as_dict,
    as_list,
    cve_ids,
    cwe_ids,
    cwes_in_text,
    ghsa_ids,
    has_ext,
    json_head,
    text,
    to_float,
    to_int,
)

KEY = "sarif"
_LEVELS = {"error": Severity.HIGH, "warning": Severity.MEDIUM, "note": Severity.INFO, "none": Severity.INFO}
# result kinds that report a problem (or may: "open", "review"); pass/notApplicable/informational do not
_PROBLEM_KINDS = {"fail", "open", "review"}
_PLACEHOLDER = re.compile(r"\{(\d+)\}")
_WS = re.compile(r"\s+")
_TITLE_MAX = 200


@dataclass(slots=True)
class _Rule:
    """What a rule contributes to each of its results, computed once per rule."""

    rule_id: str | None
    title: str | None
    description: str | None
    level: str | None
    cwes: list[int]
    references: list[str]
    security_severity: float | None
    messages: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Run:
    tool: str | None
    by_id: dict[str, _Rule]
    by_index: list[_Rule]
    messages: dict[str, str]


def _msg(obj: Any) -> str | None:
    return text(as_dict(obj).get("text")) or text(as_dict(obj).get("markdown"))


def _rule(raw: dict[str, Any]) -> _Rule:
    props = as_dict(raw.get("properties"))
    cwes: list[int] = []
    for rel in as_list(raw.get("relationships")):
        target = as_dict(as_dict(rel).get("target"))
        cwes += cwes_in_text(text(target.get("id")))
    cwes += cwe_ids(props.get("cwe")) + cwes_in_text([t for t in as_list(props.get("tags")) if isinstance(t, str)])
    # CodeQL tags look like "external/cwe/cwe-089"
    cwes += [int(m) for t in as_list(props.get("tags")) if isinstance(t, str) for m in re.findall(r"cwe[-/](\d+)$", t, re.I)]
    refs = [u for u in (text(raw.get("helpUri")),) if u]
    help_text = _msg(raw.get("help"))
    if help_text and help_text.startswith(("http://", "https://")) and " " not in help_text:
        refs.append(help_text)
    messages = {
        k: t for k, v in as_dict(raw.get("messageStrings")).items() if (t := _msg(v)) is not None
    }
    short, full = _msg(raw.get("shortDescription")), _msg(raw.get("fullDescription"))
    return _Rule(
        rule_id=text(raw.get("id")),
        title=short or full or text(raw.get("name")) or text(raw.get("id")),
        description=full or short or help_text,
        level=text(as_dict(raw.get("defaultConfiguration")).get("level")),
        cwes=list(dict.fromkeys(cwes)),
        references=refs,
        security_severity=to_float(props.get("security-severity")),
        messages=messages,
    )


def _run_meta(tool: Any) -> _Run:
    tool = as_dict(tool)
    driver = as_dict(tool.get("driver"))
    by_index = [_rule(r) for r in as_list(driver.get("rules")) if isinstance(r, dict)]
    by_id: dict[str, _Rule] = {}
    for ext in as_list(tool.get("extensions")):
        for r in as_list(as_dict(ext).get("rules")):
            if isinstance(r, dict) and (rule := _rule(r)).rule_id:
                by_id.setdefault(rule.rule_id, rule)
    for rule in by_index:  # the driver's own rules win over extensions'
        if rule.rule_id:
            by_id[rule.rule_id] = rule
    messages = {k: t for k, v in as_dict(driver.get("globalMessageStrings")).items() if (t := _msg(v))}
    return _Run(text(driver.get("name")), by_id, by_index, messages)


def _resolve_message(message: Any, rule: _Rule | None, run: _Run) -> str | None:
    message = as_dict(message)
    out = _msg(message)
    if out is None and (mid := text(message.get("id"))):
        out = (rule.messages.get(mid) if rule else None) or run.messages.get(mid)
    if out and "{" in out:
        args = [str(a) for a in as_list(message.get("arguments"))]
        out = _PLACEHOLDER.sub(lambda m: args[int(m.group(1))] if int(m.group(1)) < len(args) else m.group(0), out)
    return out


def _fingerprint(result: dict[str, Any]) -> str | None:
    """The tool's own identity for a result: the first ``fingerprints`` value, else all partial ones."""
    fps = result.get("fingerprints")
    if isinstance(fps, dict) and fps:
        value = next(iter(fps.values()))
        value = as_dict(value).get("value", value)  # some tools nest {"value": ...}
        return text(value)
    partial = result.get("partialFingerprints")
    if isinstance(partial, dict) and partial:
        return "|".join(
            f"{k}:{v if isinstance(v, str) else text(as_dict(v).get('value', v)) or ''}"
            for k, v in sorted(partial.items())
        )
    return None


def _ids(rule_id: str | None, cache: dict[str | None, tuple[list[str], list[str]]]) -> tuple[list[str], list[str]]:
    """CVE and other advisory ids named in a rule id (cached: rule ids repeat across results)."""
    hit = cache.get(rule_id)
    if hit is None:
        others = ghsa_ids(rule_id) + re.findall(r"\bBDSA-\d{4}-\d+\b", rule_id or "")
        hit = (cve_ids(rule_id), others)
        if len(cache) > 10_000:
            cache.clear()
        cache[rule_id] = hit
    return list(hit[0]), list(hit[1])


def _title(source: str) -> str:
    if "  " in source or "\n" in source or "\t" in source or "\r" in source:
        source = _WS.sub(" ", source).strip()
    if len(source) > _TITLE_MAX:
        source = source[: _TITLE_MAX - 1].rstrip() + "…"
    return source


def _status(result: dict[str, Any]) -> str | None:
    if result.get("baselineState") == "absent":
        return "fixed"
    for s in as_list(result.get("suppressions")):
        s = as_dict(s)
        # a suppression without a state is in force (SARIF 3.35.3); underReview/rejected are not
        if str(s.get("state") or s.get("status") or "accepted") == "accepted":
            return "suppressed"
    return None


def _finding(result: Any, run: _Run, cache: dict[str | None, tuple[list[str], list[str]]]) -> ParsedFinding | None:
    if not isinstance(result, dict):
        raise ReportError(KEY, "a result is not a JSON object", "runs[].results[]")
    kind = result.get("kind")
    if kind is not None and kind not in _PROBLEM_KINDS:
        return None
    rule_id = result.get("ruleId")
    if not isinstance(rule_id, str) or not rule_id:
        rule_id = text(as_dict(result.get("rule")).get("id"))
    rule = run.by_id.get(rule_id) if rule_id else None
    if rule is None:
        idx = to_int(result.get("ruleIndex", as_dict(result.get("rule")).get("index")))
        if idx is not None and 0 <= idx < len(run.by_index):
            rule = run.by_index[idx]
            rule_id = rule_id or rule.rule_id
    message = _resolve_message(result.get("message"), rule, run)
    title_src = message or (rule.title if rule else None) or rule_id
    if not title_src:
        raise ReportError(KEY, "a result has neither message, rule nor ruleId", "runs[].results[]")
    level = result.get("level")
    if not isinstance(level, str) or not level:
        level = (rule.level if rule else None) or "warning"

    file_path = line = None
    extra: dict[str, Any] = {}
    locations = result.get("locations")
    if isinstance(locations, list) and locations:
        loc = as_dict(locations[0])
        phys = as_dict(loc.get("physicalLocation"))
        file_path = text(as_dict(phys.get("artifactLocation")).get("uri"))
        line = to_int(as_dict(phys.get("region")).get("startLine"))
        if file_path is None:
            logical = as_list(loc.get("logicalLocations"))
            if logical and (fqn := text(as_dict(logical[0]).get("fullyQualifiedName"))):
                extra["logical_location"] = fqn
    props = as_dict(result.get("properties"))
    sec = to_float(props.get("security-severity")) if props else None
    if sec is None and rule is not None:
        sec = rule.security_severity
    if sec is not None:
        extra["security_severity"] = sec
    if (fp := _fingerprint(result)) is not None:
        extra["fingerprint"] = fp
    fixes = [t for f in as_list(result.get("fixes")) if (t := _msg(as_dict(f).get("description")))]
    cwes = (cwe_ids(props.get("cwe")) or cwes_in_text(text(props.get("cwe")))) if props else []
    description = message
    if rule and rule.description and rule.description != message:
        description = f"{message}\n\n{rule.description}" if message else rule.description
    cves, others = _ids(rule_id, cache)
    return ParsedFinding(
        title=_title(title_src),
        vendor_severity=level,
        description=description,
        cve_ids=cves,
        cwe_ids=cwes or (list(rule.cwes) if rule else []),
        other_ids=others,
        rule_id=rule_id,
        file_path=file_path,
        line=line,
        package_name=text(props.get("component")) or text(props.get("packageName")) if props else None,
        package_version=text(props.get("componentVersion")) or text(props.get("packageVersion")) if props else None,
        remediation="\n".join(fixes) or None,
        references=list(rule.references) if rule else [],
        status=_status(result),
        tool=run.tool,
        extra=extra,
    )


def _header(src: IO[bytes], start: int) -> None:
    head = json_head(src.read(65536))
    src.seek(start)
    if head is None or head.root != "object":
        raise ReportError(KEY, "not a SARIF log: the file is not a JSON object", "$")
    version = head.values.get("version")
    if version is not None and str(version) != "2.1.0":
        raise ReportError(KEY, f"unsupported SARIF version {version!r}: only 2.1.0 is read", "$.version")


def _results_multi_run(src: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """Results with their run index, for files with several runs (one Python hop per event)."""
    guard = _json.DepthGuardStream(src, KEY)
    run = [-1]

    def events() -> Iterator[tuple[str, str, Any]]:
        for ev in ijson.parse(guard, use_float=True, buf_size=1 << 18):
            if ev[0] == "runs.item" and ev[1] == "start_map":
                run[0] += 1
            yield ev

    try:
        for result in ijson.items(events(), "runs.item.results.item"):
            yield run[0], result
    except ijson.JSONError as exc:
        raise _json._json_error(KEY, exc, guard, "runs[].results[]") from None


def parse(stream: IO[bytes]) -> Iterator[ParsedFinding]:
    """Stream the findings of every run of a SARIF 2.1.0 log."""
    src = _json.rewindable(stream)
    start = src.tell()
    _header(src, start)
    runs = [_run_meta(t) for t in _json.iter_items(src, "runs.item.tool", KEY)]
    src.seek(start)
    if not runs:
        # a run SHALL have a tool: no tool means no runs (valid, empty) or not SARIF at all
        head = json_head(src.read(65536))
        src.seek(start)
        if head is None or "runs" not in head.paths:
            raise ReportError(KEY, "not a SARIF log: missing 'runs'", "$")
        runs = [_Run(None, {}, [], {})]
    if len(runs) == 1:
        only = runs[0]
        # pass 1 read the whole file through the depth guard: pass 2 need not guard again
        results = _json.iter_items(src, "runs.item.results.item", KEY, guard=False)
        pairs: Iterator[tuple[int, Any]] = ((0, r) for r in results)
    else:
        only = None
        pairs = _results_multi_run(src)
    cache: dict[str | None, tuple[list[str], list[str]]] = {}
    for idx, result in pairs:
        run = only or runs[min(idx, len(runs) - 1)]
        finding = _finding(result, run, cache)
        if finding is not None:
            yield finding


def map_severity(finding: ParsedFinding) -> SeverityResult:
    """security-severity (0-10, CVSS-like bands) first, then the SARIF level (see module doc)."""
    band = cvss_band(to_float(finding.extra.get("security_severity")))
    if band is not None:
        return SeverityResult(band, "vendor")
    sev = _LEVELS.get((finding.vendor_severity or "").strip().lower())
    if sev is not None:
        return SeverityResult(sev, "vendor")
    band = cvss_band(finding.cvss_score)
    if band is not None:
        return SeverityResult(band, "cvss")
    return SeverityResult(Severity.UNKNOWN, "unmapped")


def detect(head: bytes, filename: str | None) -> bool:
    """A JSON object with ``runs`` and a SARIF ``$schema``/``version`` 2.1.0, or a .sarif file."""
    info = json_head(head)
    if info is None or info.root != "object":
        return False
    schema = str(info.values.get("$schema") or "").lower()
    if "sarif" in schema:
        return True
    if "runs" not in info.paths:
        return False
    if str(info.values.get("version")) == "2.1.0":
        return True
    return has_ext(filename, ".sarif", ".sarif.json") and info.any("runs.item.tool", "runs.item.results")


FORMAT = ReportFormat(
    key=KEY,
    title="SARIF 2.1.0 (any tool)",
    detect=detect,
    parse=parse,
    map_severity=map_severity,
)
