"""Format behaviour beyond the corpus: shapes the corpus lacks, two-pass reading of
non-seekable streams, tolerated DOCTYPEs, merging rules and severity mappings."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest

from pmap.findings.formats.base import (
    HostileReportError,
    ParsedFinding,
    ReportError,
    Severity,
)
from pmap.findings.formats.vm_dast import FORMATS

BY_KEY = {f.key: f for f in FORMATS}


class OneWay(io.RawIOBase):
    """A non-seekable stream (an upload body), read in small chunks."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray) -> int:  # type: ignore[override]
        chunk = self._data.read(min(len(buf), 977))
        buf[: len(chunk)] = chunk
        return len(chunk)


def parse(key: str, data: bytes, one_way: bool = False) -> list[ParsedFinding]:
    stream = io.BufferedReader(OneWay(data)) if one_way else io.BytesIO(data)  # type: ignore[type-var]
    return list(BY_KEY[key].parse(stream))


def severity(key: str, f: ParsedFinding) -> tuple[Severity, str]:
    r = BY_KEY[key].map_severity(f)
    return r.severity, r.source


QUALYS_ADR = b"""<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE ASSET_DATA_REPORT SYSTEM "https://qualysguard.qualys.com/asset_data_report.dtd">
<ASSET_DATA_REPORT><HOST_LIST><HOST><IP>10.0.0.5</IP><DNS><![CDATA[web1.example.com]]></DNS>
<VULN_INFO_LIST><VULN_INFO><QID id="qid_370876">370876</QID><TYPE>Practice</TYPE><PORT>443</PORT>
<PROTOCOL>tcp</PROTOCOL>
<RESULT><![CDATA[evidence]]></RESULT><FIRST_FOUND>2020-10-15T12:16:23Z</FIRST_FOUND><LAST_FOUND>2021-04-19T02:35:28Z</LAST_FOUND>
<VULN_STATUS>Active</VULN_STATUS><CVSS3_FINAL>8.2</CVSS3_FINAL></VULN_INFO>
<VULN_INFO><QID id="qid_6">6</QID><TYPE>Ig</TYPE><RESULT>names</RESULT></VULN_INFO></VULN_INFO_LIST></HOST></HOST_LIST>
<GLOSSARY><VULN_DETAILS_LIST><VULN_DETAILS id="qid_370876"><QID id="qid_370876">370876</QID>
<TITLE><![CDATA[AMD Processors Multiple Security Vulnerabilities]]></TITLE><SEVERITY>4</SEVERITY>
<CATEGORY>Local</CATEGORY>
<THREAT><![CDATA[AMD processors contain flaws.<BR>More.]]></THREAT><SOLUTION><![CDATA[Patch.<P>]]></SOLUTION>
<CVSS3_SCORE><CVSS3_BASE>9.0 (AV:N/AC:H/PR:N/UI:N/S:C/C:H/I:H/A:H)</CVSS3_BASE></CVSS3_SCORE>
<CVE_ID_LIST><CVE_ID><ID><![CDATA[CVE-2018-8930]]></ID><URL><![CDATA[http://cve.example/CVE-2018-8930]]></URL></CVE_ID></CVE_ID_LIST>
</VULN_DETAILS><VULN_DETAILS id="qid_6"><QID id="qid_6">6</QID><TITLE>DNS Host Name</TITLE><SEVERITY>3</SEVERITY>
</VULN_DETAILS>
</VULN_DETAILS_LIST></GLOSSARY></ASSET_DATA_REPORT>
"""


