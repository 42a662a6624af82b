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
host up without open ports, an image a Trivy or Grype report scanned clean), named with this rule as that resource's
findings would be; :func:`clean_resource` cuts them like the rest.

The value is cut to :data:`ASSET_MAX` characters. The code lives in the format toolkit
(:mod:`pmap.findings.formats.resource`), so that parsers name a resource they cover as this rule does; this
module is where the rest of PMAP imports it from. Migration 0011 backfills stored findings with steps
2-5 of this rule (the explicit ``asset`` was not stored before); keep the two in step.
"""

from __future__ import annotations

from pmap.findings.formats.resource import ASSET_MAX, clean_resource, covered_resource, url_origin

__all__ = ["ASSET_MAX", "clean_resource", "covered_resource", "url_origin"]
