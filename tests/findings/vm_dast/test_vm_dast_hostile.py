"""Hostile and broken inputs: every format refuses them with a ReportError, quickly.

The timeout marker is a hang guard, not a timing assertion.
"""

from __future__ import annotations

import io
import random

import pytest

from pmap.findings.formats.base import HostileReportError, ReportError, ReportFormat
from pmap.findings.formats.vm_dast import FORMATS

pytestmark = pytest.mark.timeout(30)
BY_KEY = {f.key: f for f in FORMATS}

# a small valid document per XML format, and its root start tag for hostile wrappers
XML_SAMPLES: dict[str, bytes] = {
    "nessus": b'<?xml version="1.0" ?>\n<NessusClientData_v2><Report name="r"><ReportHost name="10.0.0.1">'
    b'<HostProperties><tag name="host-ip">10.0.0.1</tag></HostProperties>'
    b'<ReportItem port="443" svc_name="www" protocol="tcp" severity="2" pluginID="1" pluginName="p">'
    b'<description>d</description></ReportItem></ReportHost></Report></NessusClientData_v2>\n',
    "qualys_xml": b'<?xml version="1.0"?>\n<ASSET_DATA_REPORT><HOST_LIST><HOST><IP>10.0.0.1</IP><VULN_INFO_LIST>'
    b'<VULN_INFO><QID id="qid_6">6</QID><TYPE>Vuln</TYPE></VULN_INFO></VULN_INFO_LIST></HOST></HOST_LIST>'
    b'<GLOSSARY><VULN_DETAILS_LIST><VULN_DETAILS id="qid_6"><QID>6</QID><TITLE>t</TITLE><SEVERITY>3</SEVERITY>'
    b'</VULN_DETAILS></VULN_DETAILS_LIST>'
    b"</GLOSSARY></ASSET_DATA_REPORT>\n",
    "openvas_xml": b'<?xml version="1.0"?>\n<report format_id="a"><report><results><result id="r"><name>n</name>'
    b'<host>10.0.0.1</host><port>22/tcp</port><nvt oid="1.2"><name>n</name></nvt><threat>High</threat>'
    b"<severity>7.5</severity></result></results></report></report>\n",
    "nexpose_xml": b'<?xml version="1.0"?>\n<NexposeReport version="2.0"><nodes><node address="10.0.0.1"><tests>'
    b'<test id="t1" status="vulnerable-exploited"/></tests></node></nodes><VulnerabilityDefinitions>'
    b'<vulnerability id="t1" title="T" severity="5"/></VulnerabilityDefinitions></NexposeReport>\n',
    "burp_xml": b'<?xml version="1.0"?>\n<issues burpVersion="2023.1"><issue><serialNumber>1</serialNumber>'
    b'<type>1</type><name>n</name><host ip="10.0.0.1">http://a</host><path>/x</path><location>/x</location><severity>High</severity>'
    b"</issue></issues>\n",
    "zap_xml": b'<?xml version="1.0"?>\n<OWASPZAPReport version="2.11"><site name="http://a"><alerts><alertitem>'
    b"<pluginid>1</pluginid><name>n</name><riskcode>2</riskcode><instances><instance><uri>http://a/x</uri></instance>"
    b"</instances></alertitem></alerts></site></OWASPZAPReport>\n",
    "acunetix_xml": b'<?xml version="1.0"?>\n<ScanGroup><Scan><StartURL>http://a</StartURL><ReportItems><ReportItem>'
    b"<Name>n</Name><Affects>/x</Affects><Severity>high</Severity></ReportItem></ReportItems></Scan></ScanGroup>\n",
    "nmap_xml": b'<?xml version="1.0"?>\n<nmaprun scanner="nmap" start="1"><host>'
    b'<address addr="10.0.0.1" addrtype="ipv4"/><ports><port protocol="tcp" portid="22"><state state="open"/>'
    b'</port></ports></host></nmaprun>\n',
    "masscan": b'<?xml version="1.0"?>\n<nmaprun scanner="masscan" start="1"><host>'
    b'<address addr="10.0.0.1" addrtype="ipv4"/><ports><port protocol="tcp" portid="22"><state state="open"/>'
    b'</port></ports></host></nmaprun>\n',
}
JSON_SAMPLES: dict[str, tuple[bytes, bytes]] = {
    # key: (valid document, prefix that passes the shape checks before deep nesting)
    "zap_json": ((b'{"@programName":"ZAP","@version":"2","@generated":"x","site":[{"@name":"http://a","alerts":'
                 b'[{"pluginid":"1","name":"n","riskcode":"2","instances":[{"uri":"http://a/x"}]}]}]}'),
                 b'{"@programName":"ZAP","@version":"2","@generated":"x","site":[{"alerts":['),
    "invicti_json": ((b'{"Generated":"x","Target":{"ScanId":"1"},"Vulnerabilities":[{"Url":"http://a/","Name":"n",'
                     b'"Severity":"High","Type":"T"}]}'),
                     b'{"Generated":"x","Target":{"ScanId":"1"},"Vulnerabilities":['),
    "acunetix360_json": ((b'{"Generated":"Acunetix360","Target":{"ScanId":"1"},"Vulnerabilities":[{"Url":"http://a/",'
                         b'"Name":"n","Severity":"High","Type":"T"}]}'),
                         b'{"Generated":"Acunetix360","Target":{"ScanId":"1"},"Vulnerabilities":['),
    "nuclei_json": (b'[{"template-id":"t","info":{"name":"n","severity":"low"},"matched-at":"http://a/x"}]', b"["),
    "masscan": (b'[{"ip":"10.0.0.1","timestamp":"1","ports":[{"port":80,"proto":"tcp","status":"open"}]}]', b"["),
    "mobsf_json": ((b'{"app_name":"a","file_name":"a.apk","md5":"0","permissions":{"android.permission.INTERNET":'
                   b'{"status":"normal"}},"code_analysis":{},"manifest_analysis":{}}'),
                   b'{"app_name":"a","permissions":'),
}
CSV_SAMPLES: dict[str, bytes] = {
    "tenable_csv": b"Plugin ID,CVE,CVSS,Risk,Host,Protocol,Port,Name\n1,,5.0,Medium,10.0.0.1,tcp,443,p\n",
    "qualys_csv": b'"IP","DNS","QID","Title","Type","Severity","Port","Protocol"\n"10.0.0.1","a","6","t","Vuln","3",'
                  b'"22","tcp"\n',
    "qualys_vmdr_csv": b'"QID","Title","Severity","Asset Id","Asset Name","Asset IPV4"\n"6","t","3","1","a",'
                       b'"10.0.0.1"\n',
    "openvas_csv": b"IP,Hostname,Port,Port Protocol,CVSS,Severity,NVT Name,NVT OID\n10.0.0.1,a,22,tcp,5.0,Medium,n,"
                   b"1.2\n",
}
EMPTY_IS_EMPTY_SCAN = {"nuclei_json", "masscan"}  # these tools write an empty file when nothing was found

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + b"".join(b' <!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
               for i in range(1, 10))
    + b"]>\n<ROOT>&lol9;</ROOT>\n"
)
XXE = b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<ROOT>&xxe;</ROOT>\n'
PARAMETER_ENTITY = (b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>\n'
                    b'<ROOT/>\n')