@pytest.mark.parametrize("one_way", [False, True], ids=["seekable", "non-seekable"])
def test_qualys_asset_report_joins_the_glossary(one_way: bool) -> None:
    amd, dns = parse("qualys_xml", QUALYS_ADR, one_way)
    assert (amd.title, amd.rule_id, amd.host, amd.ip, amd.port, amd.protocol) == (
        "AMD Processors Multiple Security Vulnerabilities", "370876", "web1.example.com", "10.0.0.5", 443, "tcp")
    assert amd.cve_ids == ["CVE-2018-8930"]
    assert (amd.cvss_score, amd.cvss_vector) == (9.0, "CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:C/C:H/I:H/A:H")
    assert amd.extra["cvss3_final"] == 8.2 and amd.extra["qualys_type"] == "potential"
    assert amd.description == "AMD processors contain flaws.\nMore." and amd.remediation == "Patch."
    assert amd.first_seen == datetime(2020, 10, 15, 12, 16, 23, tzinfo=UTC) and amd.status == "active"
    assert severity("qualys_xml", amd) == (Severity.HIGH, "vendor")
    assert dns.title == "DNS Host Name" and severity("qualys_xml", dns) == (Severity.INFO, "vendor")


def test_qualys_detection_list_without_glossary() -> None:
    data = b"""<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE HOST_LIST_VM_DETECTION_OUTPUT SYSTEM "https://qualysapi.qualys.com/api/2.0/fo/asset/host/vm/detection/host_list_vm_detection_output.dtd">
<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><HOST_LIST><HOST><ID>1</ID><IP>10.0.0.9</IP><DNS>db1</DNS><DETECTION_LIST>
<DETECTION><QID>38739</QID><TYPE>Confirmed</TYPE><SEVERITY>5</SEVERITY><PORT>22</PORT><PROTOCOL>tcp</PROTOCOL>
<RESULTS>weak cipher</RESULTS><STATUS>Fixed</STATUS><FIRST_FOUND_DATETIME>2024-01-02T03:04:05Z</FIRST_FOUND_DATETIME>
</DETECTION></DETECTION_LIST></HOST></HOST_LIST></RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>"""
    (f,) = parse("qualys_xml", data)
    assert (f.title, f.rule_id, f.host, f.ip, f.port, f.status) == ("QID 38739", "38739", "db1", "10.0.0.9", 22,
                                                                    "fixed")
    assert severity("qualys_xml", f) == (Severity.CRITICAL, "vendor") and f.extra["result"] == "weak cipher"


def test_qualys_scan_csv_with_preamble_and_pci_report() -> None:
    scan = (b'"Scan Results","report"\n"Company","x"\n\n'
            b'"IP","DNS","NetBIOS","QID","Title","Vuln Status","Type","Severity","Port","Protocol","FQDN","First'
            b' Detected",'
            b'"Last Detected","CVE ID","Vendor Reference","CVSS3 Base","Threat","Solution"\n'
            b'"10.0.0.1","h1","","91762","Windows update","Active","Vuln","5","","","","05/13/2021 07:08:28",'
            b'"05/25/2021 07:36:58",'
            b'"CVE-2021-31192, CVE-2021-31188","KB5003169","9.9 (AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H)","<P>threat","see https://msrc.example/x"\n')
    (f,) = parse("qualys_csv", scan)
    assert (f.title, f.rule_id, f.host, f.ip, f.vendor_severity) == ("Windows update", "91762", "h1", "10.0.0.1", "5")
    assert f.cve_ids == ["CVE-2021-31192", "CVE-2021-31188"] and f.other_ids == ["KB5003169"]
    assert (f.cvss_score, f.cvss_vector) == (9.9, "CVSS:3.0/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H")
    assert f.first_seen == datetime(2021, 5, 13, 7, 8, 28, tzinfo=UTC) and f.status == "active"
    assert f.references == ["https://msrc.example/x"] and severity("qualys_csv", f)[0] == Severity.CRITICAL
    pci = (b"IP,HOSTNAME,LAST SCAN,QID,VULN TITLE,TYPE,SEVERITY,PORT,PROTOCOL,FALSE POSITIVE STATUS,CVSS_BASE,"
           b"Q_SEVERITY,CVEID\n"
           b"192.168.0.1,abv.example,22/09/2022 13:01,86476,Web Server Stopped Responding,POTENTIAL,Medium,80,tcp,"
           b"Requested,6.4,3,\n")
    (p,) = parse("qualys_csv", pci)
    assert (p.title, p.host, p.port, p.vendor_severity, p.cvss_score) == ("Web Server Stopped Responding",
                                                                          "abv.example", 80, "3", 6.4)
    assert p.last_seen == datetime(2022, 9, 22, 13, 1, tzinfo=UTC) and severity("qualys_csv", p)[0] == Severity.MEDIUM


