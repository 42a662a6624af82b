"""The SAST/SCA formats against DefectDojo's parser tests (shared/corpus, read in place).

For each record of a SAST/SCA folder: the expected PMAP format must be the one detection picks,
the parsed count of distinct fingerprints must equal DefectDojo's count unless DEVIATIONS says
otherwise (and then exactly that), and the asserted fields PMAP models must agree unless
FIELD_DEVIATIONS documents why not (each documented deviation must still occur).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pmap.findings.formats.base import ReportError, ReportFormat
from pmap.findings.formats.sast_sca import FORMATS
from tests.findings.sast_sca._sast_sca_corpus import (
    MY_FOLDERS,
    Record,
    corpus_dir,
    dd_value,
    holds,
    load_records,
    where_field_matches,
)
from tests.findings.sast_sca.sast_sca_deviations import DETECT_DEVIATIONS, DEVIATIONS, FIELD_DEVIATIONS, UNSUPPORTED

CORPUS = corpus_dir()
pytestmark = pytest.mark.skipif(
    not (CORPUS / "expectations.jsonl").is_file(),
    reason=f"scanner corpus not found at {CORPUS} (set PMAP_CORPUS_DIR)",
)
MINE = {f.key: f for f in FORMATS}


def _records() -> list[Record]:
    if not (CORPUS / "expectations.jsonl").is_file():
        return []
    return load_records(CORPUS)


def _all_formats() -> list[ReportFormat]:
    """Detection order of the registry: the VM/DAST formats (when present) before ours."""
    try:
        from pmap.findings.formats.vm_dast import FORMATS as INFRA
    except ImportError:
        INFRA = ()
    return [*INFRA, *FORMATS]


ALL = _records()
OURS = [r for r in ALL if r.folder in MY_FOLDERS and r.file]


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(65536)


def _parse(fmt: ReportFormat, path: Path) -> list[Any]:
    with path.open("rb") as fh:
        return list(fmt.parse(fh))


@pytest.mark.parametrize("rec", OURS, ids=lambda r: r.id)
def test_detection_picks_the_format(rec: Record) -> None:
    key = rec.key()
    if key is None:
        pytest.skip(f"no PMAP reader: {UNSUPPORTED[rec.path]}")
    head, name = _head(CORPUS / rec.path), Path(rec.path).name
    claimed = next((f.key for f in _all_formats() if f.detect(head, name)), None)
    if rec.path in DETECT_DEVIATIONS:
        assert claimed is None, DETECT_DEVIATIONS[rec.path]
    else:
        assert claimed == key


@pytest.mark.parametrize("rec", OURS, ids=lambda r: r.id)
def test_count_matches_or_documented(rec: Record) -> None:
    key = rec.key()
    if key is None:
        with pytest.raises(ReportError):
            _parse(MINE[{"sonarqube": "sonarqube_json"}[rec.folder]], CORPUS / rec.path)
        return
    if rec.raw.get("expect_error"):
        with pytest.raises(ReportError):
            _parse(MINE[key], CORPUS / rec.path)
        return
    findings = _parse(MINE[key], CORPUS / rec.path)
    count = len({f.fingerprint(key) for f in findings})
    if rec.path in DEVIATIONS:
        assert count == DEVIATIONS[rec.path][0], DEVIATIONS[rec.path][1]
        assert count != rec.raw["expected_findings"] or rec.raw.get("parser_args"), "stale deviation"
    else:
        assert count == rec.raw["expected_findings"]


def _check_asserts(rec: Record, fmt: ReportFormat, findings: list[Any]) -> list[tuple[str, str]]:
    """(field, message) for each modelled assert that PMAP's output does not satisfy."""
    failures = []
    for a in rec.raw["asserts"]:
        field, op = a["field"], a.get("op", "eq")
        if op in ("values_unordered", "value_counts") or (
                findings and dd_value(findings[0], field, fmt) is NotImplemented):
            continue
        if a.get("where"):
            matches: list[Any] = []
            undecided = False  # a where-field PMAP does not model: the assert is not checked
            for f in findings:
                verdicts = [where_field_matches(f, w, fmt) for w in a["where"]]
                if None in verdicts:
                    undecided = True
                    break
                if all(verdicts):
                    matches.append(f)
            if undecided:
                continue
            if not matches:
                failures.append((field, f"no finding matches {a['where']}"))
                continue
            targets = matches[-1:] if a.get("pick") == -1 else matches
        elif a.get("scope") == "all":
            targets = findings
        elif a["index"] is not None:
            if a["index"] >= len(findings):
                failures.append((field, f"index {a['index']} out of range ({len(findings)})"))
                continue
            targets = [findings[a["index"]]]
        else:
            continue
        for f in targets:
            ours = dd_value(f, field, fmt)
            if not holds(field, ours, a["value"], op, a.get("places")):
                failures.append((field, f"[{a['index']}] {field}: PMAP {ours!r} vs DefectDojo {a['value']!r} ({op})"))
    return failures


@pytest.mark.parametrize("rec", [r for r in OURS if r.raw["asserts"]], ids=lambda r: r.id)
def test_asserted_fields(rec: Record) -> None:
    key = rec.key()
    if key is None:
        pytest.skip(f"no PMAP reader: {UNSUPPORTED[rec.path]}")
    findings = _parse(MINE[key], CORPUS / rec.path)
    failures = _check_asserts(rec, MINE[key], findings)
    documented = {field for (file, field) in FIELD_DEVIATIONS if file == rec.path}
    unexplained = [msg for field, msg in failures if field not in documented]
    assert not unexplained, "\n".join(unexplained)


def test_field_deviations_still_occur() -> None:
    """A documented field deviation that no longer occurs must be removed from the list."""
    failing: set[tuple[str, str]] = set()
    for rec in OURS:
        key = rec.key()
        if key is None or not rec.raw["asserts"]:
            continue
        findings = _parse(MINE[key], CORPUS / rec.path)
        failing |= {(rec.path, field) for field, _ in _check_asserts(rec, MINE[key], findings)}
    stale = set(FIELD_DEVIATIONS) - failing
    assert not stale, f"stale FIELD_DEVIATIONS: {sorted(stale)}"


@pytest.mark.parametrize("rec", [r for r in ALL if r.file], ids=lambda r: r.id)
def test_no_foreign_file_is_claimed(rec: Record) -> None:
    """Across the whole corpus, our detectors claim only files of our own formats."""
    head, name = _head(CORPUS / rec.path), Path(rec.path).name
    claims = [f.key for f in FORMATS if f.detect(head, name)]
    if rec.folder in MY_FOLDERS and rec.key() is not None:
        assert claims in ([rec.key()], []), claims
        assert claims or rec.path in DETECT_DEVIATIONS
    else:
        assert claims == [], f"{rec.path} ({rec.folder}) claimed by {claims}"
