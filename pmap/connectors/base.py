"""The connector contract: categories, archetypes, operations, and what a vendor type declares.

A connector *type* is code: a :class:`ConnectorType` entry in :mod:`pmap.connectors.catalog`,
whose ``implementation`` carries the vendor logic. A connector *instance* is an integration row.
Implementations never decrypt anything and never build HTTP clients themselves: they receive an
:class:`OperationContext` holding validated settings, resolved credentials and a factory for the
one guarded outbound HTTP layer.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from pmap.core import clock
from pmap.core.outbound import OutboundClient, OutboundConfig
from pmap.core.text import check_one_line, check_text
from pmap.core.urlpath import path_setting_problem
from pmap.findings.formats.base import ParsedFinding


class Category(str, enum.Enum):
    """The nine connector categories."""

    VM = "vm"
    DAST = "dast"
    SAST = "sast"
    SCA = "sca"
    NETWORK_DISCOVERY = "network_discovery"
    MOBILE = "mobile"
    ITSM = "itsm"
    TICKETING = "ticketing"
    CICD = "cicd"


class Operation(str, enum.Enum):
    """Operations a connector may offer; each archetype declares which apply to its category."""

    TEST_CONNECTION = "test_connection"
    LAUNCH_SCAN = "launch_scan"
    SCAN_STATUS = "scan_status"
    FETCH_FINDINGS = "fetch_findings"
    CREATE_TICKET = "create_ticket"
    SYNC_STATUS = "sync_status"
    CHECK_PERMISSIONS = "check_permissions"
    REGISTER_WEBHOOK = "register_webhook"
    FETCH_PIPELINE_REPORTS = "fetch_pipeline_reports"
    SYNC_FINDINGS = "sync_findings"


# --- schemas every vendor type builds on -------------------------------------------------------

#: connection settings whose values may span lines
MULTILINE_SETTINGS = frozenset({"ca_bundle"})

#: words of a field's name spelled as people spell them in its title (the forms the console draws from the schemas
#: label ``base_url`` "Base URL", not pydantic's "Base Url")
_TITLE_WORDS = {"url": "URL", "tls": "TLS", "ca": "CA", "id": "ID", "ids": "IDs", "api": "API", "pem": "PEM",
                "sso": "SSO", "uri": "URI", "http": "HTTP", "https": "HTTPS", "ip": "IP", "ips": "IPs",
                "oauth": "OAuth", "jwt": "JWT", "pat": "PAT", "ssl": "SSL"}


def field_title(name: str, _info: object) -> str:
    """The JSON Schema title of a connector setting or credential without an explicit one."""
    return " ".join(_TITLE_WORDS.get(word, word.capitalize()) for word in name.split("_") if word)


class ConnectionSettings(BaseModel):
    """Non-secret connection settings common to every API connector. Vendors subclass it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, field_title_generator=field_title)

    base_url: str = Field(description="The vendor API's base URL (scheme, host, optional port and path).")
    verify_tls: bool = Field(default=True, description="Verify the server's TLS certificate (keep on).")
    ca_bundle: str | None = Field(default=None, description="PEM CA certificates to trust for this integration.")
    timeout_seconds: float = Field(
        default=10.0, gt=0, le=120,
        description="Per-call timeout in seconds, honoured up to 120: an operation (a connection test included) "
        "runs for the deployment's budget (PMAP_CONNECTION_TEST_TIMEOUT for a test) or this, whichever is longer.")

    #: settings that become part of a vendor URL path: ``"segment"`` (one) or ``"segments"`` (``a/b``)
    path_settings: ClassVar[dict[str, str]] = {}

    @field_validator("*")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        # settings are one line (a PEM bundle spans lines); NUL and control characters would reach
        # a vendor's URL or header, a log line, or a PostgreSQL text column that refuses NUL
        if not isinstance(value, str):
            return value
        value = check_text(value) if info.field_name in MULTILINE_SETTINGS else check_one_line(value)
        kind = cls.path_settings.get(info.field_name or "")
        # "../otherorg" in a path setting would carry the stored credential outside the configured base
        if kind and (problem := path_setting_problem(value, kind)):
            raise ValueError(problem)
        return value


