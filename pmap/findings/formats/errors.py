"""The errors a report format raises: the uploader's fault (:class:`ReportError`) or the parser's
(:class:`ParserFault`, raised by the base class for anything a parser did not mean to raise)."""

from __future__ import annotations


class ReportError(Exception):
    """A report that cannot be imported: malformed, truncated, hostile or of the wrong format.

    ``message`` is safe to show to the uploader; ``location`` names the line, element or JSON
    path where the problem was seen, when known.
    """

    def __init__(self, format_key: str, message: str, location: str | None = None) -> None:
        self.format_key = format_key
        self.location = location
        self.message = message
        where = f" (at {location})" if location else ""
        super().__init__(f"{format_key}: {message}{where}")


class HostileReportError(ReportError):
    """A report built to harm the parser: entity expansion, external entities, absurd nesting."""


class ParserFault(ReportError):
    """A parser raised something other than :class:`ReportError` (a bug met on odd input).

    The uploader still gets a 4xx naming the format; the original exception is logged with its
    traceback, counted in :func:`pmap.findings.formats.base.parser_faults` and kept as ``__cause__``.
    """


def not_a(format_key: str, what: str, why: str, location: str = "$") -> ReportError:
    """The error for a file that parses but is not this format's report: ``not <what>: <why>``,
    where ``what`` carries its article (``"a Bandit JSON report"``)."""
    return ReportError(format_key, f"not {what}: {why}", location)