EXTERNAL_DTD_REF = b'<?xml version="1.0"?>\n<!DOCTYPE r SYSTEM "file:///etc/passwd">\n<ROOT>&xxe;</ROOT>\n'


def _root_of(key: str) -> bytes:
    sample = XML_SAMPLES[key]
    start = sample.index(b"<", sample.index(b"?>"))
    return sample[start + 1 : sample.index(b">", start)].split(b" ")[0]


def _run(fmt: ReportFormat, data: bytes) -> list[object]:
    return list(fmt.parse(io.BytesIO(data)))


def _garbage(n: int = 8192) -> bytes:
    return random.Random(7).randbytes(n)


@pytest.mark.parametrize("key", sorted(XML_SAMPLES))
def test_xml_sample_is_valid(key: str) -> None:
    """The fixtures themselves parse, so the refusals below are about the attack, not the shape."""
    assert len(_run(BY_KEY[key], XML_SAMPLES[key])) == 1


@pytest.mark.parametrize("key", sorted(XML_SAMPLES))
@pytest.mark.parametrize("doc", [BILLION_LAUGHS, XXE, PARAMETER_ENTITY], ids=["billion-laughs", "xxe",
                                                                              "parameter-entity"])
def test_xml_entities_are_refused_as_hostile(key: str, doc: bytes) -> None:
    data = doc.replace(b"ROOT", _root_of(key))
    with pytest.raises(HostileReportError):
        _run(BY_KEY[key], data)


@pytest.mark.parametrize("key", sorted(XML_SAMPLES))
def test_external_dtd_is_never_loaded(key: str) -> None:
    """A DOCTYPE naming an external DTD is ignored; an entity it would define stays undefined."""
    data = EXTERNAL_DTD_REF.replace(b"ROOT", _root_of(key))
    with pytest.raises(ReportError) as err:
        _run(BY_KEY[key], data)
    assert "root:" not in str(err.value)  # nothing of /etc/passwd leaks into the message


