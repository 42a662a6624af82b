"""The resource a finding belongs to, and so what a report is taken to have covered.

A full report resolves the findings of its stream it no longer contains *only on the resources it
covered*: importing a scan of hosts A and B says nothing about host C, which an earlier scan of the same
integration may have found problems on. :func:`covered_resource` names a finding's resource; the import
stores it per finding (``findings.asset``) and collects the resources of every entry of the report (kept,
filtered below the threshold or merged), and resolution is limited to findings whose resource is in that
set (see :mod:`pmap.findings.importer`).

The resource, first that applies:

1. ``ParsedFinding.asset``: what the format names explicitly (an image, a project key, a manifest, a
   scanned host where the finding's own fields name something else);
2. the URL's origin ``scheme://host:port`` (default port written out) when ``url`` is an absolute
   http(s)-like URL: the target site of a DAST scan (a VM report's web findings of one host get the same
   origin on every scan of it, as the host is always in the URL);
3. ``host``, else ``ip`` (lower-cased): the scanned host of a VM or network discovery report;
4. ``repository``: the repository or project of a SAST, SCA or CI/CD report;
5. none (``None``, stored as NULL): the stream's one *unnamed* resource. Findings that name no resource
   (a SARIF log without a repository, an SBOM without a component name, ...) all share it: a report
   with any such entry covers all of them, as every full report did before resources were tracked.

Formats set ``asset`` where the report names its target (a CycloneDX BOM's ``metadata.component``, a SARIF
run's repository or automation id, the Checkmarx or Dependency-Check project, the OSV lockfile, the Veracode
application, the MobSF app): the table per format is in ``docs/finding-identity.md``. ``asset`` is not part of
the fingerprint. A report also covers the resources its format adds with
:meth:`~pmap.findings.formats.base.Report.cover`: scanned without a finding (a Nessus host without items, an nmap
host up without open ports, a clean image of a Trivy or Grype report), named with this rule as that resource's
findings would be; :func:`clean_resource` cuts them like the rest.

The value is cut to :data:`ASSET_MAX` characters. Migration 0011 backfills stored findings with steps
2-5 of this rule (the explicit ``asset`` was not stored before); keep the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from pmap.findings.formats.base import ParsedFinding

ASSET_MAX = 500
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}


def url_origin(url: str | None) -> str | None:
    """``scheme://host:port`` of an absolute URL (lower-cased, default port written out), else None."""
    if not url:
        return None
    url = url.strip()
    start = url.find("://")
    if start <= 0:
        return None
    # only the part before the path, query or fragment names the origin: a report's many URLs of one site
    # share it, so it is parsed once (the import's hot loop calls this for every finding with a URL)
    end = len(url)
    for mark in "/?#":
        at = url.find(mark, start + 3)
        if at != -1 and at < end:
            end = at
    return _origin(url[:end])


@lru_cache(maxsize=4096)
def _origin(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not scheme or not host:
        return None
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def covered_resource(f: ParsedFinding) -> str | None:
    """The resource ``f`` belongs to (see the module doc); None for the stream's unnamed resource."""
    return clean_resource(f.asset or url_origin(f.url) or (f.host or f.ip or "").lower() or f.repository)


def clean_resource(value: str | None) -> str | None:
    """A resource name as stored: stripped, cut to :data:`ASSET_MAX`, storable text; None when blank."""
    if not value:
        return None
    value = value.strip()
    if len(value) > ASSET_MAX:
        value = value[:ASSET_MAX]
    if not value.isascii():  # lone surrogates: what PostgreSQL cannot store (as the row builder cleans text)
        value = value.encode("utf-8", "replace").decode("utf-8")
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value or None
