"""Write a realistic, large SARIF 2.1.0 file for the report-parsing benchmark.

One run of a fictional SAST tool: ``tool.driver.rules`` with help text and properties (tags with
CWE ids, precision, ``security-severity``), then results with ruleId/ruleIndex, level, message,
a physical location (artifact uri + region + snippet) and partial fingerprints. The file is
streamed to disk result by result, so memory stays flat whatever the size.

    python bench/gen_sarif.py out.sarif --results 100000 --rules 500 --seed 1
"""

from __future__ import annotations

import argparse
import hashlib
import random
from pathlib import Path
from typing import IO, Any

import orjson

_LEVELS = ("error", "warning", "note")
_LANGS = (("py", "python"), ("js", "javascript"), ("java", "java"), ("go", "go"), ("cs", "csharp"))
_TOPICS = (
    ("sql-injection", 89, "SQL query built from user-controlled sources"),
    ("xss", 79, "Cross-site scripting through unescaped output"),
    ("path-injection", 22, "Uncontrolled data used in a path expression"),
    ("command-injection", 78, "Uncontrolled command line"),
    ("weak-crypto", 327, "Use of a broken or risky cryptographic algorithm"),
    ("hardcoded-credentials", 798, "Hard-coded credentials"),
    ("ssrf", 918, "Server-side request forgery"),
    ("xxe", 611, "Resolving XML external entity in user-controlled data"),
    ("open-redirect", 601, "URL redirection from remote source"),
    ("insecure-deserialization", 502, "Deserialization of user-controlled data"),
)


def _rule(i: int, rng: random.Random) -> dict[str, Any]:
    ext, lang = _LANGS[i % len(_LANGS)]
    slug, cwe, summary = _TOPICS[i % len(_TOPICS)]
    rule_id = f"{lang}/{slug}-{i:04d}"
    score = round(rng.uniform(0.0, 10.0), 1)
    return {
        "id": rule_id,
        "name": f"{slug.title().replace('-', '')}{i}",
        "shortDescription": {"text": summary},
        "fullDescription": {"text": f"{summary}. Variant {i} of the {lang} query pack."},
        "defaultConfiguration": {"enabled": True, "level": _LEVELS[i % 3]},
        "help": {
            "text": f"# {summary}\n\nValidate or encode untrusted input before use. See CWE-{cwe}.\n" * 3,
            "markdown": f"# {summary}\n\nValidate or **encode** untrusted input before use. See [CWE-{cwe}](https://cwe.mitre.org/data/definitions/{cwe}.html).\n",
        },
        "helpUri": f"https://example.invalid/rules/{rule_id}",
        "properties": {
            "tags": ["security", f"external/cwe/cwe-{cwe:03d}", f"lang-{ext}"],
            "precision": rng.choice(("very-high", "high", "medium", "low")),
            "problem.severity": rng.choice(("error", "warning", "recommendation")),
            "security-severity": f"{score}",
        },
    }


def _result(n: int, rules: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    idx = rng.randrange(len(rules))
    rule = rules[idx]
    ext = rule["properties"]["tags"][2][5:]
    path = f"src/module{rng.randrange(400):03d}/file{rng.randrange(60):02d}.{ext}"
    line = rng.randrange(1, 4000)
    col = rng.randrange(1, 80)
    digest = hashlib.blake2b(f"{path}:{line}:{n}".encode(), digest_size=8).hexdigest()
    return {
        "ruleId": rule["id"],
        "ruleIndex": idx,
        "level": rule["defaultConfiguration"]["level"],
        "message": {"text": f"{rule['shortDescription']['text']} reaches this sink (flow #{n})."},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": path, "uriBaseId": "%SRCROOT%"},
                    "region": {
                        "startLine": line,
                        "startColumn": col,
                        "endLine": line,
                        "endColumn": col + rng.randrange(5, 40),
                        "snippet": {"text": f"    value = handler(request.args['q{n % 97}'])"},
                    },
                }
            }
        ],
        "partialFingerprints": {
            "primaryLocationLineHash": f"{digest}:1",
            "primaryLocationStartColumnFingerprint": str(col % 16),
        },
    }


def write_sarif(
    path: str | Path, results: int = 100_000, rules: int = 500, seed: int = 1, tool_last: bool = False
) -> Path:
    """Write a SARIF 2.1.0 file with one run of ``results`` results over ``rules`` rules."""
    rng = random.Random(seed)
    rule_objs = [_rule(i, rng) for i in range(max(1, rules))]
    tool = {
        "driver": {
            "name": "BenchScanner",
            "version": "4.2.0",
            "informationUri": "https://example.invalid/benchscanner",
            "rules": rule_objs,
        }
    }
    out = Path(path)
    with out.open("wb") as fh:
        _write_run(fh, tool, results, rule_objs, rng, tool_last)
    return out


def _write_run(
    fh: IO[bytes], tool: dict[str, Any], results: int, rules: list[dict[str, Any]], rng: random.Random,
    tool_last: bool,
) -> None:
    fh.write(b'{"$schema":"https://json.schemastore.org/sarif-2.1.0.json","version":"2.1.0","runs":[{')
    if not tool_last:
        fh.write(b'"tool":' + orjson.dumps(tool) + b",")
    fh.write(b'"invocations":[{"executionSuccessful":true,"endTimeUtc":"2024-05-01T12:00:00Z"}],')
    fh.write(b'"results":[')
    for n in range(results):
        if n:
            fh.write(b",")
        fh.write(orjson.dumps(_result(n, rules, rng)))
    fh.write(b"]")
    if tool_last:
        fh.write(b',"tool":' + orjson.dumps(tool))
    fh.write(b',"columnKind":"utf16CodeUnits"}]}')


def main() -> None:
    """Command line: write a benchmark SARIF file."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--results", type=int, default=100_000)
    ap.add_argument("--rules", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tool-last", action="store_true", help="write tool after results")
    args = ap.parse_args()
    out = write_sarif(args.path, args.results, args.rules, args.seed, args.tool_last)
    print(f"{out}: {out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
