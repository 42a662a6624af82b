"""Write a realistic, large .nessus v2 report for the import benchmark (streamed, bounded memory).

``write_nessus(path, findings=100_000, hosts=1000, seed=1)`` writes ReportHost elements with
HostProperties and ReportItem elements carrying the attributes and children real Nessus exports
have (description, solution, synopsis, risk_factor, CVSS v3, CVE, CWE, see_also, plugin_output),
about 3.5 KB per finding. The same seed always gives the same bytes.

Manual use: ``python bench/gen_nessus.py OUT.nessus [--findings N] [--hosts N] [--seed N]``.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from xml.sax.saxutils import escape

_FAMILIES = ("General", "Web Servers", "Windows", "Ubuntu Local Security Checks", "Misc.", "Service detection",
             "CGI abuses", "Databases", "Red Hat Local Security Checks", "Firewalls")
_SERVICES = ((22, "ssh", "tcp"), (80, "www", "tcp"), (443, "www", "tcp"), (445, "cifs", "tcp"),
             (3389, "msrdp", "tcp"), (53, "dns", "udp"), (161, "snmp", "udp"), (0, "general", "tcp"),
             (3306, "mysql", "tcp"), (8080, "www", "tcp"))
_RISK = ("None", "Low", "Medium", "High", "Critical")
_OPERATING_SYSTEMS = ("Linux Kernel 5.15 on Ubuntu 22.04", "Microsoft Windows Server 2019", "CentOS Linux 7")
_CVSS_BY_SEV = ((0.0, 0.0), (2.1, 3.9), (4.3, 6.8), (7.0, 8.8), (9.0, 10.0))
_VECTORS = ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N",
            "CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N")
_WORDS = ("remote", "host", "service", "version", "affected", "vulnerability", "attacker", "request", "package",
          "update", "configuration", "server", "client", "certificate", "cipher", "protocol", "authentication",
          "kernel", "library", "overflow", "injection", "disclosure", "denial", "privilege", "escalation")
_PACKAGES = ("openssl", "openssh", "nginx", "apache2", "php", "libxml2", "glibc", "curl", "sudo", "bind9")


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(_sentence(rng, rng.randint(8, 16)) for _ in range(sentences))


def _plugin_output(rng: random.Random, target: int) -> str:
    # realistic shape: a header, then "Path / Installed / Fixed" blocks and file listings
    lines = ["", "The remote host is affected by the issues described above.", ""]
    size = 0
    while size < target:
        pkg = rng.choice(_PACKAGES)
        block = (
            f"  Path              : /usr/lib/x86_64-linux-gnu/lib{pkg}.so.{rng.randint(1, 9)}\n"
            f"  Installed version : {rng.randint(0, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 40)}\n"
            f"  Fixed version     : {rng.randint(3, 5)}.{rng.randint(0, 20)}.{rng.randint(0, 40)}\n"
            f"  Remote package installed : {pkg}_{rng.randint(1, 9)}.{rng.randint(0, 99)}-"
            f"{rng.randint(1, 9)}ubuntu{rng.randint(1, 9)}\n"
        )
        lines.append(block)
        size += len(block)
    return "\n".join(lines)


def _host_properties(rng: random.Random, index: int) -> tuple[str, str]:
    ip = f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255 or 1}"
    fqdn = f"host{index:05d}.corp.example.com"
    props = (
        "<HostProperties>\n"
        f'<tag name="HOST_END_TIMESTAMP">{1700000000 + index * 37}</tag>\n'
        '<tag name="HOST_END">Tue Nov 14 22:13:20 2023</tag>\n'
        f'<tag name="operating-system">{rng.choice(_OPERATING_SYSTEMS)}</tag>\n'
        f'<tag name="host-ip">{ip}</tag>\n'
        f'<tag name="host-fqdn">{fqdn}</tag>\n'
        f'<tag name="netbios-name">HOST{index:05d}</tag>\n'
        '<tag name="HOST_START">Tue Nov 14 21:58:01 2023</tag>\n'
        "</HostProperties>\n"
    )
    return fqdn, props


def _report_item(rng: random.Random, plugin_id: int) -> str:
    sev = rng.choices(range(5), weights=(40, 10, 25, 18, 7))[0]
    port, svc, proto = rng.choice(_SERVICES)
    family = rng.choice(_FAMILIES)
    name = f"{rng.choice(_PACKAGES).capitalize()} {_sentence(rng, 4)[:-1]} (plugin {plugin_id})"
    lo, hi = _CVSS_BY_SEV[sev]
    parts = [
        (f'<ReportItem port="{port}" svc_name="{svc}" protocol="{proto}" severity="{sev}" '
        f'pluginID="{plugin_id}" pluginName="{escape(name, {chr(34): "&quot;"})}" pluginFamily="{family}">\n'),
        f"<description>{escape(_paragraph(rng, 5))}</description>\n",
        f"<fname>plugin_{plugin_id}.nasl</fname>\n",
        "<plugin_modification_date>2023/10/02</plugin_modification_date>\n",
        f"<plugin_name>{escape(name)}</plugin_name>\n",
        "<plugin_publication_date>2021/03/11</plugin_publication_date>\n",
        "<plugin_type>remote</plugin_type>\n",
        f"<risk_factor>{_RISK[sev]}</risk_factor>\n",
        f"<solution>{escape(_paragraph(rng, 2))}</solution>\n",
        f"<synopsis>{escape(_sentence(rng, 12))}</synopsis>\n",
    ]
    if sev > 0:
        parts.append(f"<cvss3_base_score>{rng.uniform(lo, hi):.1f}</cvss3_base_score>\n")
        parts.append(f"<cvss3_vector>{rng.choice(_VECTORS)}</cvss3_vector>\n")
        for _ in range(rng.randint(1, 4)):
            parts.append(f"<cve>CVE-{rng.randint(2015, 2024)}-{rng.randint(1000, 49999)}</cve>\n")
        if rng.random() < 0.4:
            parts.append(f"<cwe>{rng.choice((20, 79, 89, 119, 200, 287, 310, 326, 352, 400))}</cwe>\n")
        parts.append(f"<see_also>https://www.tenable.com/plugins/nessus/{plugin_id}\nhttps://nvd.nist.gov/</see_also>\n")
    parts.append(f"<plugin_output>{escape(_plugin_output(rng, rng.randint(1200, 2300)))}</plugin_output>\n")
    parts.append("</ReportItem>\n")
    return "".join(parts)


def write_nessus(path: str | Path, findings: int = 100_000, hosts: int = 1000, seed: int = 1) -> Path:
    """Write a .nessus v2 file with ``findings`` ReportItems spread over ``hosts`` hosts; return the path."""
    if findings < 0 or hosts < 1:
        raise ValueError("findings must be >= 0 and hosts >= 1")
    rng = random.Random(seed)
    out = Path(path)
    per_host, extra = divmod(findings, hosts)
    with out.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write('<?xml version="1.0" ?>\n<NessusClientData_v2>\n<Policy><policyName>Benchmark</policyName></Policy>\n')
        fh.write('<Report name="benchmark" xmlns:cm="http://www.nessus.org/cm">\n')
        for h in range(hosts):
            count = per_host + (1 if h < extra else 0)
            if count == 0 and h >= findings:
                continue
            fqdn, props = _host_properties(rng, h + 1)
            fh.write(f'<ReportHost name="{fqdn}">')
            fh.write(props)
            used: set[int] = set()
            for _ in range(count):
                plugin_id = rng.randint(10000, 199999)
                while plugin_id in used:  # one item per plugin per host, as Nessus does
                    plugin_id = rng.randint(10000, 199999)
                used.add(plugin_id)
                fh.write(_report_item(rng, plugin_id))
            fh.write("</ReportHost>\n")
        fh.write("</Report>\n</NessusClientData_v2>\n")
    return out


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--findings", type=int, default=100_000)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    path = write_nessus(args.out, args.findings, args.hosts, args.seed)
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
