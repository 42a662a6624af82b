"""MobSF static reports in every release's field names (issue 13, item 5), one constructed section per shape.

Shapes taken from MobSF/Mobile-Security-Framework-MobSF, ``StaticAnalyzer/views``: the report keys of
``android/db_interaction.py`` and ``ios/db_interaction.py`` (1.x-2.x ``bin_anal``, ``manifest``,
``findings``, ``packagename``; 3.x ``binary_analysis``, ``macho_analysis`` from 3.2, ``dylib_analysis`` and
``framework_analysis`` from 3.8), the Android binary rows of 3.0 (``android/binary_analysis.py``:
``title``/``stat``/``desc``/``file``) and the ELF checks from 3.2 (``common/binary/elf.py``: ``nx``,
``pie``, ``stack_canary``, ``relocation_readonly``, ``rpath``, ``runpath``, ``fortify``, ``symbol``, each
``{"is_nx"..., "severity", "description"}``), the iOS binary rows of 2.0 (``Secure``/``Insecure``/``Info``/
``Warning`` ``status``) and 3.0 (``level`` good/high/info/warning), the Mach-O checks
(``common/binary/macho.py``: ``has_nx``...), the iOS binary rule findings (``binary_rule_matcher.py``:
``detailed_desc``, ``severity``, ``cvss``, ``cwe``, ``owasp-mobile``, ``masvs``; ``findings``/``summary``
from ``process_suppression``), the code findings of 3.0 (``shared_func.add_findings``: ``path``, ``level``,
``cvss``, ``cwe``, ``owasp``), the certificate verdict of 3.0 (``certificate_status`` good/bad/missing/
warning) and rows from 3.2, and ``network_security`` as a list (3.4-3.8) and an object (3.9+).

The decision these tests hold: a row whose level says the check holds (``secure``, ``good``, ``Secure``)
and a binary protection that is in place (MobSF rates it ``info``) are not findings: each is counted as
``secure check`` (the import summary's ``skipped``); ``info`` rows of the other sections are findings of
severity info.
"""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import orjson
import pytest

from pmap.findings.formats.base import ParsedFinding, Severity
from pmap.findings.formats.registry import detect_format
from pmap.findings.formats.vm_dast import mobsf

# the keys every report of the release line has (empty sections), so each test adds the one section it is about
ANDROID = {"title": "Static Analysis", "file_name": "shop.apk", "app_name": "Shop", "md5": "0" * 32,
           "package_name": "test.shop", "manifest_analysis": [], "code_analysis": {}, "binary_analysis": []}
IOS = {"title": "Static Analysis", "file_name": "shop.ipa", "app_name": "Shop", "md5": "0" * 32,
       "bundle_id": "test.shop", "app_type": "Swift", "ats_analysis": [], "binary_analysis": {}, "code_analysis": {}}


def _parse(doc: dict[str, Any]) -> tuple[list[ParsedFinding], Counter[str]]:
    body = orjson.dumps(doc)
    fmt = detect_format(body[:65536], "report.json")
    assert fmt is not None and fmt.key == "mobsf_json"
    skipped: Counter[str] = Counter()
    return list(mobsf.FORMAT.parse(io.BytesIO(body), skipped)), skipped


def _level(f: ParsedFinding) -> Severity:
    return mobsf.map_severity(f).severity


def _elf(name: str, nx: bool) -> dict[str, Any]:
    """An ELF shared object's checks as MobSF 3.2+ writes them."""
    return {
        "name": name,
        "nx": {"is_nx": nx, "severity": "info" if nx else "high",
               "description": "The binary has NX bit set. ..." if nx else "The binary does not have NX bit set. ..."},
        "pie": {"is_pie": "Dynamic Shared Object (DSO)", "severity": "info",
                "description": "The shared object is build with -fPIC flag."},
        "stack_canary": {"has_canary": False, "severity": "high",
                         "description": "This shared object does not have a stack canary value added to the stack."},
        "relocation_readonly": {"relro": "Partial RELRO", "severity": "warning",
                                "description": "This shared object has partial RELRO enabled."},
        "rpath": {"rpath": None, "severity": "info", "description": "The shared object does not have RPATH set."},
        "runpath": {"runpath": None, "severity": "info", "description": "The shared object does not have RUNPATH set."},
        "fortify": {"is_fortified": False, "severity": "warning",
                    "description": "The shared object does not have any fortified functions."},
        "symbol": {"is_stripped": True, "severity": "info", "description": "Symbols are stripped."},
    }


