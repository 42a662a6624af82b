"""Cost of the severity rule engine against the parse floor, and against the two CEL libraries.

Writes a Nessus-like report in memory (~3 KB per finding, hosts x plugins like a real scan), then:

1. the floor: a bare streaming parse (``iter_xml`` + ``clear_element``), and the same parse reading
   the fields a finding needs into a dict;
2. PMAP's engine (``RuleSet.apply``) with 20 rules on every finding: a realistic mix (about half
   indexable by ``field == const``) and a worst case (no rule indexable); and 200 regex rules over
   the ~1 KB description (issue 10 item 12: each searched alone, they cost ~750 us per finding);
3. the same 20 conditions in ``cel`` (Rust bindings) and ``celpy`` (pure Python), on a subset.

Manual use: ``python bench/rules_engine_bench.py [--findings 100000] [--rounds 3]``. Timings are
process CPU time, the best of interleaved rounds; an idle machine still gives steadier numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from pmap.findings.formats.xml_reader import clear_element, iter_xml, xml_text
from pmap.findings.rules_engine import RuleSet, RuleSpec, compile_rules

TYPICAL = [
    'severity == "critical" && vendor == "tenable"', '"CVE-2021-44228" in cve_ids',
    'host != null && host.endsWith(".dev.example")', "cvss_score != null && cvss_score >= 9.0",
    'package_name == "log4j-core"', 'title.contains("SQL")', 'size(cve_ids) == 0 && severity == "info"',
    "port == 23", 'vendor == "snyk" && file_path != null && file_path.startsWith("test/")',
    'ip.startsWith("10.0.1.")', "79 in cwe_ids", 'rule_id in ["10001", "10002", "10003", "10004"]',
    'repository == "org/legacy"', 'severity in ["high", "critical"] && vendor == "qualys"',
    'title.matches("(?i)outdated")', 'integration_id == "int-2"', 'format == "sarif" && severity == "low"',
    'host != null && host.matches("^host1[0-9]{2}\\\\.")', 'package_version == "0.0.1"',
    "cvss_score != null && cvss_score < 1.0",
]
UNINDEXED = [
    '"CVE-2021-44228" in cve_ids', 'host != null && host.endsWith(".dev.example")',
    "cvss_score != null && cvss_score >= 9.0", 'title.contains("SQL")', 'ip.startsWith("10.0.1.")',
    "79 in cwe_ids", 'title.matches("(?i)outdated")', 'host != null && host.matches("^host1[0-9]{2}\\\\.")',
    "cvss_score != null && cvss_score < 1.0", 'severity_rank >= sev("high") && title.contains("RCE")',
    'cve_ids.exists(c, c.startsWith("CVE-2024-"))', 'title.lowerAscii().contains("struts")',
    'description.contains("deprecated")', "line != null && line > 100000", 'port != null && port < 1024',
    "size(other_ids) > 3", "cvss_score != null && cvss_score > 9.5", 'host != null && host.startsWith("dc")',
    '!(vendor in ["tenable", "snyk", "qualys"])', 'title.endsWith("(Log4Shell)")',
]
_SEVERITY = {"0": "info", "1": "low", "2": "medium", "3": "high", "4": "critical"}
_WORDS = ["remote", "host", "service", "version", "affected", "vulnerability", "attacker", "request", "package",
          "update", "server"]


def nessus_report(findings: int, hosts: int = 500, plugins: int = 2000, seed: int = 1) -> bytes:
    """A .nessus-like document: ``findings`` ReportItems over ``hosts`` hosts."""
    rng = random.Random(seed)
    catalog = []
    for pid in range(plugins):
        sev = rng.choice("01234")
        title = rng.choice(["Outdated package", "SQL Injection", "Apache Struts RCE", "TLS weak cipher"]) + f" #{pid}"
        cves = "".join(f"<cve>CVE-{rng.randint(2015, 2024)}-{rng.randint(1000, 49999)}</cve>"
                       for _ in range(rng.randint(0, 3)))
        text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(80, 160)))
        catalog.append((10000 + pid, sev, title, cves, text))
    out = io.StringIO()
    out.write('<?xml version="1.0"?><NessusClientData_v2><Report name="bench">')
    per_host = max(1, findings // hosts)
    written = 0
    for h in range(hosts):
        if written >= findings:
            break
        out.write(f'<ReportHost name="host{h}.corp.example"><HostProperties>'
                  f'<tag name="host-ip">10.0.{h // 250}.{h % 250}</tag></HostProperties>')
        for _ in range(min(per_host if h < hosts - 1 else findings - written, findings - written)):
            pid, sev, title, cves, text = rng.choice(catalog)
            port = rng.choice((0, 22, 80, 443, 3389))
            out.write(f'<ReportItem port="{port}" svc_name="www" protocol="tcp" severity="{sev}" pluginID="{pid}" '
                      f'pluginName="{title}" pluginFamily="General"><description>{text}</description>'
                      f"<solution>Upgrade to the latest version.</solution><synopsis>{text[:120]}</synopsis>"
                      f"<risk_factor>High</risk_factor>{cves}<cvss3_base_score>{rng.choice(('5.3', '7.5', '9.8'))}"
                      f"</cvss3_base_score><plugin_output>{text[:600]}</plugin_output></ReportItem>")
            written += 1
        out.write("</ReportHost>")
    out.write("</Report></NessusClientData_v2>")
    return out.getvalue().encode()


def bare_parse(doc: bytes) -> int:
    """Stream every ReportItem and free it: the floor."""
    n = 0
    for _tag, elem in iter_xml(io.BytesIO(doc), "nessus", ("ReportItem",)):
        n += 1
        clear_element(elem)
    return n


def parse_findings(doc: bytes, apply: Callable[[dict[str, Any]], Any] | None = None) -> list[dict[str, Any]]:
    """Stream the report into the finding mappings the rule engine sees.

    With ``apply``, each finding goes through it as soon as it is built, as in an import (the
    finding is still in the CPU cache), and nothing is kept.
    """
    found: list[dict[str, Any]] = []
    host = ip = None
    for tag, elem in iter_xml(io.BytesIO(doc), "nessus", ("ReportItem", "tag", "ReportHost")):
        if tag == "tag" and elem.get("name") == "host-ip":
            ip = elem.text
            continue
        if tag == "ReportHost":
            clear_element(elem)
            continue
        if tag != "ReportItem":
            continue
        host = elem.getparent().get("name")
        cvss = xml_text(elem, "cvss3_base_score")
        finding = {
            "title": elem.get("pluginName"), "description": xml_text(elem, "description"),
            "severity": _SEVERITY.get(elem.get("severity") or "", "unknown"), "vendor_severity": elem.get("severity"),
            "cve_ids": [c.text for c in elem if c.tag == "cve"], "cwe_ids": [], "other_ids": [],
            "rule_id": elem.get("pluginID"), "cvss_score": float(cvss) if cvss else None, "cvss_vector": None,
            "host": host, "ip": ip, "port": int(elem.get("port") or 0), "protocol": elem.get("protocol"),
            "url": None, "parameter": None, "repository": None, "file_path": None, "line": None,
            "package_name": None, "package_version": None, "fixed_version": None, "vendor": "tenable",
            "integration_id": "int-1", "format": "nessus", "tags": [],
        }
        if apply is None:
            found.append(finding)
        else:
            apply(finding)
        clear_element(elem)
    return found


def best_of(fn: Callable[[], Any], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


REGEXES = [f'description.matches("(?i)word{i}|thing{i}")' for i in range(200)]


def pmap_rules(conditions: Sequence[str]) -> RuleSet:
    actions = [("set_severity", "high"), ("suppress", None), ("tag", "t")]
    return compile_rules([RuleSpec(f"r{i}", f"r{i}", c, *actions[i % 3], i) for i, c in enumerate(conditions)])


def cel_rust(conditions: Sequence[str]) -> Callable[[list[dict[str, Any]]], None]:
    import cel

    programs = [cel.compile(c) for c in conditions]

    def run(findings: list[dict[str, Any]]) -> None:
        for f in findings:
            ctx = cel.Context(f)
            for p in programs:
                with contextlib.suppress(Exception):  # CEL errors are non-matches here
                    p.execute(ctx)
    return run


def cel_python(conditions: Sequence[str]) -> Callable[[list[dict[str, Any]]], None]:
    import celpy

    env = celpy.Environment()
    programs = [env.program(env.compile(c)) for c in conditions]

    def run(findings: list[dict[str, Any]]) -> None:
        for f in findings:
            activation = celpy.json_to_cel(f)
            for p in programs:
                with contextlib.suppress(Exception):  # CEL errors are non-matches here
                    p.evaluate(activation)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.findings
    doc = nessus_report(n)
    findings = parse_findings(doc)
    assert len(findings) == n and bare_parse(doc) == n
    rule_sets = {"realistic": pmap_rules(TYPICAL), "none indexable": pmap_rules(UNINDEXED),
                 "description regexes": pmap_rules(REGEXES)}
    # interleaved rounds, best of each: other work on the machine disturbs one round, not the minimum
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        runs: dict[str, Callable[[], Any]] = {
            "bare": lambda: bare_parse(doc),
            "dict": lambda: parse_findings(doc, apply=lambda f: None),
            **{label: partial(parse_findings, doc, apply=rs.apply) for label, rs in rule_sets.items()},
        }
        for label, fn in runs.items():
            best[label] = min(best.get(label, float("inf")), best_of(fn, 1) / n * 1e6)
    floor, with_fields = best["bare"], best["dict"]
    print(f"{n} findings, {len(doc) / n:.0f} bytes each (CPU time, best of {args.rounds} interleaved rounds)")
    print(f"floor: bare streaming parse {floor:.2f} us/finding; parse + building the finding dict {with_fields:.2f}")
    for label, rs in rule_sets.items():
        added = best[label] - with_fields
        indexed = sum(1 for r in rs.rules if r.index)
        print(f"pmap engine, {len(rs)} rules {label} ({indexed} indexed): +{added:.2f} us/finding in the import loop = "
              f"{added / floor:.0%} of the bare parse, {added / with_fields:.0%} of parse + dict; "
              f"+{added * n / 1e6:.2f} s per {n}")
    sub = findings[:2000]
    for label, make, size in (("cel (Rust)", cel_rust, 2000), ("celpy", cel_python, 200)):
        try:
            run = make(TYPICAL)
        except ImportError:
            print(f"{label}: not installed")
            continue
        cost = best_of(partial(run, sub[:size]), 1) / size * 1e6
        print(f"{label}, 20 rules realistic: {cost:.1f} us/finding")


if __name__ == "__main__":
    main()