class FileOnlySettings(BaseModel):
    """A file-only tool has no connection; reports are imported."""

    model_config = ConfigDict(extra="forbid", field_title_generator=field_title)


class NoCredentials(BaseModel):
    """A file-only tool holds no credentials."""

    model_config = ConfigDict(extra="forbid")


#: the shortest credential value the service keeps (every field of a credentials model, secret or
#: not); shorter values could not be masked in logs and messages without masking ordinary words
SECRET_MIN_CHARS = 4


class Credentials(BaseModel):
    """Base of every vendor's credential model: all secret fields are ``SecretStr``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, field_title_generator=field_title)


def secret_field_names(model: type[BaseModel]) -> list[str]:
    """Fields of ``model`` whose type is (optionally) ``SecretStr``."""
    names = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        args = typing.get_args(ann)
        if ann is SecretStr or SecretStr in args:
            names.append(name)
    return names


def model_json_schema(model: type[BaseModel], *, credentials: bool = False) -> dict[str, Any]:
    """The JSON Schema of a settings/credentials model; secret properties carry ``writeOnly``, and
    every property of a ``credentials`` model the ``minLength`` the service enforces on it."""
    schema = model.model_json_schema()
    secrets = set(secret_field_names(model))
    _plain_descriptions(schema)
    for name, prop in schema.get("properties", {}).items():
        if name in secrets:
            prop["writeOnly"] = True
            prop.setdefault("format", "password")
        if credentials:
            prop["minLength"] = max(prop.get("minLength", 0), SECRET_MIN_CHARS)
    schema.setdefault("required", [])
    return schema


def _plain_descriptions(schema: dict[str, Any]) -> None:
    """Descriptions as forms show them: the docstrings' reST literals (````X-ApiKeys````) become Markdown's
    (```X-ApiKeys```), which Swagger UI renders and the console shows as plain text."""
    for node in (schema, *schema.get("properties", {}).values()):
        if isinstance(node.get("description"), str):
            node["description"] = node["description"].replace("``", "`")


# --- results -----------------------------------------------------------------------------------

class ConnectionTestResult(BaseModel):
    """Diagnostics of a connection test. Never carries a secret."""

    ok: bool
    latency_ms: float | None = None
    product: str | None = None
    version: str | None = None
    license: dict[str, Any] | None = None
    warnings: list[str] = Field(default_factory=list)
    failed_step: str | None = None
    message: str | None = None


@dataclass(slots=True)
class Probe:
    """What a vendor's ``test_connection`` learned; the runner adds timing and common warnings."""

    product: str | None = None
    version: str | None = None
    license: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    message: str | None = None


class PermissionState(str, enum.Enum):
    GRANTED = "granted"
    MISSING = "missing"
    UNKNOWN = "unknown"


class PermissionCheck(BaseModel):
    """One permission PMAP needs (or an excess right it flags)."""

    name: str
    needed_for: str
    state: PermissionState


class PermissionReport(BaseModel):
    """Least-privilege report: what is granted, what is missing, what is more than needed."""

    ok: bool
    permissions: list[PermissionCheck]
    excess: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class TicketRequest(BaseModel):
    """A ticket PMAP asks a work tracker to open."""

    title: str
    description: str
    severity: str | None = None
    labels: list[str] = Field(default_factory=list)
    project: str | None = None  # Jira project key, GitHub owner/repo, ... (defaults from connection)


class TicketRef(BaseModel):
    key: str
    url: str | None = None
    status: str | None = None
    done: bool = False


