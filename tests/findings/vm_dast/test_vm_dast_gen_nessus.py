"""The benchmark's .nessus generator writes realistic, reproducible files the parser reads fully."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

from pmap.findings.formats.base import Severity
from pmap.findings.formats.vm_dast import nessus

GEN_PATH = Path(__file__).resolve().parents[3] / "bench" / "gen_nessus.py"


def _gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pmap_bench_gen_nessus", GEN_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_generated_file_parses_to_the_requested_findings(tmp_path: Path) -> None:
    path = _gen().write_nessus(tmp_path / "g.nessus", findings=250, hosts=7, seed=3)
    assert nessus.detect(path.read_bytes()[:65536], path.name)
    with path.open("rb") as fh:
        found = list(nessus.FORMAT.parse(fh))
    assert len(found) == 250
    assert len({f.fingerprint("nessus") for f in found}) == 250  # one item per plugin per host
    assert len({f.host for f in found}) == 7
    per_finding = path.stat().st_size / 250
    assert 2500 < per_finding < 5000  # ~3.5 KB per finding, like the benchmark's 350 MB / 100k
    severities = Counter(nessus.FORMAT.map_severity(f).severity for f in found)
    assert Severity.UNKNOWN not in severities and len(severities) == 5
    rated = [f for f in found if f.vendor_severity != "0"]
    assert rated and all(f.cve_ids and f.cvss_vector and f.cvss_score for f in rated)
    assert all(f.extra.get("plugin_output") and f.description and f.remediation for f in found)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    gen = _gen()
    a = gen.write_nessus(tmp_path / "a.nessus", findings=40, hosts=3, seed=9).read_bytes()
    b = gen.write_nessus(tmp_path / "b.nessus", findings=40, hosts=3, seed=9).read_bytes()
    c = gen.write_nessus(tmp_path / "c.nessus", findings=40, hosts=3, seed=10).read_bytes()
    assert a == b and a != c


def test_fewer_findings_than_hosts(tmp_path: Path) -> None:
    path = _gen().write_nessus(tmp_path / "s.nessus", findings=3, hosts=10, seed=1)
    with path.open("rb") as fh:
        assert len(list(nessus.FORMAT.parse(fh))) == 3
