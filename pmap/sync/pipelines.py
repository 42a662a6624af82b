"""Pipeline syncs: the security reports of a CI/CD integration's latest completed runs, imported as files.

A ``sync`` job of a vendor type that fetches pipeline reports (GitHub Actions, GitLab CI, Azure
Pipelines, Jenkins) resolves the credentials for purpose ``pipeline_sync``, asks the vendor type's
``fetch_pipeline_reports`` for the latest completed run of each configured branch (``branches``, else
``branch``, else the repository's default branch) or, when a webhook triggered it, for that one run;
and imports each report artifact through the file-import path (its format detected among the
integration's accepted formats) with scope ``<branch or run>/<artifact name>``, so each report is its
own stream and resolves only its own findings. The summary adds the imports up and lists each one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pmap.connectors.base import FetchesPipelineReports, OperationContext, ReportArtifact
from pmap.connectors.branches import KnowsDefaultBranch
from pmap.core.errors import ValidationFailed
from pmap.core.state import AppState
from pmap.findings.importer import (
    STREAM_WAIT_SECONDS,
    ImportOptions,
    ImportSummary,
    ImportTarget,
    ReportRejected,
    run_import,
)
from pmap.findings.jobs import JobCall

#: the counters of an import summary that a pipeline sync adds up over its imports
_COUNTS = ("parsed", "kept", "filtered_out", "created", "updated", "resolved", "reopened", "suppressed",
           "created_resolved", "unknown_severity", "merged", "duplicates")
SCOPE_PART = 100  # characters of a branch or artifact name kept in a scope


def refs_of(impl: FetchesPipelineReports, ctx: OperationContext, connection: dict[str, Any],
            params: dict[str, Any]) -> list[tuple[str | None, str]]:
    """``(ref asked of the vendor, scope label)`` of each run a sync reads: the webhook's run, else the
    latest completed run of each configured branch (default: the repository's default branch)."""
    run = params.get("run")
    if run:
        branch = params.get("branch")
        return [(str(run), str(branch) if branch else f"run-{run}")]
    branches = [b for b in connection.get("branches") or [] if isinstance(b, str) and b.strip()]
    if not branches and connection.get("branch"):
        branches = [str(connection["branch"])]
    if not branches and isinstance(impl, KnowsDefaultBranch):
        default = impl.default_branch(ctx)
        branches = [default] if default else []
    if not branches:  # a vendor type that cannot name a default branch: its latest completed run
        return [(None, "latest")]
    return [(b, b) for b in dict.fromkeys(branches)]


def scope_of(label: str, artifact: ReportArtifact) -> str:
    """``<branch or run>/<artifact name>``: each report artifact is its own stream."""
    return f"{label[:SCOPE_PART]}/{artifact.name[-SCOPE_PART:]}"


@contextmanager
def _spooled(artifact: ReportArtifact, spool: Path) -> Iterator[Path]:
    """The artifact as a file (the importer streams files): the vendor type's spooled download, or its bytes
    written to the spool; deleted once imported."""
    path = artifact.path
    try:
        if path is None:
            fd, name = tempfile.mkstemp(dir=spool, prefix="artifact-", suffix=".part")
            path = Path(name)
            with os.fdopen(fd, "wb") as fh:
                fh.write(artifact.content)
        yield path
    finally:
        if path is not None:
            path.unlink(missing_ok=True)


def import_artifacts(state: AppState, call: JobCall, target: ImportTarget, label: str,
                     artifacts: list[ReportArtifact], spool: Path, into: dict[str, Any]) -> None:
    """Import each artifact of one run through the file-import path into its own scope; a report the
    importer refuses is listed in ``into["rejected"]`` and the others still import."""
    for artifact in artifacts:
        scope = scope_of(label, artifact)
        # the scope is this branch's (or run's) report artifact: its latest run's report is the whole state of
        # that stream (one repository, one tool), so it resolves on the whole scope, explicitly; with
        # resolve="covered" a clean run's empty report would leave every earlier finding open
        options = ImportOptions(format=None, scope=scope, full=True, filename=artifact.name.rsplit("/", 1)[-1],
                                resolve="scope", actor=call.actor.label, wait_for_stream=STREAM_WAIT_SECONDS)
        with _spooled(artifact, spool) as path:
            try:
                summary = run_import(state.engine, target, path, options, progress=call.progress)
            except (ReportRejected, ValidationFailed) as exc:
                into["rejected"].append({"scope": scope, "code": exc.code, "message": exc.message})
                into["warnings"].append(f"{scope}: {exc.message}")
                continue
        add(into, summary)


def empty_summary() -> dict[str, Any]:
    """The summary of a pipeline sync before its first import."""
    return {"format": None, **dict.fromkeys(_COUNTS, 0), "full": True, "runs": [], "imports": [], "rejected": [],
            "warnings": []}


def add(into: dict[str, Any], summary: ImportSummary) -> None:
    """Add one import's counts to the sync's summary and list the import with its scope."""
    one = summary.as_dict()
    for key in _COUNTS:
        into[key] += int(one.get(key) or 0)
    formats = {i["format"] for i in into["imports"]} | {summary.format}
    into["format"] = summary.format if len(formats) == 1 else "mixed"
    into["warnings"].extend(f"{summary.scope}: {w}" for w in summary.warnings)
    into["imports"].append({k: one[k] for k in ("import_id", "scope", "format", "parsed", "created", "updated",
                                                "resolved", "reopened")})