class WebhookRegistration(BaseModel):
    """Install PMAP's receiver on the vendor, with the shared secret where the vendor supports one."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    url: str
    secret: SecretStr | None = None
    events: list[str] = Field(default_factory=list)
    #: the vendor's id of the hook PMAP registered before (it may point at an older receiving URL):
    #: replaced or removed, so no stale hook keeps delivering, with an old secret, to an old address
    previous_hook_id: str | None = None


class WebhookRegistered(BaseModel):
    hook_id: str
    url: str
    signed: bool
    ping_supported: bool = False


class ScanRef(BaseModel):
    scan_id: str
    run_id: str | None = None


class ScanState(BaseModel):
    scan_id: str
    status: str  # queued | running | completed | failed | canceled
    detail: str | None = None


class ReportArtifact(BaseModel):
    """A report file fetched from a vendor, to feed the importer: its bytes, or (when the operation spools
    downloads, see :attr:`OperationContext.spool`) the temporary file holding them."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    format: str | None
    content: bytes = b""
    path: Path | None = None


@dataclass(frozen=True, slots=True)
class FindingsPull:
    """What a sync asks a vendor for."""

    since: datetime | None = None  # only what changed since (the last successful sync's start); None: all
    state: dict[str, Any] = field(default_factory=dict)  # what the vendor type kept from its last sync


@dataclass(slots=True)
class FindingsFeed:
    """A vendor's findings, pulled one page or chunk at a time as ``findings`` is iterated.

    ``format`` is the report format key whose severity mapper and finding identity the pulled findings
    follow (the vendor's API usually returns what its export file holds). ``complete`` is True when the
    feed covers everything the integration's vendor scope holds (so a finding absent from it may be
    resolved); an incremental pull, which asked only for changes, is never complete. ``state`` is what
    the implementation wants back in the next :class:`FindingsPull` (a cursor, a high-water mark);
    it is stored with the integration's last sync, so it must hold no secret. ``skipped`` counts the entries
    left out by design (a check that holds, a licence) while ``findings`` is iterated: a connector that reads
    what it pulls with a format's parser passes it on (``fmt.parse(stream, feed.skipped)``), so the sync's
    summary reports them as an upload's does.
    """

    format: str
    findings: Iterator[ParsedFinding]
    complete: bool
    state: dict[str, Any] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)


# --- the context handed to implementations ---------------------------------------------------

@dataclass(slots=True)
class OperationContext:
    """Everything one operation may use: validated settings, credentials, and the HTTP layer."""

    vendor: str
    purpose: str
    connection: Any  # the vendor's ConnectionSettings subclass instance
    credentials: Any  # the vendor's Credentials subclass instance (SecretStr values)
    outbound: OutboundConfig
    secrets: tuple[str, ...] = ()
    deadline: float | None = None  # clock.monotonic() by which the whole operation must end
    spool: Path | None = None  # a private directory large downloads stream into (memory stays bounded)

    def remaining(self) -> float:
        """Seconds left of the operation's budget."""
        if self.deadline is None:
            return self.outbound.budget
        return max(0.0, self.deadline - clock.monotonic())

    def client(self, base_url: str | None = None) -> OutboundClient:
        """A guarded HTTP client for the integration's base URL (or a sibling base URL), sharing
        the operation's one deadline with every other client of the operation."""
        budget = max(0.05, self.remaining())
        config = dataclasses.replace(self.outbound, budget=budget, timeout=min(self.outbound.timeout, budget))
        return OutboundClient(base_url or self.connection.base_url, config, secrets=self.secrets)

    def secret(self, name: str) -> str:
        """The plaintext of one credential field ('' when unset)."""
        value = getattr(self.credentials, name, None)
        return value.get_secret_value() if isinstance(value, SecretStr) else (value or "")


# --- what implementations provide: one Protocol per operation ------------------------------------

@runtime_checkable
class Connector(Protocol):
    """Every API connector: prove the credentials work and report what is on the other side.

    ``test_connection`` makes the cheapest *authenticated* call the vendor offers (an anonymous
    version endpoint alone proves nothing), reads version and license where the vendor exposes
    them, and returns a :class:`Probe`. It raises :class:`pmap.core.errors.UpstreamError` with the
    failing ``step`` (``auth`` for rejected credentials, ``permission`` for an account without the
    rights, ``response`` for an answer it cannot understand). It must not catch and hide errors.
    """

    def test_connection(self, ctx: OperationContext) -> Probe: ...