@pytest.mark.parametrize("one_way", [False, True], ids=["seekable", "non-seekable"])
def test_nexpose_definitions_after_nodes(one_way: bool) -> None:
    data = b"""<?xml version="1.0"?><NexposeReport version="2.0"><nodes><node address="10.1.1.1"><names>
<name>srv</name></names>
<endpoints><endpoint protocol="tcp" port="443"><services><service name="HTTPS"><tests>
<test id="ssl-cve-2016-2183-sweet32" status="vulnerable-version" vulnerable-since="20210211T164506081">
<Paragraph>3DES</Paragraph></test>
<test id="not-this" status="not-vulnerable"/></tests></service></services></endpoint></endpoints></node></nodes>
<VulnerabilityDefinitions><vulnerability id="ssl-cve-2016-2183-sweet32" title="SWEET32" severity="4" cvssV3Score="7.5"
cvssV3Vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"><description><ContainerBlockElement>
<Paragraph>Birthday attack.</Paragraph>
</ContainerBlockElement></description><references><reference source="CVE">CVE-2016-2183</reference>
<reference source="URL">https://sweet32.info</reference></references><solution><Paragraph>Disable 3DES.</Paragraph>
</solution>
</vulnerability></VulnerabilityDefinitions></NexposeReport>"""
    (f,) = parse("nexpose_xml", data, one_way)
    assert (f.title, f.host, f.ip, f.port, f.protocol, f.cve_ids) == ("SWEET32", "srv", "10.1.1.1", 443, "tcp",
                                                                      ["CVE-2016-2183"])
    assert (f.cvss_version, f.cvss_score, f.description, f.remediation) == ("3.1", 7.5, "Birthday attack.",
                                                                            "Disable 3DES.")
    assert f.extra["proof"] == "3DES" and f.extra["service"] == "HTTPS" and f.references == ["https://sweet32.info"]
    assert severity("nexpose_xml", f) == (Severity.MEDIUM, "vendor")


def test_burp_dtd_subset_is_tolerated_but_entities_are_not() -> None:
    body = (b"<issues burpVersion=\"2023.1\"><issue><serialNumber>9</serialNumber><type>2097920</type><name>XSS</name>"
            b"<host ip=\"10.0.0.2\">https://shop.example</host><path>/search</path><location>/search [q parameter]"
            b"</location>"
            b"<severity>High</severity><confidence>Certain</confidence>"
            b"<vulnerabilityClassifications><![CDATA[<a href=\"https://cwe.mitre.org/data/definitions/79.html\">CWE-79</a>]]>"
            b"</vulnerabilityClassifications></issue></issues>")
    dtd = (b'<?xml version="1.0"?>\n<!DOCTYPE issues [\n<!ELEMENT issues (issue*)>\n'
           b'<!ATTLIST issues burpVersion CDATA "">\n]>\n')
    (f,) = parse("burp_xml", dtd + body)
    assert (f.url, f.host, f.port, f.parameter, f.cwe_ids, f.rule_id) == ("https://shop.example/search",
                                                                          "shop.example", 443, "q", [79], "2097920")
    evil = b'<?xml version="1.0"?>\n<!DOCTYPE issues [\n<!ELEMENT issues (issue*)>\n<!ENTITY x "y">\n]>\n'
    with pytest.raises(HostileReportError):
        parse("burp_xml", evil + body)


