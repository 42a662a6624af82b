"""Every report format PMAP imports, by key, and format detection."""

from __future__ import annotations

import logging
from functools import lru_cache

from pmap.core.registry import Registry
from pmap.findings.formats.base import ReportFormat, count_parser_fault

log = logging.getLogger("pmap.findings.formats")


@lru_cache(maxsize=1)
def report_formats() -> Registry[ReportFormat]:
    """The registry of report formats (built on first use, not at import)."""
    from pmap.findings.formats.sast_sca import FORMATS as CODE_FORMATS
    from pmap.findings.formats.vm_dast import FORMATS as INFRA_FORMATS

    return Registry("report formats", [*INFRA_FORMATS, *CODE_FORMATS], key=lambda f: f.key)


def detect_format(head: bytes, filename: str | None) -> ReportFormat | None:
    """The first format whose detector claims these first bytes and file name, or None."""
    for fmt in report_formats().values():
        try:
            if fmt.detect(head, filename):
                return fmt
        except Exception:  # a detector must never break detection of the others; its bug is logged and counted
            count_parser_fault(fmt.key)
            log.exception("the %s detector failed unexpectedly", fmt.key)
    return None
