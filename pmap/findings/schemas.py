"""Request and response bodies of the findings, imports, jobs and rules API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from pmap.core.text import OneLine, Text, clean_file_name

SeverityName = Literal["unknown", "info", "low", "medium", "high", "critical"]
StatusName = Literal["open", "resolved", "suppressed", "filtered"]
RuleAction = Literal["set_severity", "suppress", "tag"]


class FindingOut(BaseModel):
    """A normalized finding (OCSF Vulnerability Finding, class 2002, flattened)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    integration_id: uuid.UUID
    format: str
    scope: str
    fingerprint: str = Field(description="Stable identity of the issue on the resource, for de-duplication.")
    first_import_id: uuid.UUID | None
    last_import_id: uuid.UUID | None
    title: str
    description: str | None
    tool: str | None
    cve_ids: list[str]
    cwe_ids: list[int]
    other_ids: list[str] = Field(description="GHSA, OSV and vendor advisory ids.")
    rule_id: str | None = Field(description="The vendor's plugin, rule or check id.")
    cvss_version: str | None
    cvss_vector: str | None
    cvss_score: float | None
    host: str | None
    ip: str | None
    port: int | None
    protocol: str | None
    url: str | None
    parameter: str | None
    repository: str | None
    file_path: str | None
    line: int | None
    package_name: str | None
    package_version: str | None
    fixed_version: str | None
    remediation: str | None
    references: list[str]
    vendor_severity: str | None = Field(description="The vendor's own severity, verbatim (evidence).")
    mapped_severity: SeverityName = Field(description="The format mapper's normalization of vendor_severity.")
    severity: SeverityName
    severity_source: Literal["vendor", "cvss", "unmapped", "rule"]
    severity_rule_id: uuid.UUID | None = Field(description="The rule that set the final severity, if any.")
    status: StatusName
    suppressed_by_rule_id: uuid.UUID | None
    tags: list[str]
    extra: dict[str, Any] = Field(description="Small vendor evidence (capped at 8 KiB).")
    asset: str | None = Field(default=None, description=(
        "The resource the finding belongs to: the format's named asset, else the URL origin, host, ip or "
        "repository; null for the stream's unnamed resource. A full report resolves the findings it lacks only "
        "on the resources it covered."))
    occurrence_count: int = Field(default=1, description="Entries of the latest report merged into this finding "
                                                         "(same identity); counts on past the kept evidence.")
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime


class FindingWithOccurrences(FindingOut):
    """A finding with the evidence of each occurrence its latest report merged into it."""

    occurrences: list[dict[str, Any]] = Field(default_factory=list, description=(
        "When the latest report held the finding more than once: each occurrence's evidence (`ip`, `other_ids`, "
        "`extra`; at most 1 KiB each, the first from the finding's own fields, its `extra` replaced by "
        "`{\"truncated\": true}` when larger), at most 100; empty for a single occurrence."))


class FindingPage(BaseModel):
    """One page of findings, newest first; pass ``next_cursor`` as ``cursor`` for the next. No
    ``total``: counting an organization's findings under these filters reads every matching row."""

    items: list[FindingOut]
    next_cursor: str | None


_BY_SEVERITY_DOC = "Findings per severity, every severity present (zeros included), critical first."


class IntegrationFindingCounts(BaseModel):
    """The matching findings of one integration."""

    integration_id: uuid.UUID
    name: str
    vendor: str
    total: int
    by_severity: dict[str, int] = Field(description=_BY_SEVERITY_DOC)


class FindingCounts(BaseModel):
    """How many findings match the filters of ``GET /findings``: in all, by severity, by integration."""

    total: int
    by_severity: dict[str, int] = Field(description=_BY_SEVERITY_DOC)
    by_integration: list[IntegrationFindingCounts] = Field(
        description="Integrations with at least one matching finding, most findings first.")