def test_zap_json_report_and_api_alerts() -> None:
    report = (b'{"@programName":"ZAP","@version":"2.14.0","@generated":"Mon","site":[{"@name":"https://a.example","@port":"443",'
              b'"alerts":[{"pluginid":"10020","alertRef":"10020-1","name":"Missing Anti-clickjacking Header",'
              b'"riskcode":"2",'
              b'"confidence":"2","desc":"<p>Frames.</p>","instances":[{"uri":"https://a.example/","method":"GET","param":"x-frame-options"},'
              b'{"uri":"https://a.example/login","method":"GET","param":"x-frame-options"}],"solution":"<p>Set it.'
              b'</p>",'
              b'"reference":"<p>https://owasp.example/cj</p>","cweid":"1021","wascid":"15"}]}]}')
    first, second = parse("zap_json", report)
    assert (first.rule_id, first.url, first.parameter, first.host, first.port) == ("10020-1", "https://a.example/",
                                                                                   "x-frame-options", "a.example", 443)
    assert (first.cwe_ids, first.description, first.remediation, first.references) == ([1021], "Frames.", "Set it.", ["https://owasp.example/cj"])
    assert second.url == "https://a.example/login" and severity("zap_json", first) == (Severity.MEDIUM, "vendor")
    api = (b'{"alerts":[{"pluginId":"40012","alertRef":"40012","name":"Cross Site Scripting (Reflected)","risk":"High",'
           b'"confidence":"Medium","url":"http://b.example/q?x=1","param":"x","method":"GET","cweid":"79","description":"XSS"}]}')
    (x,) = parse("zap_json", api)
    assert (x.url, x.parameter, x.cwe_ids) == ("http://b.example/q?x=1", "x", [79])
    assert severity("zap_json", x)[0] == Severity.HIGH
    assert BY_KEY["zap_json"].detect(report, "zap.json") and BY_KEY["zap_json"].detect(api, "alerts.json")
    # the report's own date is the sighting ("Mon" is no date: nothing then; the API list has none)
    assert first.last_seen is None and x.last_seen is None
    dated = report.replace(b'"@generated":"Mon"', b'"@generated":"Sun, 22 Jun 2025 04:04:14"')
    assert {f.last_seen for f in parse("zap_json", dated)} == {datetime(2025, 6, 22, 4, 4, 14, tzinfo=UTC)}
    xml = (b'<?xml version="1.0"?><OWASPZAPReport version="2.16.1" generated="Tue, 12 May 2020 20:57:30">'
           b'<site name="https://a.example" host="a.example" port="443" ssl="true"><alerts><alertitem>'
           b'<pluginid>10011</pluginid><name>Cookie</name><riskcode>1</riskcode><instances><instance>'
           b'<uri>https://a.example/</uri></instance></instances></alertitem></alerts></site></OWASPZAPReport>')
    assert [f.last_seen for f in parse("zap_xml", xml)] == [datetime(2020, 5, 12, 20, 57, 30, tzinfo=UTC)]


def test_zap_false_positive_confidence_is_a_status() -> None:
    data = (b'<?xml version="1.0"?><OWASPZAPReport version="2.9.0"><site name="http://a"><alerts><alertitem><pluginid>1</pluginid>'
            b"<name>n</name><riskcode>3</riskcode><confidence>0</confidence><instances><instance><uri>http://a/</uri></instance>"
            b"</instances></alertitem></alerts></site></OWASPZAPReport>")
    (f,) = parse("zap_xml", data)
    assert f.status == "false_positive" and severity("zap_xml", f)[0] == Severity.HIGH


