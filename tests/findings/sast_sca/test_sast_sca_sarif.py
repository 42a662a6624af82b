"""SARIF streaming (tool before/after results, several runs, unseekable input), the benchmark
generator, and the depth-guarded JSON stream the SAST/SCA formats share."""

from __future__ import annotations

import importlib.util
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from pmap.findings.formats import json_reader
from pmap.findings.formats.base import HostileReportError, ReportError
from pmap.findings.formats.sast_sca import sarif

ROOT = Path(__file__).resolve().parents[3]


def _gen_module() -> Any:
    spec = importlib.util.spec_from_file_location("gen_sarif", ROOT / "bench" / "gen_sarif.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _OneWay(io.RawIOBase):
    """A stream that cannot seek (an upload being received), handing out small chunks."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buf: Any) -> int:
        chunk = self._data.read(min(len(buf), 777))
        buf[: len(chunk)] = chunk
        return len(chunk)


def _run(tool: str, level: str, n: int, tool_last: bool = False) -> dict[str, Any]:
    rules = {"tool": {"driver": {"name": tool, "rules": [{"id": "R1", "defaultConfiguration": {"level": level},
                                                          "shortDescription": {"text": f"{tool} rule"}}]}}}
    results = {"results": [{"ruleId": "R1", "message": {"text": f"hit {i}"},
                            "locations": [{"physicalLocation": {"artifactLocation": {"uri": f"f{i}.c"},
                                                                "region": {"startLine": i + 1}}}]} for i in range(n)]}
    return {**results, **rules} if tool_last else {**rules, **results}


def _parse(data: bytes) -> list[Any]:
    return list(sarif.FORMAT.parse(io.BytesIO(data)))


def test_generator_writes_parseable_sarif(tmp_path: Path) -> None:
    gen = _gen_module()
    first = gen.write_sarif(tmp_path / "a.sarif", results=300, rules=20, seed=3)
    again = gen.write_sarif(tmp_path / "b.sarif", results=300, rules=20, seed=3)
    last = gen.write_sarif(tmp_path / "c.sarif", results=300, rules=20, seed=3, tool_last=True)
    assert first.read_bytes() == again.read_bytes()  # deterministic for a seed
    doc = json.loads(first.read_bytes())
    run = doc["runs"][0]
    assert doc["version"] == "2.1.0" and len(run["tool"]["driver"]["rules"]) == 20 and len(run["results"]) == 300
    rule = run["tool"]["driver"]["rules"][0]
    assert rule["help"]["text"] and "security-severity" in rule["properties"]
    res = run["results"][0]
    assert res["partialFingerprints"] and res["locations"][0]["physicalLocation"]["region"]["startLine"]
    before, after = _parse(first.read_bytes()), _parse(last.read_bytes())
    assert len(before) == 300 and [f.fingerprint("sarif") for f in before] == [f.fingerprint("sarif") for f in after]
    assert all(f.tool == "BenchScanner" and f.cwe_ids and "security_severity" in f.extra for f in before)


@pytest.mark.parametrize("tool_last", [False, True])
def test_each_run_gets_its_own_tool_and_rules(tool_last: bool) -> None:
    doc = {"version": "2.1.0", "runs": [_run("Alpha", "error", 2, tool_last), _run("Beta", "note", 3, tool_last)]}
    findings = _parse(json.dumps(doc).encode())
    assert [(f.tool, f.vendor_severity) for f in findings] == [("Alpha", "error")] * 2 + [("Beta", "note")] * 3
    assert len({f.fingerprint("sarif") for f in findings}) == 5


def test_unseekable_stream_is_spooled() -> None:
    doc = {"version": "2.1.0", "runs": [_run("Alpha", "warning", 50, tool_last=True)]}
    findings = list(sarif.FORMAT.parse(_OneWay(json.dumps(doc).encode())))  # type: ignore[arg-type]
    assert len(findings) == 50 and all(f.tool == "Alpha" and f.title.startswith("hit") for f in findings)


def test_message_strings_fingerprints_and_levels() -> None:
    doc = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "T", "rules": [{
        "id": "C1", "messageStrings": {"default": {"text": "Variable \"{0}\" used at {1}."}}}]}},
        "results": [{"ruleIndex": 0, "message": {"id": "default", "arguments": ["ptr", "7"]},
                     "fingerprints": {"hash/v1": {"value": "nested"}}, "baselineState": "absent"},
                    {"ruleId": "C2", "level": "none", "kind": "informational", "message": {"text": "fine"}},
                    {"ruleId": "C3", "message": {"text": "x"}, "partialFingerprints": {"b": "2", "a": "1"}}]}]}
    first, third = _parse(json.dumps(doc).encode())
    assert (first.rule_id, first.title, first.extra["fingerprint"], first.status) == (
        "C1", 'Variable "ptr" used at 7.', "nested", "fixed")
    assert third.extra["fingerprint"] == "a:1|b:2" and third.vendor_severity == "warning"  # SARIF default level


def test_not_sarif_and_wrong_version() -> None:
    with pytest.raises(ReportError, match="missing 'runs'"):
        _parse(b'{"version": "2.1.0", "foo": []}')
    with pytest.raises(ReportError, match="only 2.1.0"):
        _parse(b'{"version": "1.0.0", "runs": []}')
    with pytest.raises(ReportError, match="not a JSON object"):
        _parse(b"[]")
    with pytest.raises(ReportError, match="not a JSON object"):
        _parse(b'{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "T"}}, "results": [3]}]}')


# --- the depth guard ------------------------------------------------------------------------------

class _Chunks(io.RawIOBase):
    def __init__(self, data: bytes, rng: random.Random) -> None:
        self._data, self._pos, self._rng = data, 0, rng

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = self._rng.randint(1, 9)
        out = self._data[self._pos : self._pos + n]
        self._pos += len(out)
        return out


def _nested(depth: int, rng: random.Random) -> Any:
    tricky = ['a"[{', "\\", '\\"[[', "x]}]}", "\u00e9[", "\\\\[", ""]
    value: Any = rng.choice(tricky)
    for _ in range(depth):  # depth containers around a string
        value = [rng.choice(tricky), value] if rng.random() < 0.5 else {rng.choice(tricky): value, "k": "}"}
    return value


@pytest.mark.parametrize("seed", range(40))
def test_guard_counts_depth_exactly_across_chunk_boundaries(seed: int) -> None:
    rng = random.Random(seed)
    limit = 12
    depth = rng.randint(limit - 2, limit + 2)
    data = json.dumps(_nested(depth, rng)).encode()
    guard = json_reader.DepthGuardStream(_Chunks(data, rng), "t", max_depth=limit)  # type: ignore[arg-type]
    try:
        while guard.read(64):
            pass
        refused = False
    except HostileReportError:
        refused = True
    assert refused == (depth > limit), (depth, data[:200])


def test_guarded_items_and_errors() -> None:
    assert list(json_reader.iter_json_items(io.BytesIO(b'{"a": [1, {"b": "]"}]}'), "a.item", "t")) == [1, {"b": "]"}]
    with pytest.raises(HostileReportError):
        list(json_reader.iter_json_items(io.BytesIO(b"[" * 300 + b"]" * 300), "item", "t"))
    with pytest.raises(ReportError, match="truncated"):
        list(json_reader.iter_json_items(io.BytesIO(b'{"a": [1, 2'), "a.item", "t"))
    with pytest.raises(ReportError, match="empty file"):
        json_reader.load_json(io.BytesIO(b""), "t")
    with pytest.raises(ReportError, match="trailing garbage"):
        json_reader.load_json(io.BytesIO(b'{"a": 1}{"b": 2}'), "t")