@runtime_checkable
class ChecksPermissions(Protocol):
    """Report what the stored credentials may do, what is missing, what is more than needed."""

    def check_permissions(self, ctx: OperationContext) -> PermissionReport: ...


@runtime_checkable
class RegistersWebhooks(Protocol):
    """Install PMAP's receiver on the vendor (replacing the hook PMAP registered before)."""

    def register_webhook(self, ctx: OperationContext, hook: WebhookRegistration) -> WebhookRegistered: ...


@runtime_checkable
class PingsWebhooks(Protocol):
    """Ask the vendor for a test delivery to a registered hook (auto-setup uses it; not an operation
    of the catalog, a capability of webhook registration)."""

    def ping_webhook(self, ctx: OperationContext, hook_id: str) -> None: ...


@runtime_checkable
class FetchesFindings(Protocol):
    """Fetch a scan's findings as a report file for the importer."""

    def fetch_findings(self, ctx: OperationContext, scan: ScanRef) -> ReportArtifact: ...


@runtime_checkable
class SyncsFindings(Protocol):
    """Pull the findings the vendor holds for this integration (a sync), streaming.

    ``pull_findings`` returns at once with a :class:`FindingsFeed` whose ``findings`` iterator fetches
    lazily: one page or export chunk in memory at a time, never the whole export. It honours
    ``pull.since`` where the vendor can filter by change time (and then returns ``complete=False``),
    waits out ``Retry-After`` and the vendor's documented rate limits (the guarded client retries;
    longer waits go through :mod:`pmap.core.clock`), and sets ``status`` on a finding the vendor
    reports as fixed or closed (``"fixed"``), so the sync resolves it, or stores it resolved when it
    is new. Errors are :class:`pmap.core.errors.UpstreamError` with the failing ``step``.
    """

    def pull_findings(self, ctx: OperationContext, pull: FindingsPull) -> FindingsFeed: ...


@runtime_checkable
class LaunchesScans(Protocol):
    """Start a configured scan."""

    def launch_scan(self, ctx: OperationContext, scan_id: str) -> ScanRef: ...


@runtime_checkable
class ReportsScanStatus(Protocol):
    """Follow a launched scan."""

    def scan_status(self, ctx: OperationContext, scan: ScanRef) -> ScanState: ...


@runtime_checkable
class CreatesTickets(Protocol):
    """Open a ticket on a work tracker."""

    def create_ticket(self, ctx: OperationContext, ticket: TicketRequest) -> TicketRef: ...


@runtime_checkable
class SyncsTicketStatus(Protocol):
    """Read a ticket's current status."""

    def sync_status(self, ctx: OperationContext, key: str) -> TicketRef: ...


@runtime_checkable
class FetchesPipelineReports(Protocol):
    """Fetch the security report artifacts of pipeline runs."""

    def fetch_pipeline_reports(self, ctx: OperationContext, ref: str | None = None) -> list[ReportArtifact]: ...


#: The Protocol of each operation: an implementation offers an operation exactly when it satisfies
#: its Protocol. Adding an operation is a member of :class:`Operation`, a Protocol, a line here, and
#: the archetypes that may offer it.
OPERATION_PROTOCOLS: dict[Operation, type] = {
    Operation.TEST_CONNECTION: Connector,
    Operation.LAUNCH_SCAN: LaunchesScans,
    Operation.SCAN_STATUS: ReportsScanStatus,
    Operation.FETCH_FINDINGS: FetchesFindings,
    Operation.CREATE_TICKET: CreatesTickets,
    Operation.SYNC_STATUS: SyncsTicketStatus,
    Operation.CHECK_PERMISSIONS: ChecksPermissions,
    Operation.REGISTER_WEBHOOK: RegistersWebhooks,
    Operation.FETCH_PIPELINE_REPORTS: FetchesPipelineReports,
    Operation.SYNC_FINDINGS: SyncsFindings,
}


# --- archetypes: what each category may offer ---------------------------------------------------