def test_openvas_xml_result() -> None:
    data = b"""<?xml version="1.0"?><report id="1" format_id="a994b278"><report id="1"><gmp><version>22.6</version>
</gmp>
<results><result id="r1"><name>Windows KB5062557</name><host>10.99.99.99<asset asset_id="a"/>
<hostname>server99</hostname></host>
<port>42/tcp</port><nvt oid="1.3.6.1.4.1.25623.1.0.836484"><name>Windows KB5062557</name><family>Windows</family>
<severities score="9.8"><severity type="cvss_base_v3"><value>CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H</value>
</severity></severities>
<tags>summary=Missing update|impact=Code execution|solution_type=VendorFix</tags>
<solution type="VendorFix">Update.</solution>
<refs><ref type="cve" id="CVE-2025-49659"/><ref type="url" id="https://support.example/5062557"/>
<ref type="cert-bund" id="WID-SEC-2025-1850"/></refs>
</nvt><threat>High</threat><severity>9.8</severity><qod><value>80</value></qod>
<description>File version 10.0</description></result>
<result id="r2"><name>Log</name><host>10.99.99.99</host><port>general/tcp</port><nvt oid="1.2"/>
<threat>False Positive</threat>
<severity>5.0</severity></result></results></report></report>"""
    f, fp = parse("openvas_xml", data)
    assert (f.host, f.ip, f.port, f.protocol, f.rule_id) == ("server99", "10.99.99.99", 42, "tcp",
                                                             "1.3.6.1.4.1.25623.1.0.836484")
    assert (f.cve_ids, f.other_ids, f.references) == (["CVE-2025-49659"], ["WID-SEC-2025-1850"], ["https://support.example/5062557"])
    assert (f.cvss_version, f.cvss_score, f.remediation) == ("3.1", 9.8, "Update.")
    assert f.description == "Missing update\n\nImpact: Code execution" and f.extra["qod"] == 80
    assert severity("openvas_xml", f) == (Severity.HIGH, "vendor")
    assert fp.status == "false_positive" and fp.port is None
    assert severity("openvas_xml", fp) == (Severity.MEDIUM, "cvss")


def test_tenable_csv_merges_per_cve_rows_and_refuses_broken_scores() -> None:
    data = (b"Plugin ID,CVE,CVSS v3.0 Base Score,Risk,Host,Protocol,Port,Name,Synopsis,Description,Solution,See Also,"
            b"Plugin Output\n"
            b"65821,CVE-2013-2566,5.9,Medium,10.0.0.1,tcp,443,RC4,s,d,Disable RC4,https://a.example https://b.example,out\n"
            b"65821,CVE-2015-2808,5.9,Medium,10.0.0.1,tcp,443,RC4,s,d,Disable RC4,,out\n"
            b"65821,CVE-2013-2566,59,Medium,10.0.0.2,tcp,443,RC4,s,d,n/a,,out\n")
    first, second = parse("tenable_csv", data)
    assert first.cve_ids == ["CVE-2013-2566", "CVE-2015-2808"] and (first.ip, first.host) == ("10.0.0.1", None)
    assert first.references == ["https://a.example", "https://b.example"] and first.description == "s\n\nd"
    assert (second.ip, second.cvss_score, second.remediation) == ("10.0.0.2", None, None)


def test_nessus_was_report_host_is_a_url() -> None:
    data = (b'<?xml version="1.0" ?><NessusClientData_v2><Report name="w" type="was"><ReportHost name="https://app.example:8443/">'
            b'<HostProperties><tag name="host-fqdn">https://app.example:8443/</tag></HostProperties>'
            b'<ReportItem pluginFamily="XSS" pluginName="Cross-Site Scripting (XSS)" pluginID="98104" severity="3"'
            b' protocol="TCP" '
            b'svc_name="http" port="0"><cvssv3>7.1</cvssv3><xref>CWE:79</xref></ReportItem></ReportHost></Report>'
            b'</NessusClientData_v2>')
    (f,) = parse("nessus", data)
    assert (f.url, f.host, f.port, f.protocol, f.cwe_ids, f.cvss_score) == ("https://app.example:8443/", "app.example",
                                                                            8443, "tcp", [79], 7.1)