class ImportSummaryOut(BaseModel):
    """What one import did. ``parsed`` (distinct findings in the report) = ``kept`` + ``filtered_out``;
    ``kept`` = ``created`` + ``updated``; ``reopened``, ``suppressed`` and ``unknown_severity`` count
    among ``kept``; ``resolved`` counts stored findings the (full) report no longer contains (on the
    resources it covered, unless ``resolve`` is ``scope``) and those it states fixed; ``created_resolved``
    counts new findings stored resolved because the report states them fixed; ``merged`` counts entries
    merged into an earlier one of the same identity (``duplicates`` is its deprecated alias)."""

    import_id: uuid.UUID
    format: str
    scope: str
    parsed: int
    kept: int
    filtered_out: int
    created: int
    updated: int
    resolved: int
    reopened: int
    suppressed: int
    created_resolved: int = Field(default=0, description="New findings the report states fixed, stored resolved "
                                                         "(their history), counted among `created`.")
    unknown_severity: int
    merged: int = Field(default=0, description="Later occurrences of a finding within the report (entries sharing "
                                               "its identity), merged into it with their evidence.")
    duplicates: int = Field(description="Deprecated: the same as `merged`.", deprecated=True)
    covered: int = Field(default=0, description="Distinct resources (hosts, sites, repositories, assets) the report's "
                                                "entries name: what a full report resolves absent findings on.")
    skipped: dict[str, int] = Field(default_factory=dict,
                                    description="Entries the format leaves out by design, by kind (e.g. `licence`); "
                                                "a warning names them.")
    rules_applied: int = Field(description="How many enabled rules of the organization this import ran (each "
                                           "finding's `severity_rule_id`, `suppressed_by_rule_id` and `tags` say "
                                           "which matched).")
    rules_undefined: int = Field(description="Rule evaluations that were undefined (a field null or of another "
                                             "type); a warning explains how to guard them.")
    full: bool = Field(description="A full report resolves the stream's findings it no longer contains; a partial "
                                   "one resolves nothing.")
    resolve: Literal["covered", "scope"] = Field(default="covered", description=(
        "What a full report resolved of the findings it lacks: `covered`, those on the resources it covered (none "
        "when it covered none, with a warning); `scope`, every one of its integration, format and scope."))
    warnings: list[str]


class ImportOut(BaseModel):
    """A completed import and its summary."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    integration_id: uuid.UUID
    format: str
    scope: str
    # cleaned again on the way out: rows stored before names were cleaned on the way in
    filename: Annotated[str | None, AfterValidator(clean_file_name)]
    size_bytes: int
    full: bool
    summary: dict[str, Any]
    actor: str
    created_at: datetime
    finished_at: datetime | None


class ImportPage(BaseModel):
    items: list[ImportOut]
    next_cursor: str | None
    total: int = Field(description="Imports of the integration, on every page (not just this one).")


class JobOut(BaseModel):
    """A background job. ``result`` holds the import summary once ``succeeded``; ``error`` holds
    ``{code, message, ...}`` once ``failed``."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    integration_id: uuid.UUID | None
    status: Literal["queued", "running", "succeeded", "failed"]
    attempts: int  # every start counts, one a killed worker never finished included
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobAccepted(BaseModel):
    """202 answer: the import runs in the background; follow ``GET /api/v1/jobs/{job.id}``."""

    job: JobOut


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class RuleCreate(BaseModel):
    """A severity rule: when ``condition`` holds, apply ``action`` (with ``value``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: OneLine = Field(min_length=1, max_length=200)
    condition: Text = Field(min_length=1, max_length=2000,
                           description='Rule language (a safe CEL subset), e.g. `severity == "high" && port == 443`.')
    action: RuleAction
    value: OneLine | None = Field(default=None, max_length=64,
                              description="set_severity: a severity; tag: the label; suppress: none.")
    position: int | None = Field(default=None, ge=0, le=1_000_000,
                                 description="Evaluation order (ascending); defaults to after the last rule.")
    enabled: bool = True


class RuleUpdate(BaseModel):
    """A partial update; the result is validated as a whole."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: OneLine | None = Field(default=None, min_length=1, max_length=200)
    condition: Text | None = Field(default=None, min_length=1, max_length=2000)
    action: RuleAction | None = None
    value: OneLine | None = Field(default=None, max_length=64)
    position: int | None = Field(default=None, ge=0, le=1_000_000)
    enabled: bool | None = None


class RuleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    condition: str
    action: RuleAction
    value: str | None
    position: int
    enabled: bool
    created_at: datetime
    updated_at: datetime


class RuleList(BaseModel):
    """Every rule of the organization, in evaluation order."""

    items: list[RuleOut]


