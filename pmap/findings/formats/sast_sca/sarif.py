"""SARIF 2.1.0 (OASIS Static Analysis Results Interchange Format), any producing tool.

Streaming strategy (files can hold hundreds of thousands of results):

- pass 1 streams ``runs[].tool`` objects only (rules metadata, driver name), whatever their
  position in the run; results are skipped by the C parser without being built;
- pass 2 streams ``runs[].results[]`` one result at a time. With at most one run (the usual case)
  every result belongs to that run and pass 2 is a bare C ``items`` pass; with several runs, a
  thin event filter counts run boundaries so each result gets its own run's tool and rules.

Between them, a C-speed pass reads each run's ``versionControlProvenance`` (its first ``repositoryUri``),
and, where a run has none, another its ``automationDetails.id``: every finding's ``asset``, what a full
import covers (a run that names neither leaves its findings in the stream's unnamed resource; with several
runs of which only some name it, the value they all share, if one, stands for all).

Pass 1 goes through the depth guard of :mod:`._json`. A stream that cannot seek is spooled to
a temporary file first. Run-level dates (``invocations``) and ``artifacts`` are not read, to keep
pass 1 to one small object per run.

Findings and identity (docs/finding-identity.md): a result listing several ``locations`` gives one finding
per location (PMAP's one finding per resource); rule + location is the identity, to which :func:`identity` adds
a taint flow's ends when the result is not reported at its sink, the logical location of a location without a
file, and the tool's ``fingerprints``/``partialFingerprints`` (placeholders such as ``requires login`` ignored).

Severity: a rule's ``security-severity`` property (GitHub's convention, a 0-10 score banded like
CVSS) wins; otherwise the SARIF ``level``: error -> high, warning -> medium, note -> info,
none -> info. Per SARIF 3.27.10 a missing level is the rule's ``defaultConfiguration.level``,
else ``warning``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any

import ijson

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import ParsedFinding, Report, ReportFormat, Severity, SeverityResult, cvss_band
from pmap.findings.formats.convert import as_dict, as_list, text, to_float, to_int
from pmap.findings.formats.errors import ReportError
from pmap.findings.formats.identifiers import cve_ids, cwe_ids, cwes_in_text, ghsa_ids, is_placeholder
from pmap.findings.formats.readers import mentions
from pmap.findings.formats.sniff import JsonHead, has_ext, json_head

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
    asset: str | None = None  # what the run analysed (see _run_assets)


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
    cwes += [int(m) for t in as_list(props.get("tags")) if isinstance(t, str)
             for m in re.findall(r"cwe[-/](\d+)$", t, re.I)]
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


def _fp_value(value: Any) -> str | None:
    return text(as_dict(value).get("value", value)) if isinstance(value, dict) else text(value)  # some nest {"value"}


def _tool_fingerprints(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The tool's own identity for a result: every ``fingerprints`` and ``partialFingerprints`` entry (SARIF
    3.27.16/17), sorted by key, placeholders left out."""
    out: list[tuple[str, str]] = []
    for kind in ("fingerprints", "partialFingerprints"):
        fps = result.get(kind)
        if isinstance(fps, dict):
            for k, v in sorted(fps.items(), key=lambda kv: str(kv[0])):
                if not is_placeholder(value := _fp_value(v)):
                    out.append((f"{kind}.{k}", value or ""))
    return out


def _fingerprint(result: dict[str, Any]) -> str | None:
    """The tool's fingerprint as kept in ``extra``: the first ``fingerprints`` value, else all partial ones."""
    fps = result.get("fingerprints")
    if isinstance(fps, dict) and fps:
        value = _fp_value(next(iter(fps.values())))
        return None if is_placeholder(value) else value
    partial = result.get("partialFingerprints")
    if isinstance(partial, dict) and partial:
        values = [(k, _fp_value(v)) for k, v in sorted(partial.items())]
        return "|".join(f"{k}:{v or ''}" for k, v in values if not is_placeholder(v)) or None
    return None