def test_android_elf_checks_per_shared_object() -> None:
    doc = {**ANDROID, "binary_analysis": [_elf("lib/arm64-v8a/libshop.so", nx=False),
                                          _elf("lib/x86/libshop.so", nx=True)]}
    found, skipped = _parse(doc)
    got = sorted((f.file_path, f.rule_id, f.vendor_severity) for f in found)
    assert got == [
        ("lib/arm64-v8a/libshop.so", "binary:fortify", "warning"),
        ("lib/arm64-v8a/libshop.so", "binary:nx", "high"),
        ("lib/arm64-v8a/libshop.so", "binary:relocation_readonly", "warning"),
        ("lib/arm64-v8a/libshop.so", "binary:stack_canary", "high"),
        ("lib/x86/libshop.so", "binary:fortify", "warning"),
        ("lib/x86/libshop.so", "binary:relocation_readonly", "warning"),
        ("lib/x86/libshop.so", "binary:stack_canary", "high"),
    ]
    # the protections in place (rated info: pie, rpath, runpath, symbol; nx on x86) are checks that hold
    assert skipped == {"secure check": 4 + 5}
    nx = next(f for f in found if f.rule_id == "binary:nx")
    assert nx.title == "The binary does not have NX bit set" and _level(nx) == Severity.HIGH


def test_android_binary_rows_of_mobsf_3_0() -> None:
    rows = [{"title": "Found elf built without Position Independent Executable (PIE) flag", "stat": "high",
             "desc": "In order to prevent an attacker from reliably jumping to...",
             "file": "lib/armeabi/libfoo.so lib/x86/libfoo.so"}]
    found, skipped = _parse({**ANDROID, "binary_analysis": rows})
    (f,) = found
    assert (f.title, f.vendor_severity, f.file_path) == (rows[0]["title"], "high", "lib/armeabi/libfoo.so")
    assert f.extra["files"] == ["lib/armeabi/libfoo.so", "lib/x86/libfoo.so"] and _level(f) == Severity.HIGH
    assert skipped == Counter()


@pytest.mark.parametrize(("key", "field", "levels"), [
    ("bin_anal", "status", ("Insecure", "Warning", "Info", "Secure")),  # MobSF 1.x-2.x
    ("binary_analysis", "level", ("high", "warning", "info", "good")),  # MobSF 3.0-3.1
])
def test_ios_binary_rows_of_early_releases(key: str, field: str, levels: tuple[str, ...]) -> None:
    titles = ("Binary makes use of insecure API(s)", "Binary makes use of the malloc function",
              "Binary makes use of Logging function", "fPIE -pie flag is Found")
    rows = [{"issue": t, field: level, "description": "d", "cvss": 6.0 if level.lower() in ("insecure", "high") else 0,
             "cwe": "CWE-676" if level.lower() in ("insecure", "high") else "", "owasp": ""}
            for t, level in zip(titles, levels, strict=True)]
    found, skipped = _parse({**IOS, key: rows})
    assert [f.title for f in found] == list(titles[:3]) and skipped == {"secure check": 1}
    assert [_level(f) for f in found] == [Severity.HIGH, Severity.MEDIUM, Severity.INFO]
    assert (found[0].cwe_ids, found[0].cvss_score) == ([676], 6.0)


RULE_FINDINGS = {
    "Binary makes use of insecure API(s)": {
        "detailed_desc": "The binary may contain the following insecure API(s) _memcpy, _strlen",
        "severity": "high", "cvss": 6, "cwe": "CWE-676: Use of Potentially Dangerous Function",
        "owasp-mobile": "M7: Client Code Quality", "masvs": "MSTG-CODE-8"},
    "Binary makes use of Logging function": {
        "detailed_desc": "The binary may use _NSLog function for logging.", "severity": "info", "cvss": 7.5,
        "cwe": "CWE-532", "owasp-mobile": "", "masvs": "MSTG-STORAGE-3"},
}


@pytest.mark.parametrize("wrapped", [False, True])  # 3.2-3.5: the rules' dict; 3.6+: under findings, with a summary
def test_ios_binary_rule_findings(wrapped: bool) -> None:
    section = {"findings": RULE_FINDINGS, "summary": {"high": 1, "warning": 0, "info": 1, "secure": 0,
                                                      "suppressed": 0}} if wrapped else RULE_FINDINGS
    found, skipped = _parse({**IOS, "binary_analysis": section})
    assert [(f.title, f.vendor_severity) for f in found] == [
        ("Binary makes use of insecure API(s)", "high"), ("Binary makes use of Logging function", "info")]
    assert found[0].cwe_ids == [676] and found[0].extra["masvs"] == "MSTG-CODE-8"
    assert skipped == Counter()