@pytest.mark.parametrize("key", sorted(XML_SAMPLES))
def test_xml_truncated_is_a_report_error(key: str) -> None:
    sample = XML_SAMPLES[key]
    with pytest.raises(ReportError) as err:
        _run(BY_KEY[key], sample[: len(sample) * 2 // 3])
    assert err.value.location and err.value.location.startswith("line")


@pytest.mark.parametrize("key", sorted(XML_SAMPLES) + sorted(JSON_SAMPLES) + sorted(CSV_SAMPLES))
def test_random_bytes_are_a_report_error(key: str) -> None:
    with pytest.raises(ReportError):
        _run(BY_KEY[key], _garbage())


@pytest.mark.parametrize("key", sorted(set(XML_SAMPLES) | set(JSON_SAMPLES) | set(CSV_SAMPLES)))
def test_empty_file(key: str) -> None:
    if key in EMPTY_IS_EMPTY_SCAN:
        assert _run(BY_KEY[key], b"") == []
        assert _run(BY_KEY[key], b"  \n") == []
    else:
        with pytest.raises(ReportError):
            _run(BY_KEY[key], b"")


@pytest.mark.parametrize("key", sorted(JSON_SAMPLES))
def test_json_sample_is_valid(key: str) -> None:
    assert len(_run(BY_KEY[key], JSON_SAMPLES[key][0])) == 1


@pytest.mark.parametrize("key", sorted(JSON_SAMPLES))
def test_json_nested_a_million_levels_is_hostile(key: str) -> None:
    prefix = JSON_SAMPLES[key][1]
    with pytest.raises(HostileReportError):
        _run(BY_KEY[key], prefix + b"[" * 1_000_000)


def test_json_lines_nested_a_million_levels_is_hostile() -> None:
    with pytest.raises(HostileReportError):
        _run(BY_KEY["nuclei_json"], b'{"a":' * 1_000_000 + b"\n")


@pytest.mark.parametrize("key", sorted(JSON_SAMPLES))
def test_json_truncated_is_a_report_error(key: str) -> None:
    doc = JSON_SAMPLES[key][0]
    with pytest.raises(ReportError):
        _run(BY_KEY[key], doc[: len(doc) - 7])


@pytest.mark.parametrize("key", ["zap_json", "invicti_json", "acunetix360_json", "mobsf_json", "nuclei_json",
                                 "masscan"])
def test_json_of_another_shape_is_a_report_error(key: str) -> None:
    """Valid JSON that is not this format's report fails with a message, not a KeyError."""
    for doc in (b'{"foo": 1}', b"[1, 2, 3]", b'"text"', b"42"):
        with pytest.raises(ReportError):
            _run(BY_KEY[key], doc)


@pytest.mark.parametrize("key", sorted(CSV_SAMPLES))
def test_csv_sample_is_valid(key: str) -> None:
    assert len(_run(BY_KEY[key], CSV_SAMPLES[key])) == 1


@pytest.mark.parametrize("key", sorted(CSV_SAMPLES))
def test_csv_without_its_header_is_a_report_error(key: str) -> None:
    with pytest.raises(ReportError) as err:
        _run(BY_KEY[key], b"a,b,c\n1,2,3\n")
    assert "header" in err.value.message


@pytest.mark.parametrize("key", sorted(CSV_SAMPLES))
def test_csv_with_nul_bytes_is_a_report_error(key: str) -> None:
    with pytest.raises(ReportError):
        _run(BY_KEY[key], CSV_SAMPLES[key].replace(b",", b"\x00,", 1))


@pytest.mark.parametrize("key", sorted(XML_SAMPLES))
def test_xml_of_another_vendor_is_a_report_error(key: str) -> None:
    other = XML_SAMPLES["burp_xml" if key != "burp_xml" else "nessus"]
    with pytest.raises(ReportError) as err:
        _run(BY_KEY[key], other)
    assert "root element" in err.value.message



@pytest.mark.parametrize("key", sorted(XML_SAMPLES))
@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-32"])
def test_entities_in_a_utf16_or_utf32_document_are_refused(key: str, codec: str) -> None:
    """The parser reads UTF-16/32 from the first bytes: ``<!ENTITY`` is not those bytes there, and an
    entity in an attribute value would be expanded."""
    doc = BILLION_LAUGHS.replace(b"<ROOT>&lol9;</ROOT>", b'<ROOT a="&lol3;"/>').replace(b"ROOT", _root_of(key))
    with pytest.raises(ReportError):
        _run(BY_KEY[key], doc.decode().encode(codec))


def test_an_xxe_payload_quoted_as_evidence_is_not_mistaken_for_an_attack() -> None:
    """Burp writes requests in CDATA: the report of an XXE finding carries the attack as text."""
    evidence = (b'<requestresponse><request base64="false"><![CDATA[POST /api HTTP/1.1\r\n\r\n<?xml version="1.0"?>'
                b'<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>]]></request></requestresponse>')
    doc = XML_SAMPLES["burp_xml"].replace(b"</issue>", evidence + b"</issue>")
    assert len(_run(BY_KEY["burp_xml"], doc)) == 1


@pytest.mark.parametrize("key", sorted(XML_SAMPLES))
def test_a_doctype_behind_a_prolog_longer_than_the_checked_head_is_refused(key: str) -> None:
    """The root check before the parse refuses what the parse would: hostile, not 'no root element'."""
    filler = b"<!--" + b"x" * 70_000 + b"-->\n"
    doc = b'<?xml version="1.0"?>\n' + filler + b'<!DOCTYPE r [<!ENTITY x "y">]>\n<' + _root_of(key) + b"/>\n"
    with pytest.raises(HostileReportError):
        _run(BY_KEY[key], doc)