def test_nmap_nse_vulns_and_vulners() -> None:
    data = b"""<?xml version="1.0"?><nmaprun scanner="nmap" start="1700000000"><host>
<address addr="10.2.2.2" addrtype="ipv4"/>
<hostnames><hostname name="mail.example" type="PTR"/></hostnames><ports>
<port protocol="tcp" portid="443"><state state="open"/><service name="https" product="nginx"/>
<script id="ssl-heartbleed" output="VULNERABLE"><table key="NMAP-1"><elem key="title">OpenSSL Heartbleed</elem>
<elem key="state">VULNERABLE</elem><table key="ids"><elem>CVE:CVE-2014-0160</elem></table>
<table key="refs"><elem>https://heartbleed.com</elem></table></table></script>
<script id="vulners" output="x"><table key="cpe:/a:nginx:nginx:1.14.0"><table><elem key="id">CVE-2019-9511</elem>
<elem key="cvss">7.8</elem><elem key="type">cve</elem><elem key="is_exploit">false</elem></table></table></script>
</port>
<port protocol="tcp" portid="25"><state state="closed"/></port></ports></host></nmaprun>"""
    heart, vulners, port = parse("nmap_xml", data)
    assert (heart.title, heart.cve_ids, heart.rule_id, heart.port) == ("OpenSSL Heartbleed", ["CVE-2014-0160"],
                                                                       "ssl-heartbleed:NMAP-1", 443)
    assert severity("nmap_xml", heart) == (Severity.UNKNOWN, "unmapped")
    assert (vulners.cve_ids, vulners.package_name, vulners.package_version) == (["CVE-2019-9511"], "nginx", "1.14.0")
    assert severity("nmap_xml", vulners) == (Severity.HIGH, "cvss")
    assert (port.title, port.host, port.ip, port.extra["product"]) == ("Open port: 443/tcp", "mail.example",
                                                                       "10.2.2.2", "nginx")
    assert severity("nmap_xml", port) == (Severity.INFO, "vendor")


@pytest.mark.parametrize("data", [
    b"#masscan\nopen tcp 22 10.0.0.1 1390000000\nopen tcp 80 10.0.0.1 1390000000\n# end\n",
    (b"# Masscan 1.3 scan\nTimestamp: 1390000000\tHost: 10.0.0.1 ()\tPorts: 22/open/tcp//ssh//\n"
    b"Timestamp: 1390000000\tHost: 10.0.0.1 ()\tPorts: 80/open/tcp//http//\n"),
    (b'{"ip":"10.0.0.1","timestamp":"1390000000","port":22,"proto":"tcp","rec_type":"status","data":{"status":"open"}}\n'
    b'{"ip":"10.0.0.1","timestamp":"1390000000","port":80,"proto":"tcp","rec_type":"status","data":{"status":"open"}}\n'),
], ids=["list", "grepable", "ndjson"])
def test_masscan_line_outputs(data: bytes) -> None:
    found = parse("masscan", data)
    assert [(f.ip, f.port, f.protocol) for f in found] == [("10.0.0.1", 22, "tcp"), ("10.0.0.1", 80, "tcp")]
    assert BY_KEY["masscan"].detect(data, "scan.txt")


def test_invicti_states_and_offset_dates() -> None:
    data = (b'{"Generated":"03/02/2019 15:50:29 (UTC-06:00)","Target":{"ScanId":"x","Url":"https://a/"},"Vulnerabilities":['
            b'{"Url":"https://a/login?u=1","Type":"SqlInjection","Name":"SQL Injection","Severity":"Critical",'
            b'"State":"Present, AcceptedRisk",'
            b'"Classification":{"Cwe":"89","Cvss31":{"BaseScore":{"Value":"9.8"},"Vector":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}},'
            b'"HttpRequest":{"Method":"GET","Parameters":[{"Name":"u","Vulnerable":true}]}},'
            b'{"Url":"https://a/","Type":"BestPracticeX","Name":"Hint","Severity":"BestPractice","State":"FalsePositive"}]}')
    sqli, hint = parse("invicti_json", data)
    assert (sqli.parameter, sqli.status, sqli.cwe_ids, sqli.cvss_version, sqli.cvss_score) == ("u", "risk_accepted",
                                                                                               [89], "3.1", 9.8)
    assert sqli.last_seen == datetime(2019, 2, 3, 21, 50, 29, tzinfo=UTC)
    assert hint.status == "false_positive" and severity("invicti_json", hint) == (Severity.INFO, "vendor")