MACHO = {
    "name": "Shop",
    "nx": {"has_nx": True, "severity": "info", "description": "The binary has NX bit set."},
    "pie": {"has_pie": True, "severity": "info", "description": "The binary is build with -fPIE -pie flag."},
    "stack_canary": {"has_canary": True, "severity": "info", "description": "This binary has a stack canary."},
    "arc": {"has_arc": False, "severity": "high",
            "description": "The binary is not compiled with Automatic Reference Counting (ARC) flag."},
    "rpath": {"has_rpath": True, "severity": "warning", "description": "The binary has Runpath Search Path (@rpath)."},
    "code_signature": {"has_code_signature": True, "severity": "info",
                       "description": "This binary has a code signature."},
    "encrypted": {"is_encrypted": False, "severity": "warning", "description": "This binary is not encrypted."},
    "symbol": {"is_stripped": False, "severity": "warning", "description": "Symbols are available."},
}


def test_ios_macho_dylib_and_framework_checks() -> None:
    doc = {**IOS, "macho_analysis": MACHO,
           "dylib_analysis": [{**MACHO, "name": "Frameworks/libswiftCore.dylib"}],
           "framework_analysis": [{**MACHO, "name": "Frameworks/Alamofire.framework/Alamofire"}]}
    found, skipped = _parse(doc)
    assert {f.file_path for f in found} == {"Shop", "Frameworks/libswiftCore.dylib",
                                             "Frameworks/Alamofire.framework/Alamofire"}
    assert sorted({f.rule_id or "" for f in found}) == ["binary:arc", "binary:encrypted", "binary:rpath",
                                                       "binary:symbol"]
    assert len(found) == 3 * 4 and skipped == {"secure check": 3 * 4}
    arc = next(f for f in found if f.rule_id == "binary:arc" and f.file_path == "Shop")
    assert arc.title == "The binary is not compiled with Automatic Reference Counting (ARC) flag"
    assert _level(arc) == Severity.HIGH


def test_code_analysis_of_mobsf_3_0() -> None:
    code = {"The App logs information. Sensitive information should never be logged.": {
                "path": ["com/shop/A.java", "com/shop/B.java"], "level": "info", "cvss": 7.5,
                "cwe": "CWE-532", "owasp": "M1: Improper Platform Usage"},
            "This App uses SSL certificate pinning to detect or prevent MITM attacks.": {
                "path": ["com/shop/Net.java"], "level": "good", "cvss": 0, "cwe": "", "owasp": ""},
            "App uses SQLite Database and execute raw SQL query.": {
                "path": ["com/shop/Db.java"], "level": "warning", "cvss": 5.9, "cwe": "CWE-89", "owasp": "M7"}}
    android_api = {"Java Reflection": {"path": ["com/shop/A.java"]}}  # an inventory: no level
    found, skipped = _parse({**ANDROID, "code_analysis": code, "android_api": android_api})
    assert [(f.vendor_severity, f.cwe_ids) for f in found] == [("info", [532]), ("warning", [89])]
    assert found[0].extra["files"] == ["com/shop/A.java", "com/shop/B.java"]
    assert found[1].extra["owasp_mobile"] == "M7" and found[1].cvss_score == 5.9
    assert skipped == {"secure check": 1}


@pytest.mark.parametrize("wrapped", [False, True])  # 3.2-3.5 vs 3.6+ (findings + summary)
def test_code_analysis_secure_rules_are_skipped(wrapped: bool) -> None:
    rules = {"android_ssl_pinning": {"files": {"Net.java": "12"}, "metadata": {
                 "severity": "secure", "description": "This App uses SSL certificate pinning."}},
             "android_logging": {"files": {"A.java": "3"}, "metadata": {
                 "severity": "info", "description": "The App logs information.", "cwe": "CWE-532"}}}
    section = {"findings": rules, "summary": {"secure": 1, "info": 1}} if wrapped else rules
    found, skipped = _parse({**ANDROID, "code_analysis": section})
    assert [f.rule_id for f in found] == ["code_analysis:android_logging"] and skipped == {"secure check": 1}
    assert _level(found[0]) == Severity.INFO


def test_legacy_code_findings_of_mobsf_2() -> None:
    doc = {"title": "Static Analysis", "name": "shop.apk", "md5": "0" * 32, "packagename": "test.shop",
           "certinfo": "Binary is signed", "binary_analysis": [],
           "manifest": [{"title": "Debug Enabled For App <br>[android:debuggable=true]", "stat": "high",
                         "desc": "Debugging was enabled on the app.", "name": "a_debuggable", "component": []}],
           "findings": {"Files may contain hardcoded sensitive informations like usernames, passwords, keys etc.": {
                            "level": "high", "path": ["com/shop/Config.java"]},
                        "This App uses SSL certificate pinning to detect or prevent MITM attacks.": {
                            "level": "good", "path": ["com/shop/Net.java"]}}}
    found, skipped = _parse(doc)
    assert [(f.extra["section"], f.vendor_severity) for f in found] == [("manifest_analysis", "high"),
                                                                         ("findings", "high")]
    assert found[0].title == "Debug Enabled For App [android:debuggable=true]"
    assert found[1].file_path == "com/shop/Config.java" and skipped == {"secure check": 1}


