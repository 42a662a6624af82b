"""Helpers shared by the SAST/SCA formats: cheap head sniffing and faithful field coercion."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import ijson

from pmap.findings.formats.base import ReportError

# --- detection --------------------------------------------------------------------------------

_HEAD_MAX_DEPTH = 6  # key paths recorded this deep; deeper structure is irrelevant to detection
_HEAD_MAX_EVENTS = 40_000


@dataclass(frozen=True, slots=True)
class JsonHead:
    """What the first bytes of a JSON file say: root type, key paths and first scalar values.

    Paths use ijson syntax (``runs.item.tool.driver.name``), recorded up to a small depth.
    """

    root: str  # "object" or "array"
    paths: frozenset[str]
    values: dict[str, Any]

    def has(self, *paths: str) -> bool:
        """True when every path was seen."""
        return all(p in self.paths for p in paths)

    def any(self, *paths: str) -> bool:
        """True when at least one path was seen."""
        return any(p in self.paths for p in paths)

    def top_keys(self) -> set[str]:
        """Keys of the root object (or of the root array's objects, as ``item.key``)."""
        return {p for p in self.paths if "." not in p}


def _strip_bom(head: bytes) -> bytes:
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return head.lstrip()


@lru_cache(maxsize=8)
def json_head(head: bytes) -> JsonHead | None:
    """Sniff a JSON head (possibly cut mid-document); None when it does not start like JSON."""
    body = _strip_bom(head)
    if not body or body[:1] not in (b"{", b"["):
        return None
    paths: set[str] = set()
    values: dict[str, Any] = {}
    stack: list[str] = []
    try:
        for n, (event, value) in enumerate(ijson.basic_parse(io.BytesIO(body), use_float=True)):
            if n > _HEAD_MAX_EVENTS or len(stack) > 64:
                break
            if event == "map_key":
                stack[-1] = value
                if len(stack) <= _HEAD_MAX_DEPTH:
                    paths.add(".".join(stack))
            elif event in ("start_map", "start_array"):
                if len(stack) < _HEAD_MAX_DEPTH and stack:
                    paths.add(".".join(stack))
                stack.append("" if event == "start_map" else "item")
            elif event in ("end_map", "end_array"):
                stack.pop()
                if not stack:
                    break
            elif len(stack) <= _HEAD_MAX_DEPTH:
                key = ".".join(stack)
                if key not in values:
                    values[key] = value[:200] if isinstance(value, str) else value
    except Exception:  # a cut or malformed head: keep what was seen
        pass
    return JsonHead("object" if body[:1] == b"{" else "array", frozenset(paths), values)


_XML_START = re.compile(rb"<([A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?)(\s[^>]*)?/?>")
_XMLNS = re.compile(rb"""xmlns(?::([\w.\-]+))?\s*=\s*["']([^"']*)["']""")


@dataclass(frozen=True, slots=True)
class XmlHead:
    """The root element of an XML head: local name, namespace URI and raw head text."""

    name: str
    namespace: str
    text: str


@lru_cache(maxsize=8)
def xml_head(head: bytes) -> XmlHead | None:
    """Sniff the root element of an XML head; None when it does not start like XML."""
    body = _strip_bom(head)
    if not body.startswith(b"<"):
        return None
    # skip the prolog, comments and processing instructions: the first plain start tag is the root
    pos = 0
    while True:
        m = _XML_START.search(body, pos)
        if m is None:
            return None
        before = body[max(0, m.start() - 4) : m.start()]
        if before.endswith(b"<!--"):
            end = body.find(b"-->", m.start())
            if end < 0:
                return None
            pos = end + 3
            continue
        break
    qname = m.group(1).decode("ascii", "replace")
    prefix, _, local = qname.rpartition(":")
    attrs = m.group(2) or b""
    namespace = ""
    for ns in _XMLNS.finditer(attrs):
        if (ns.group(1) or b"").decode() == prefix:
            namespace = ns.group(2).decode("utf-8", "replace")
    return XmlHead(local, namespace, body[:65536].decode("utf-8", "replace"))


def has_ext(filename: str | None, *exts: str) -> bool:
    """True when ``filename`` ends with one of ``exts`` (case-insensitive, with the dot)."""
    return bool(filename) and filename.lower().endswith(tuple(e.lower() for e in exts))  # type: ignore[union-attr]


# --- field coercion ---------------------------------------------------------------------------


def text(value: Any, limit: int | None = None) -> str | None:
    """A scalar as stripped text, or None for empty values and containers."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    out = str(value).strip()
    if not out:
        return None
    return out[:limit] if limit else out


def to_int(value: Any) -> int | None:
    """An int from an int, a float with no fraction or a numeric string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def to_float(value: Any) -> float | None:
    """A float from a number or a numeric string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def as_list(value: Any) -> list[Any]:
    """``value`` when it is a list, ``[value]`` for a present scalar/object, else ``[]``."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is an object, else an empty dict (vendors put null or "" in places)."""
    return value if isinstance(value, dict) else {}


def uniq(values: Iterable[Any]) -> list[Any]:
    """Distinct truthy values in first-seen order."""
    seen: set[Any] = set()
    out = []
    for v in values:
        if v and v not in seen:
            seen.add(v)
            out.append(v)
    return out


_CVE = re.compile(r"\bCVE-\d{4}-\d{4,}\b", re.IGNORECASE)
_GHSA = re.compile(r"\bGHSA(?:-[23456789cfghjmpqrvwx]{4}){3}\b", re.IGNORECASE)
_CWE = re.compile(r"^\s*(?:CWE)?[-_ ]?(\d{1,5})\b", re.IGNORECASE)
_CWE_ANY = re.compile(r"\bCWE[-_ ]?(\d{1,5})\b", re.IGNORECASE)


def _strings(values: Iterable[Any]) -> Iterator[str]:
    for v in values:
        if isinstance(v, str):
            yield v
        elif isinstance(v, list):
            yield from _strings(v)


def cve_ids(*values: Any) -> list[str]:
    """CVE ids found in strings (or lists of strings), upper-cased, in order, without repeats."""
    return uniq(m.group(0).upper() for s in _strings(values) for m in _CVE.finditer(s))


def ghsa_ids(*values: Any) -> list[str]:
    """GitHub advisory ids (GHSA-xxxx-xxxx-xxxx) found in strings, in order, without repeats."""
    return uniq("GHSA" + m.group(0)[4:].lower() for s in _strings(values) for m in _GHSA.finditer(s))


def cwe_ids(*values: Any) -> list[int]:
    """CWE numbers from ints, "79", "CWE-79" or "CWE-79: name" values (lists allowed)."""
    out: list[int] = []
    stack = list(values)
    while stack:
        v = stack.pop(0)
        if isinstance(v, list):
            stack[:0] = v
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int):
            out.append(v)
        elif isinstance(v, float) and v.is_integer():
            out.append(int(v))
        elif isinstance(v, str):
            m = _CWE.match(v)
            if m:
                out.append(int(m.group(1)))
    return uniq(c for c in out if c > 0)


