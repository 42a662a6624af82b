"""Identifiers in vendor values: CVE, GHSA, CWE and advisory ids, CVSS versions and scores, package URLs.

Like :mod:`pmap.findings.formats.convert`, every function here is total (never raises on odd
input) and never invents an identifier; the exact behaviour is in each docstring and pinned by
``tests/findings/test_format_toolkit.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote

from pmap.findings.formats.convert import uniq

_CVE = re.compile(r"\bCVE-\d{4}-\d{4,}\b", re.IGNORECASE)
_GHSA = re.compile(r"\bGHSA(?:-[23456789cfghjmpqrvwx]{4}){3}\b", re.IGNORECASE)
_CWE_NAMED = re.compile(r"\bCWE[-_ :#]*(\d{1,5})\b", re.IGNORECASE)
_CWE_BARE_LIST = re.compile(r"\s*\d{1,5}(?:\s*,\s*\d{1,5})*\s*")
_CWE_LEADING = re.compile(r"\s*(\d{1,5})(?![\d.,])\b")
_NUMBER = re.compile(r"\d{1,5}")
_CVSS_PREFIX = re.compile(r"\s*\(?CVSS:(\d\.\d)/")
_CVSS2_AUTH = re.compile(r"\bAu:[NSM]\b")


def _strings(values: Iterable[Any]) -> Iterator[str]:
    for v in values:
        if isinstance(v, str):
            yield v
        elif isinstance(v, (list, tuple)):
            yield from _strings(v)


def cve_ids(*values: Any) -> list[str]:
    """Every CVE id in the given strings (lists and tuples searched, nesting allowed; other
    values ignored), upper-cased, in first-seen order, without repeats."""
    return uniq(m.group(0).upper() for s in _strings(values) for m in _CVE.finditer(s))


def ghsa_ids(*values: Any) -> list[str]:
    """GitHub advisory ids (``GHSA-xxxx-xxxx-xxxx``) in strings, as ``GHSA-`` + lower case, in
    order, without repeats."""
    return uniq("GHSA" + m.group(0)[4:].lower() for s in _strings(values) for m in _GHSA.finditer(s))


def _cwes_of(s: str) -> list[int]:
    named = _CWE_NAMED.findall(s)
    if named:
        return [int(n) for n in named]
    if _CWE_BARE_LIST.fullmatch(s):
        return [int(n) for n in _NUMBER.findall(s)]
    m = _CWE_LEADING.match(s)
    return [int(m.group(1))] if m else []


def cwe_ids(*values: Any) -> list[int]:
    """CWE numbers from the values of a CWE field, positive, in first-seen order, without repeats.

    ints and integral floats are CWE numbers (bools are not). A string gives every ``CWE-n`` it
    mentions (``CWE-79``, ``cwe 79``, ``CWE:79``, ``"XSS (CWE-79), CWE-80"``); a string with none
    gives its numbers if it is a bare list (``"79"``, ``"79, 89"``), else the number it starts
    with (``"79: XSS"``). ``"7.5"`` or ``"1,5a"`` give nothing. Lists and tuples are searched.
    For free text, where a bare number is no CWE, use :func:`cwes_in_text`.
    """
    out: list[int] = []
    stack: list[Any] = list(values)
    while stack:
        v = stack.pop(0)
        if isinstance(v, (list, tuple)):
            stack[:0] = v
        elif v is None or isinstance(v, bool):
            continue
        elif isinstance(v, int):
            out.append(v)
        elif isinstance(v, float) and v.is_integer():
            out.append(int(v))
        elif isinstance(v, str):
            out.extend(_cwes_of(v))
    return uniq(c for c in out if c > 0)


def cwes_in_text(*values: Any) -> list[int]:
    """Every ``CWE-n`` mentioned anywhere in free text (bare numbers are not CWEs here)."""
    return uniq(int(n) for s in _strings(values) for n in _CWE_NAMED.findall(s) if int(n) > 0)


def cvss_version(vector: str | None) -> str | None:
    """The CVSS version a vector string declares: ``CVSS:3.1/...`` (optionally after ``(``) gives
    ``"3.1"``; a prefix-less vector with v2's ``Au:`` metric gives ``"2.0"``; else None."""
    if not vector:
        return None
    m = _CVSS_PREFIX.match(vector)
    if m:
        return m.group(1)
    if _CVSS2_AUTH.search(vector):
        return "2.0"
    return None


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


# values some tools write in place of a fingerprint (Semgrep without an account: "requires login" on every
# result): shared by unrelated results, so they identify nothing and are treated as absent
PLACEHOLDER_FINGERPRINTS = frozenset({
    "requires login", "requires-login", "requires_login", "login required", "none", "null", "n/a", "na", "unknown",
    "0", "-", "todo",
})


def is_placeholder(value: str | None) -> bool:
    """True for a missing fingerprint or a placeholder that many results share (see PLACEHOLDER_FINGERPRINTS)."""
    return value is None or not value.strip() or value.strip().lower() in PLACEHOLDER_FINGERPRINTS