def test_acunetix_bare_start_url_gets_no_invented_port() -> None:
    data = (b'<?xml version="1.0"?><ScanGroup><Scan><StartURL>intranet.example:8080</StartURL><StartTime>27/02/2020,'
            b' 12:56:09</StartTime>'
            b"<ReportItems><ReportItem><Name>XSS</Name><Affects>/q</Affects><Parameter>s</Parameter><Severity>high</Severity>"
            b"<IsFalsePositive>True</IsFalsePositive><CWEList><CWE id=\"79\">CWE-79</CWE></CWEList></ReportItem>"
            b"</ReportItems></Scan></ScanGroup>")
    (f,) = parse("acunetix_xml", data)
    assert (f.host, f.port, f.url, f.parameter, f.status, f.cwe_ids) == ("intranet.example", 8080,
                                                                         "http://intranet.example:8080/q", "s",
                                                                         "false_positive", [79])
    assert f.last_seen == datetime(2020, 2, 27, 12, 56, 9, tzinfo=UTC)


def test_mobsf_severity_tables_follow_the_document_shape() -> None:
    scan = (b'{"errors":[],"mobsfscan_version":"0.3","results":{"r1":{"files":[{"file_path":"A.kt","match_lines":[3,3],'
            b'"match_string":"val apiKey = \\"AKIAIOSFODNN7EXAMPLE\\""}],"metadata":{"cwe":"cwe-798",'
            b'"severity":"INFO","description":"d"}}}}')
    (f,) = parse("mobsf_json", scan)
    assert (f.file_path, f.line, f.cwe_ids) == ("A.kt", 3, [798])
    assert severity("mobsf_json", f) == (Severity.LOW, "vendor")
    assert "AKIAIOSFODNN7EXAMPLE" not in repr(f)  # the matched line of a hard-coded secret rule is the secret
    report = (b'{"app_name":"a","file_name":"a.apk","md5":"0",'
              b'"permissions":{"android.permission.CAMERA":{"status":"dangerous"}},'
              b'"code_analysis":{"findings":{"android_logging":{"files":{"A.java":"1,2"},"metadata":{"severity":"info","description":"logs"}}}},'
              b'"secrets":["\\"api_key\\" : \\"s3cr3t-value\\""]}')
    perm, code, secret = parse("mobsf_json", report)
    assert severity("mobsf_json", perm)[0] == Severity.HIGH and severity("mobsf_json", code)[0] == Severity.INFO
    assert code.extra["files"] == ["A.java"] and secret.title == "Possible hardcoded secret: api_key"
    assert "s3cr3t" not in repr(secret)  # the secret value itself is never kept


def test_unmapped_vendor_value_is_unknown_not_info() -> None:
    for fmt in FORMATS:
        result = fmt.map_severity(ParsedFinding(title="t", vendor_severity="no-such-level"))
        assert (result.severity, result.source) == (Severity.UNKNOWN, "unmapped"), fmt.key
        band = fmt.map_severity(ParsedFinding(title="t", vendor_severity="no-such-level", cvss_score=9.1))
        assert band.severity == Severity.CRITICAL, fmt.key


def test_wrong_shape_messages_name_the_problem() -> None:
    with pytest.raises(ReportError) as err:
        parse("invicti_json", b'{"Generated": "x", "Items": []}')
    assert "Vulnerabilities" in err.value.message
    with pytest.raises(ReportError) as err:
        parse("zap_json", b'{"@programName": "ZAP", "alerts_total": 1}')
    assert "site" in err.value.message


