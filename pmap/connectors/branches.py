"""What pipeline syncs need of CI/CD vendor types beyond the fetch of reports: which types a sync reads pipeline
reports of, the ``branches`` setting's item type, and the capability to name a repository's default branch
(what a sync reads when no branch is set)."""

from __future__ import annotations

import typing
from typing import Protocol, runtime_checkable

from pydantic import Field

from pmap.connectors.base import ConnectorType, Operation, OperationContext

#: a branch a pipeline sync reads (``branches`` connection settings): one line, as Git allows, within 255 characters
BranchName = typing.Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x20\x7f~^:?*\[\\]+$")]


@runtime_checkable
class KnowsDefaultBranch(Protocol):
    """Name the repository's default branch; a capability of pipeline report fetching, not a catalog operation."""

    def default_branch(self, ctx: OperationContext) -> str | None: ...


def syncs_pipelines(ct: ConnectorType) -> bool:
    """Whether a sync of the vendor type imports pipeline reports (it fetches them and has no findings API)."""
    return Operation.SYNC_FINDINGS not in ct.operations and Operation.FETCH_PIPELINE_REPORTS in ct.operations
