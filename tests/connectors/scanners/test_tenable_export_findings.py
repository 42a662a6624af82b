"""A Tenable VM sync reads its export records straight into findings (no CSV written and read back), and what
it reads is exactly what the tenable_csv format reads from the CSV of the same records: the same findings, the
same identities. Constructed records differ from a plain one in one field each."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest

from pmap.connectors.vendors import _tenable_export
from pmap.findings.formats.registry import report_formats

PLAIN: dict[str, Any] = {
    "asset": {"uuid": "4d8f2b9a-0000-4000-8000-00000000a001", "hostname": "web01.example.test",
              "fqdn": "web01.example.test", "ipv4": "10.0.0.11"},
    "output": "OpenSSL 1.1.1k detected",
    "state": "OPEN",
    "severity": "high",
    "port": {"port": 443, "protocol": "TCP", "service": "www"},
    "plugin": {"id": 148125, "name": "OpenSSL 1.1.1 < 1.1.1k Multiple Vulnerabilities", "family": "Web Servers",
               "cve": ["CVE-2021-3449", "CVE-2021-3450"], "cvss3_base_score": 7.4, "risk_factor": "High",
               "solution": "Upgrade to OpenSSL version 1.1.1k or later.",
               "synopsis": "The remote service is affected by multiple vulnerabilities.",
               "description": "Several flaws.", "see_also": ["https://www.openssl.org/news/secadv/20210325.txt"],
               "cvss3_vector": {"raw": "AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"}, "vpr": {"score": 6.7},
               "epss_score": 0.12},
    "first_found": "2024-01-02T03:04:05Z",
    "last_found": "2024-01-09T03:04:05.123Z",
}


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    record = copy.deepcopy(PLAIN)
    target = record
    for key in path[:-1]:
        target = target[key]
    if value is _DROP:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return record


_DROP = object()
VARIANTS = {
    "plain": PLAIN,
    "fixed": _with(("state",), "FIXED"),
    "reopened": _with(("state",), "REOPENED"),
    "no cve": _with(("plugin", "cve"), []),
    "one cve as text": _with(("plugin", "cve"), "CVE-2024-0001"),
    "ipv6 only": _with(("asset",), {"ipv6": ["2001:db8::1"]}),
    "no fqdn": _with(("asset", "fqdn"), _DROP),
    "no port": _with(("port",), _DROP),
    "udp": _with(("port", "protocol"), "UDP"),
    "http service": _with(("port", "protocol"), "http"),
    "multi-line output with commas and quotes": _with(("output",), 'line 1, "quoted"\nline 2;\ttab\r\nline 3'),
    "unicode": _with(("plugin", "name"), "Überprüfung – 脆弱性 ✓"),
    "cvss2 only": _with(("plugin",), {**PLAIN["plugin"], "cvss3_base_score": None, "cvss3_vector": None,
                                      "cvss_base_score": 5.0, "cvss_vector": {"raw": "AV:N/AC:L/Au:N/C:P/I:N/A:N"}}),
    "severity from risk factor": _with(("severity",), None),
    "no dates": _with(("first_found",), None),
    "no plugin": _with(("plugin",), None),
    "empty name": _with(("plugin", "name"), ""),
}


def _via_csv(records: list[Any]) -> list[Any]:
    return list(report_formats()["tenable_csv"].parse(io.BytesIO(_tenable_export.to_csv(records))))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_record_reads_as_the_csv_of_it_reads(variant: str) -> None:
    records = [VARIANTS[variant]]
    assert list(_tenable_export.findings(records)) == _via_csv(records)


def test_per_cve_rows_of_one_result_merge_alike_and_identities_match() -> None:
    # consecutive records of one plugin result on one host and port merge, as CSV rows of one result do
    records = [PLAIN, _with(("plugin", "cve"), ["CVE-2021-3450", "CVE-2021-9999"]), *VARIANTS.values()]
    direct, csv = list(_tenable_export.findings(records)), _via_csv(records)
    assert direct == csv and len(direct) < len(records)
    assert [f.fingerprint("tenable_csv") for f in direct] == [f.fingerprint("tenable_csv") for f in csv]