def test_utf16_spreadsheet_csv_is_read() -> None:
    text = "Plugin ID,CVE,Risk,Host,Protocol,Port,Name\n19506,,None,10.0.0.1,tcp,0,Nessus Scan Information – ü\n"
    (f,) = parse("tenable_csv", text.encode("utf-16"))
    assert (f.title, f.ip, f.port) == ("Nessus Scan Information – ü", "10.0.0.1", None)


def test_reports_without_findings() -> None:
    """Empty result sets parse to nothing; an engine report naming no vendor falls back to its file name."""
    invicti_empty = b'{"Generated":"25/06/2021 09:57 AM","Target":{"ScanId":"0a","Url":"http://a/"},"Vulnerabilities":[]}'
    assert parse("invicti_json", invicti_empty) == [] and parse("acunetix360_json", invicti_empty) == []
    assert BY_KEY["acunetix360_json"].detect(invicti_empty, "acunetix360_zero_finding.json")
    assert not BY_KEY["invicti_json"].detect(invicti_empty, "acunetix360_zero_finding.json")
    assert BY_KEY["invicti_json"].detect(invicti_empty, "scan.json")
    assert parse("mobsf_json", b'{"errors": [], "mobsfscan_version": "0.0.6", "results": {}}') == []
    nmap_closed = (b'<?xml version="1.0"?><nmaprun scanner="nmap" start="1"><host><address addr="127.0.0.1"'
                   b' addrtype="ipv4"/>'
                   b'<ports><extraports state="closed" count="997"/></ports></host></nmaprun>')
    assert parse("nmap_xml", nmap_closed) == []


@pytest.mark.parametrize("field", ["severity", "status"])  # MobSF 3.x vs earlier iOS reports
def test_mobsf_ats_level_under_either_field_name(field: str) -> None:
    rows = [("App Transport Security is allowed", "high" if field == "severity" else "insecure"),
            ("Insecure media load is allowed", "warning"),
            ("ATS exception domains listed", "info"),
            ("App Transport Security is enforced", "secure")]
    doc = {"app_name": "a", "file_name": "a.ipa", "md5": "0", "bundle_id": "test.app",
           "ats_analysis": {"ats_findings": [{"issue": issue, field: level, "description": "d"}
                                             for issue, level in rows]}}
    skipped: Counter[str] = Counter()
    found = list(BY_KEY["mobsf_json"].parse(io.BytesIO(orjson.dumps(doc)), skipped))
    # the secure row is a setting that holds: skipped (counted), not a finding
    assert [f.title for f in found] == [issue for issue, _ in rows[:3]] and skipped == {"secure check": 1}
    assert [severity("mobsf_json", f) for f in found] == [
        (Severity.HIGH, "vendor"), (Severity.MEDIUM, "vendor"), (Severity.INFO, "vendor")]
    assert {f.rule_id for f in found} == {f"ats:{issue}" for issue, _ in rows[:3]}
    # the same row under either field name is the same finding
    other = "status" if field == "severity" else "severity"
    renamed = {**doc, "ats_analysis": {"ats_findings": [{"issue": rows[2][0], other: "info", "description": "d"}]}}
    (same,) = parse("mobsf_json", orjson.dumps(renamed))
    assert same.fingerprint("mobsf_json") == found[2].fingerprint("mobsf_json")


def test_mobsf_ats_severity_wins_over_status() -> None:
    doc = {"app_name": "a", "file_name": "a.ipa", "md5": "0", "bundle_id": "test.app",
           "ats_analysis": [{"issue": "x", "severity": "warning", "status": "secure"}]}  # list form, both fields
    (f,) = parse("mobsf_json", orjson.dumps(doc))
    assert severity("mobsf_json", f) == (Severity.MEDIUM, "vendor")