def cwes_in_text(*values: Any) -> list[int]:
    """Every ``CWE-n`` mentioned anywhere in free text."""
    return uniq(int(m.group(1)) for s in _strings(values) for m in _CWE_ANY.finditer(s))


def parse_dt(value: Any) -> datetime | None:
    """An ISO-8601 date/time (``Z`` allowed) or epoch seconds/milliseconds as aware UTC; else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        secs = value / 1000 if value > 100_000_000_000 else value
        try:
            return datetime.fromtimestamp(secs, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    raw = value.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    # some tools add nanoseconds: keep microseconds
    raw = re.sub(r"(\.\d{6})\d+", r"\1", raw)
    try:
        dt = datetime.fromisoformat(raw.replace(" ", "T", 1) if "T" not in raw and ":" in raw else raw)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def cvss_version(vector: str | None) -> str | None:
    """The CVSS version a vector string declares ("3.1", "4.0"); v2 vectors have no prefix."""
    if not vector:
        return None
    m = re.match(r"\s*\(?CVSS:(\d\.\d)/", vector)
    if m:
        return m.group(1)
    if re.match(r"\s*\(?AV:[LAN]/AC:[HML]/Au:[MSN]/", vector):
        return "2.0"
    return None


def not_a(format_key: str, what: str, why: str, location: str = "$") -> ReportError:
    """The error for a file that parses but is not this format's report."""
    return ReportError(format_key, f"not a {what}: {why}", location)


def sca_title(vuln_id: str, package: str | None, version: str | None) -> str:
    """The title PMAP gives a dependency finding: ``"<id> in <package> <version>"``."""
    if not package:
        return vuln_id
    return f"{vuln_id} in {package} {version}" if version else f"{vuln_id} in {package}"


def vuln_ids(*values: Any) -> tuple[list[str], list[str]]:
    """Split advisory ids into (CVE ids, other ids such as GHSA/OSV/vendor ids), in order."""
    cves: list[str] = []
    others: list[str] = []
    for v in _strings(values):
        v = v.strip()
        if not v:
            continue
        found = cve_ids(v)
        if found and found[0] == v.upper():
            cves.append(found[0])
        else:
            others.append(v)
    return uniq(cves), uniq(others)


_PURL = re.compile(r"^pkg:[A-Za-z0-9.+-]+/(?:[^@?#]*/)?([^/@?#]+)(?:@([^?#]+))?")


def purl_name_version(purl: str | None) -> tuple[str | None, str | None]:
    """(name, version) of a package URL (``pkg:type/namespace/name@version?...``), decoded."""
    from urllib.parse import unquote

    m = _PURL.match(purl or "")
    if not m:
        return None, None
    return unquote(m.group(1)), unquote(m.group(2)) if m.group(2) else None


_CVSS3_WEIGHTS = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_CVSS3_PR = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}


def _roundup(value: float) -> float:
    """CVSS 3.1 Roundup: the smallest one-decimal number >= value (float-safe)."""
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000
    return (scaled // 10_000 + 1) / 10.0


def cvss3_base_score(vector: str | None) -> float | None:
    """The CVSS v3.0/3.1 base score a vector defines (FIRST's formula), or None if not a v3 vector.

    Used only where a report gives the vector without its score.
    """
    if not vector or not vector.startswith(("CVSS:3.0/", "CVSS:3.1/")):
        return None
    metrics = dict(p.split(":", 1) for p in vector.split("/")[1:] if ":" in p)
    try:
        scope = metrics["S"]
        w = {k: _CVSS3_WEIGHTS[k][metrics[k]] for k in _CVSS3_WEIGHTS}
        pr = _CVSS3_PR[scope][metrics["PR"]]
    except KeyError:
        return None
    iss = 1 - (1 - w["C"]) * (1 - w["I"]) * (1 - w["A"])
    impact = 6.42 * iss if scope == "U" else 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    exploitability = 8.22 * w["AV"] * w["AC"] * pr * w["UI"]
    if impact <= 0:
        return 0.0
    total = impact + exploitability if scope == "U" else 1.08 * (impact + exploitability)
    return _roundup(min(total, 10.0))
