"""Report formats of vulnerability management, DAST, network discovery and mobile scanners.

``FORMATS`` is in detection order: within each syntax the more specific detector comes first
(Acunetix 360 before the Invicti JSON it shares a shape with, Qualys VMDR before the generic
Qualys CSV, masscan's nmap-compatible XML before nmap). Every detector checks a root element,
a header row or vendor keys, so the order only matters between those pairs.
"""

from __future__ import annotations

from pmap.findings.formats.base import ReportFormat
from pmap.findings.formats.vm_dast import (
    acunetix,
    burp,
    invicti,
    masscan,
    mobsf,
    nessus,
    nexpose,
    nmap,
    nuclei,
    openvas,
    qualys,
    qualys_csv,
    tenable_csv,
    zap,
)

FORMATS: tuple[ReportFormat, ...] = (
    # XML
    nessus.FORMAT,
    qualys.FORMAT,
    openvas.OPENVAS_XML,
    nexpose.FORMAT,
    burp.FORMAT,
    zap.ZAP_XML,
    acunetix.FORMAT,
    masscan.FORMAT,  # also its JSON and list outputs
    nmap.FORMAT,
    # JSON
    invicti.ACUNETIX360_JSON,
    invicti.INVICTI_JSON,
    zap.ZAP_JSON,
    nuclei.FORMAT,
    mobsf.FORMAT,
    # CSV
    qualys_csv.QUALYS_VMDR_CSV,
    qualys_csv.QUALYS_CSV,
    openvas.OPENVAS_CSV,
    tenable_csv.FORMAT,
)

__all__ = ["FORMATS"]