def _where(loc: Any) -> tuple[str | None, int | None, str | None]:
    """A location's file (artifact URI), start line and, without a file, its first logical location's name."""
    loc = as_dict(loc)
    phys = as_dict(loc.get("physicalLocation"))
    file_path = text(as_dict(phys.get("artifactLocation")).get("uri"))
    line = to_int(as_dict(phys.get("region")).get("startLine"))
    logical = None
    if file_path is None:
        names = as_list(loc.get("logicalLocations"))
        logical = text(as_dict(names[0]).get("fullyQualifiedName")) if names else None
    return file_path, line, logical


def _spot(loc: Any) -> str | None:
    file_path, line, logical = _where(loc)
    if file_path is None and logical is None:
        return None
    return f"{file_path or logical}:{line or ''}"


_ROLE = re.compile(r"\b(source|sink)\b", re.IGNORECASE)


def _flow_ends(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, sink) of each taint flow of a result: the first and last location of every ``threadFlow`` of its
    ``codeFlows`` (SARIF 3.36/3.37); without code flows, ``relatedLocations`` whose message calls them the source
    or the sink (how Semgrep, Snyk Code and others name a flow's ends)."""
    ends: list[tuple[str, str]] = []
    for flow in as_list(result.get("codeFlows")):
        for thread in as_list(as_dict(flow).get("threadFlows")):
            steps = [s for s in (_spot(as_dict(st).get("location")) for st in as_list(as_dict(thread).get("locations")))
                     if s]
            if steps:
                ends.append((steps[0], steps[-1]))
    if ends:
        return sorted(set(ends))
    roles: dict[str, list[str]] = {}
    for rel in as_list(result.get("relatedLocations")):
        role = _ROLE.search(_msg(as_dict(rel).get("message")) or "")
        if role and (spot := _spot(rel)):
            roles.setdefault(role.group(1).lower(), []).append(spot)
    if "sink" in roles:
        sources = roles.get("source") or [""]
        return sorted({(src, sink) for src in sources for sink in roles["sink"]})
    return []


def identity(result: dict[str, Any], location: Any) -> list[str]:
    """The identity parts of one location of a result (see docs/finding-identity.md):

    - where the result is reported at another place than its taint flow's sink (a tool that reports the source),
      each flow's sink and source: flows from one source into different sinks are different problems (a result
      reported at its sink, the usual case, adds nothing: flows from several sources into one sink stay one);
    - without a file, the logical location (a function, a class): otherwise every logical-only result of a rule
      would merge;
    - the tool's own ``fingerprints``/``partialFingerprints`` (placeholders left out), added to the location,
      never replacing it.
    None of these for a result with none of them, so such results keep the fingerprints earlier releases stored.
    """
    parts: list[str] = []
    here = _spot(location)
    flows = _flow_ends(result)
    if flows and any(sink != here for _src, sink in flows):
        parts += [f"flow:{src}->{sink}" for src, sink in flows]
    file_path, _line, logical = _where(location)
    if file_path is None and logical is not None:
        parts.append(f"logical:{logical}")
    parts += [f"{k}={v}" for k, v in _tool_fingerprints(result)]
    return parts


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


def _findings(result: Any, run: _Run, cache: dict[str | None, tuple[list[str], list[str]]]) -> list[ParsedFinding]:
    """The findings of one result: one per location it lists (PMAP keeps one finding per resource; a result
    with several ``locations`` is the same problem at each of them), or one without a location."""
    if not isinstance(result, dict):
        raise ReportError(KEY, "a result is not a JSON object", "runs[].results[]")
    kind = result.get("kind")
    if kind is not None and kind not in _PROBLEM_KINDS:
        return []
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

    extra: dict[str, Any] = {}
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
    base = ParsedFinding(
        title=_title(title_src),
        vendor_severity=level,
        description=description,
        cve_ids=cves,
        cwe_ids=cwes or (list(rule.cwes) if rule else []),
        other_ids=others,
        rule_id=rule_id,
        package_name=text(props.get("component")) or text(props.get("packageName")) if props else None,
        package_version=text(props.get("componentVersion")) or text(props.get("packageVersion")) if props else None,
        remediation="\n".join(fixes) or None,
        references=list(rule.references) if rule else [],
        status=_status(result),
        tool=run.tool,
        extra=extra,
        asset=run.asset,
    )
    locations = [loc for loc in as_list(result.get("locations")) if isinstance(loc, dict)] or [{}]
    seen: set[tuple[str | None, int | None, str | None]] = set()
    out: list[ParsedFinding] = []
    shared = dict(extra)  # each further location's finding gets its own copy of the lists and extra
    for loc in locations:
        where = _where(loc)
        if where in seen:  # a location listed twice is one resource
            continue
        seen.add(where)
        finding = base if not out else replace(base, cve_ids=list(cves), other_ids=list(others), extra=dict(shared),
                                               cwe_ids=list(base.cwe_ids), references=list(base.references))
        finding.file_path, finding.line = where[0], where[1]
        if where[2] is not None:
            finding.extra["logical_location"] = where[2]
        finding.identity = identity(result, loc)
        out.append(finding)
    return out


def _header(head: JsonHead) -> None:
    version = head.values.get("version")
    if version is not None and str(version) != "2.1.0":
        raise ReportError(KEY, f"unsupported SARIF version {version!r}: only 2.1.0 is read", "$.version")


def _results_multi_run(src: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """Results with their run index, for files with several runs (one Python hop per event)."""
    guard = json_reader.DepthGuardStream(src, KEY)
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
        raise json_reader.json_error(KEY, exc, guard, "runs[].results[]") from None


def _per_run(values: list[str | None], count: int) -> list[str | None]:
    """Values read one per run that has the member, as one per run: aligned when every run has it, else the
    one value they all share (or none): a run without it cannot be told from the others at C speed."""
    if len(values) == count:
        return values
    distinct = {v for v in values if v}
    return [distinct.pop() if len(distinct) == 1 else None] * count


def _run_assets(src: IO[bytes], start: int, count: int) -> list[str | None]:
    """Per run, what it analysed: the first ``versionControlProvenance[].repositoryUri``, else the run's
    ``automationDetails.id``: the ``asset`` of its findings (fingerprints leave it out). A member the file never
    names costs no pass over it (most tools write neither: two ijson passes over a large log otherwise)."""
    named = mentions(src, start, (b'"versionControlProvenance"', b'"automationDetails"'))
    if not named:
        return [None] * count
    uris: list[str | None] = []
    if b'"versionControlProvenance"' in named:
        uris = [next((u for p in as_list(v) if (u := text(as_dict(p).get("repositoryUri")))), None)
                for v in json_reader.iter_json_items(src, "runs.item.versionControlProvenance", KEY, guard=False)]
    assets = _per_run(uris, count)
    if all(assets) or b'"automationDetails"' not in named:
        return assets
    src.seek(start)
    ids = [text(as_dict(v).get("id"))
           for v in json_reader.iter_json_items(src, "runs.item.automationDetails", KEY, guard=False)]
    return [a or b for a, b in zip(assets, _per_run(ids, count), strict=True)]


def parse(report: Report) -> Iterator[ParsedFinding]:
    """Stream the findings of every run of a SARIF 2.1.0 log."""
    src, start = report.stream, report.start
    _header(report.json)
    runs = [_run_meta(t) for t in json_reader.iter_json_items(src, "runs.item.tool", KEY)]
    src.seek(start)
    if not runs:
        # a run SHALL have a tool: no tool means no runs (valid, empty) or not SARIF at all
        if "runs" not in report.json.paths:
            raise ReportError(KEY, "not a SARIF log: missing 'runs'", "$")
        runs = [_Run(None, {}, [], {})]
    for run, asset in zip(runs, _run_assets(src, start, len(runs)), strict=True):
        run.asset = asset
    src.seek(start)
    if len(runs) == 1:
        only = runs[0]
        # pass 1 read the whole file through the depth guard: later passes need not guard again
        results = json_reader.iter_json_items(src, "runs.item.results.item", KEY, guard=False)
        pairs: Iterator[tuple[int, Any]] = ((0, r) for r in results)
    else:
        only = None
        pairs = _results_multi_run(src)
    cache: dict[str | None, tuple[list[str], list[str]]] = {}
    for idx, result in pairs:
        run = only or runs[min(idx, len(runs) - 1)]
        yield from _findings(result, run, cache)


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
    read=parse,
    syntax="json",
    json_root="object",
    what="a SARIF log",
    map_severity=map_severity,
)