class ScannerConnector(Connector, ChecksPermissions, SyncsFindings, FetchesFindings, LaunchesScans,
                       ReportsScanStatus, RegistersWebhooks, Protocol):
    """Scanners (VM, DAST, SAST, SCA, network discovery, mobile): everything one may offer."""


class WorkTrackerConnector(Connector, CreatesTickets, SyncsTicketStatus, ChecksPermissions, RegistersWebhooks,
                           Protocol):
    """ITSM and ticketing: everything a work tracker may offer."""


class PipelineConnector(Connector, FetchesPipelineReports, ChecksPermissions, RegistersWebhooks, Protocol):
    """CI/CD: everything a pipeline may offer."""


def operations_of(archetype: type) -> tuple[Operation, ...]:
    """The operations an archetype Protocol comprises, in the order its bases are written (the order
    the catalog lists a vendor type's operations in)."""
    by_protocol = {protocol: op for op, protocol in OPERATION_PROTOCOLS.items()}
    return tuple(by_protocol[base] for base in archetype.__mro__ if base in by_protocol)


#: What each category's archetype may offer, in catalog order. A vendor type offers a subset (always
#: test_connection when it has an API; nothing when it is a file-only tool).
ARCHETYPES: dict[Category, tuple[Operation, ...]] = {
    Category.VM: operations_of(ScannerConnector),
    Category.DAST: operations_of(ScannerConnector),
    Category.SAST: operations_of(ScannerConnector),
    Category.SCA: operations_of(ScannerConnector),
    Category.NETWORK_DISCOVERY: operations_of(ScannerConnector),
    Category.MOBILE: operations_of(ScannerConnector),
    Category.ITSM: operations_of(WorkTrackerConnector),
    Category.TICKETING: operations_of(WorkTrackerConnector),
    Category.CICD: operations_of(PipelineConnector),
}


def _stubbed(implementation: object, protocol: type) -> bool:
    """Whether ``implementation`` names ``protocol`` as a base but leaves one of its methods the
    Protocol's own empty body (declared, not implemented)."""
    cls = type(implementation)
    return protocol in cls.__mro__ and any(
        getattr(cls, name, None) is member for name, member in vars(protocol).items()
        if callable(member) and not name.startswith("_"))


def satisfied_operations(implementation: object) -> tuple[Operation, ...]:
    """The operations whose Protocol ``implementation`` satisfies, with a method of its own."""
    return tuple(op for op, protocol in OPERATION_PROTOCOLS.items()
                 if isinstance(implementation, protocol) and not _stubbed(implementation, protocol))


def unimplemented_operations(implementation: object) -> tuple[Operation, ...]:
    """Operations whose Protocol ``implementation`` subclasses without implementing its method."""
    return tuple(op for op, protocol in OPERATION_PROTOCOLS.items() if _stubbed(implementation, protocol))


@dataclass(frozen=True, slots=True)
class ConnectorType:
    """A vendor type: what it is, what it needs, and the code that talks to it.

    ``implementation`` is ``None`` for a file-only tool (reports are imported, nothing is called).
    ``operations`` is derived, not declared: the operations whose Protocol the implementation
    satisfies, in its archetype's order; the catalog checks they belong to the category's archetype.
    """

    vendor: str
    display_name: str
    category: Category
    connection_model: type[BaseModel] = FileOnlySettings
    credentials_model: type[BaseModel] = NoCredentials
    default_base_url: str | None = None
    report_formats: tuple[str, ...] = ()
    webhook_scheme: str | None = None
    implementation: Connector | None = None
    docs_url: str | None = None
    notes: str | None = None
    operations: tuple[Operation, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        order = ARCHETYPES[self.category]
        offered = sorted(satisfied_operations(self.implementation),
                         key=lambda op: order.index(op) if op in order else len(order))
        object.__setattr__(self, "operations", tuple(offered))  # derived once: the dataclass is frozen

    @property
    def file_only(self) -> bool:
        return self.implementation is None

    def offered(self) -> list[str]:
        """The offered operations' names, in catalog order."""
        return [op.value for op in self.operations]