def test_certificate_verdict_of_mobsf_3_0() -> None:
    for status, level in (("bad", Severity.HIGH), ("missing", Severity.HIGH), ("warning", Severity.MEDIUM)):
        doc = {**ANDROID, "certificate_analysis": {"certificate_info": "Binary is signed\nv1 signature: True",
                                                   "certificate_status": status,
                                                   "description": "This is a debug certificate. Production ..."}}
        (f,) = _parse(doc)[0]
        assert (f.title, f.rule_id) == ("This is a debug certificate", "certificate:This is a debug certificate")
        assert _level(f) == level
    good = {**ANDROID, "certificate_analysis": {"certificate_info": "x", "certificate_status": "good",
                                                "description": "Certificate looks good."}}
    assert _parse(good) == ([], Counter({"secure check": 1}))


def test_certificate_rows_of_3_2_and_later() -> None:
    cert = {"certificate_info": "x", "certificate_findings": [
        ["good", "Application is signed with a code signing certificate"],  # 3.2-3.x: [status, description]
        ["bad", "Application is signed with v1 signature scheme, making it vulnerable to Janus vulnerability"],
        ["high", "Application signed with a debug certificate.", "Application signed with a debug certificate"],
        ["secure", "Application is signed with a code signing certificate", "Signed Application"],
        ["info", "Application is signed with v1 signature scheme", "Application vulnerable to Janus Vulnerability"],
    ], "certificate_summary": {"high": 1, "warning": 0, "info": 1}}
    found, skipped = _parse({**ANDROID, "certificate_analysis": cert})
    assert [_level(f) for f in found] == [Severity.HIGH, Severity.HIGH, Severity.INFO]
    assert skipped == {"secure check": 2}


@pytest.mark.parametrize("wrapped", [False, True])  # 3.4-3.8: a list; 3.9+: network_findings + network_summary
def test_network_security_in_both_shapes(wrapped: bool) -> None:
    rows = [{"scope": ["*"], "severity": "high",
             "description": "Base config is insecurely configured to permit clear text traffic to all domains."},
            {"scope": ["shop.test"], "severity": "secure",
             "description": "Domain config is securely configured to disallow clear text traffic to these domains."},
            {"scope": ["*"], "severity": "info",
             "description": "Base config is configured to trust system certificates."}]
    section: Any = {"network_findings": rows, "network_summary": {"high": 1, "secure": 1, "info": 1}} if wrapped \
        else rows
    found, skipped = _parse({**ANDROID, "network_security": section})
    assert [(f.vendor_severity, f.extra["scope"]) for f in found] == [("high", ["*"]), ("info", ["*"])]
    assert skipped == {"secure check": 1}


@pytest.mark.parametrize("wrapped", [False, True])  # 3.x: a list with stat; 3.9+: manifest_findings with severity
def test_manifest_in_both_shapes(wrapped: bool) -> None:
    field = "severity" if wrapped else "stat"
    rows = [{"rule": "a_debuggable", "title": "Debug Enabled For App<br>[android:debuggable=true]", field: "high",
             "description": "d", "name": "a_debuggable", "component": []},
            {"rule": "a_taskaffinity", "title": "TaskAffinity is set for activity <br>(com.shop.Main)",
             field: "medium" if not wrapped else "warning", "description": "d", "component": ["com.shop.Main"]}]
    section: Any = {"manifest_findings": rows, "manifest_summary": {"high": 1}} if wrapped else rows
    found, skipped = _parse({**ANDROID, "manifest_analysis": section})
    assert [_level(f) for f in found] == [Severity.HIGH, Severity.MEDIUM] and skipped == Counter()
    assert found[1].title == "TaskAffinity is set for activity (com.shop.Main)"


def test_api_report_drops_secure_checks_and_counts_them() -> None:
    doc = {**IOS, "macho_analysis": MACHO}
    skipped: Counter[str] = Counter()
    found = list(mobsf.api_report(doc, "test.shop", skipped))
    assert len(found) == 4 and {f.repository for f in found} == {"test.shop"} and skipped == {"secure check": 4}
    assert len(list(mobsf.api_report(doc, "test.shop"))) == 4