class RuleCostSample(BaseModel):
    """The findings a cost was measured on."""

    source: Literal["findings", "synthetic"] = Field(
        description="`findings`: the organization's most recent findings; `synthetic`: a fixed scanner-like sample "
                    "(the organization has no findings yet).")
    findings: int = Field(description="How many findings (at most PMAP_RULES_COST_SAMPLE).")


class RuleCostItem(BaseModel):
    """One rule's compiled size and cost measured alone."""

    id: uuid.UUID
    name: str
    enabled: bool
    size: int = Field(description="Compiled size: syntax nodes plus RE2 program instructions.")
    us_per_finding: float | None = Field(
        description="CPU microseconds per finding with this rule alone; null when not measured "
                    "(see `error`, `partial`).")
    share: float | None = Field(description="Its part of the enabled rules' summed costs (0-1); null when disabled "
                                            "or not measured.")
    error: str | None = Field(default=None, description="Why a stored rule was not measured (it no longer compiles).")


class RuleLimits(BaseModel):
    """The bounds checked when a rule is saved."""

    max_rules: int = Field(description="PMAP_RULES_MAX_PER_ORG")
    max_rule_size: int = Field(description="PMAP_RULES_MAX_RULE_SIZE")
    max_org_size: int = Field(description="PMAP_RULES_MAX_ORG_SIZE")


class RuleSetCostOut(BaseModel):
    """What the organization's rules cost each imported finding, measured on a bounded sample."""

    us_per_finding: float = Field(
        description="CPU microseconds per finding for the enabled rules, as an import runs them.")
    seconds_per_100k_findings: float
    sample: RuleCostSample
    rules: int
    enabled: int
    size: int = Field(description="The organization's compiled rule size (what PMAP_RULES_MAX_ORG_SIZE bounds).")
    limits: RuleLimits
    partial: bool = Field(description="True when the time budget ran out before every rule was measured alone.")
    items: list[RuleCostItem]


class RuleCost(BaseModel):
    """What a saved rule costs: alone, and the organization's enabled rules with it."""

    rule_us_per_finding: float | None = Field(description="CPU microseconds per finding with this rule alone.")
    rule_adds_us_per_finding: float | None = Field(
        description="What this rule adds to the organization's enabled rules (less than alone when it shares a "
                    "regex pass with them); for a disabled rule, what enabling it would add.")
    rule_set_us_per_finding: float = Field(description="The organization's enabled rules after this change "
                                                       "(validate: with this rule added).")
    size: int
    sample: RuleCostSample


class RuleSaved(RuleOut):
    """A created or updated rule and what it costs an import."""

    cost: RuleCost


class RuleChecked(BaseModel):
    """A rule that would be accepted, unsaved: its normalized value and what it would cost an import."""

    value: str | None
    cost: RuleCost


class RulePreviewIn(RuleCreate):
    """A rule as it would be created, or as an existing one would be after editing (``rule_id``)."""

    rule_id: uuid.UUID | None = Field(default=None, description="The rule this one would replace (editing); "
                                      "its position is kept unless `position` is given.")


class RuleEffectOut(BaseModel):
    """What the rules decide for one finding."""

    severity: SeverityName
    suppressed: bool
    tags: list[str] = Field(description="Tags added by rules.")


class RulePreviewSample(BaseModel):
    """One finding the rule set would treat differently with the rule saved."""

    model_config = ConfigDict(populate_by_name=True)

    finding_id: uuid.UUID
    title: str
    from_: RuleEffectOut = Field(alias="from", description="With the rules as they are.")
    to: RuleEffectOut = Field(description="With the rule saved.")


class RulePreviewOut(BaseModel):
    """What saving the rule would change on the organization's newest open findings (and those a rule
    suppressed), had they been imported again: both rule sets are applied now, by the import's own pipeline."""

    examined: int = Field(description="Findings examined: the newest open or rule-suppressed, at most 50,000.")
    changed: int = Field(description="Examined findings whose severity, suppression or rule tags would differ.")
    by_change: dict[str, int] = Field(description="Changed findings per kind of change (severity, suppressed, "
                                                  "tags); one finding may count under several.")
    samples: list[RulePreviewSample] = Field(description="Up to 10 changed findings, newest first.")
    truncated: bool = Field(description="True when more findings exist than were examined.")
