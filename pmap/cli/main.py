"""``pmapctl``: serve, migrate, keys, tokens, the connector catalog, webhook retention, ticket reconcile, the vendor
sandbox, imports."""

from __future__ import annotations

import getpass
import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pmap.connectors.base import Category
from pmap.core.errors import PmapError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from pmap.core.seams import Actor
    from pmap.core.settings import Settings
    from pmap.core.state import AppState

app = typer.Typer(no_args_is_help=True, help="PMAP control: the connector hub of a vulnerability management platform.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
keys_app = typer.Typer(no_args_is_help=True, help="Platform keys.")
tokens_app = typer.Typer(no_args_is_help=True, help="API tokens.")
connectors_app = typer.Typer(no_args_is_help=True, help="The connector catalog.")
webhooks_app = typer.Typer(no_args_is_help=True, help="Inbound webhook deliveries.")
tickets_app = typer.Typer(no_args_is_help=True, help="Tickets opened for findings on work trackers.")
audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit chain.")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(tokens_app, name="tokens")
app.add_typer(connectors_app, name="connectors")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(tickets_app, name="tickets")
app.add_typer(audit_app, name="audit")

# diagnostics and reports on stderr: one line each, never wrapped at a pipe's 80 columns (scripts grep them)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> NoReturn:
    # escaped: a message quoting input or an API answer may hold "[...]", which Rich would take as markup
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code=1)


def _settings() -> Settings:
    """The settings from the environment, or a one-line error per invalid PMAP_ variable (no traceback)."""
    from pydantic import ValidationError

    from pmap.core.settings import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(f"PMAP_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors())
        _fail(f"invalid configuration: {problems}")
        raise  # unreachable: _fail exits


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the API (an embedded SQLite database is migrated first)."""
    import uvicorn

    from pmap.app import create_app, start
    from pmap.core.db import database_location
    from pmap.core.files import private_directory
    from pmap.core.logs import configure_logging
    from pmap.core.tls import ReloadingTls, check_server_tls
    from pmap.migrations import upgrade

    settings = _settings()
    configure_logging(production=settings.production, level=settings.log_level)
    said = logging.getLogger("pmap.cli")
    # said first, so a start from the wrong directory (./.pmap is relative) is seen at once
    said.info("data directory %s; database %s", settings.data_dir, database_location(settings.resolved_database_url))
    try:
        tls = check_server_tls(settings)
        private_directory(settings.data_dir)
        if settings.is_sqlite:
            upgrade(settings.resolved_database_url)
        preflight = start(settings)  # pre-flight: key, schema and canary, with a clear message
        preflight.engine.dispose()
        preflight.keys.close()  # the served app opens its own HSM session
        application = create_app(settings)
    except PmapError as exc:
        _fail(exc.message)
    config = uvicorn.Config(application, host=host, port=port, log_config=None, proxy_headers=False,
                            ssl_certfile=settings.tls_cert_file, ssl_keyfile=settings.tls_key_file)
    if tls is None:
        if settings.production:  # its cookies are Secure and it sends HSTS: a browser reaches it over HTTPS only
            said.warning("serving plain HTTP: in production put a TLS-terminating proxy in front, or set "
                         "PMAP_TLS_CERT_FILE and PMAP_TLS_KEY_FILE")
    else:
        config.load()
        config.ssl, served = tls  # PMAP's context (TLS 1.2+, AEAD suites), not the server's default
        ReloadingTls(settings, config.ssl, served).start(settings.tls_reload_seconds)  # renewals without a restart
        said.info("serving HTTPS with the certificate for %s (SHA-256 %s), valid until %s UTC", served.subject,
                  served.sha256, f"{served.not_after:%Y-%m-%d %H:%M}")
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # as uvicorn.run: a server that never started (its port taken) exits non-zero
        raise typer.Exit(3)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs this worker runs at once (processes, or threads).",
                                             min=1, max=64)] = 2,
    pool: Annotated[str, typer.Option(help="prefork (processes: CPU-bound imports run in parallel), threads, or "
                                           "solo (one job at a time, in this process).")] = "prefork",
    queues: Annotated[str | None, typer.Option(help="Queues to take jobs from, comma-separated: <namespace>.jobs "
                                                    "(imports, syncs), .scans (scan launches), .webhooks "
                                                    "(deliveries). Default: all three.")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve this worker's Prometheus metrics (its pool processes' jobs, decrypts and data keys, summed) at "
             "http://<metrics-host>:<port>/metrics, no token. Off by default.", min=1, max=65535)] = None,
    metrics_host: Annotated[str, typer.Option(help="Interface the metrics port listens on.")] = "127.0.0.1",
) -> None:
    """Run jobs from the broker (PMAP_BROKER_URL): imports, syncs, scan launches, webhook deliveries."""
    from pmap.core.logs import configure_logging
    from pmap.jobs import worker_metrics

    settings = _settings()
    configure_logging(production=settings.production, level=settings.log_level)
    if pool not in ("prefork", "threads", "solo"):
        _fail("--pool must be prefork, threads or solo")
    counting: Path | None = None
    if metrics_port is not None:
        if not settings.metrics_enabled:
            _fail("--metrics-port: metrics are off (PMAP_METRICS_ENABLED=false)")
        try:
            counting = worker_metrics.prepare(settings.data_dir)  # before prometheus_client is imported, below
        except PmapError as exc:
            _fail(exc.message)

    try:
        _work(settings, concurrency, pool, queues, metrics_port, metrics_host)
    finally:  # a worker that stopped, or never started, leaves no counting files
        if counting is not None:
            worker_metrics.remove(counting)


def _work(settings: Settings, concurrency: int, pool: str, queues: str | None, metrics_port: int | None,
          metrics_host: str) -> None:
    """`pmapctl worker` once its options are checked: the pre-flight, the metrics port, Celery's worker."""
    import os

    from pmap.app import Worker, broker_dispatcher, start
    from pmap.jobs import worker_metrics
    from pmap.jobs.broker import install_worker, queue_names, redacted

    dispatcher = broker_dispatcher(settings)
    if dispatcher is None or settings.broker_url is None:
        _fail("pmapctl worker needs PMAP_BROKER_URL (redis://... or amqp://...); without a broker, "
              "`pmapctl serve` runs the jobs itself")
    try:
        preflight = start(settings)  # pre-flight, before any fork: schema, key and canary, a clear message
        preflight.engine.dispose()
        preflight.keys.close()  # with --pool threads or solo, the Worker's start opens its own here
    except PmapError as exc:
        _fail(exc.message)
    queues = queues or ",".join(queue_names(settings.broker_namespace))
    install_worker(lambda: Worker(settings))  # each worker process builds its own after the fork
    said = logging.getLogger("pmap.cli")
    said.info("worker of %s: %s x%d on %s", redacted(settings.broker_url.get_secret_value()), pool, concurrency,
              queues)
    metrics_server = None
    try:
        if metrics_port is not None:
            metrics_server = worker_metrics.serve(metrics_host, metrics_port)
            said.info("worker metrics at http://%s:%d/metrics", metrics_host, metrics_port)
        dispatcher.celery.worker_main(["worker", f"--concurrency={concurrency}", f"--pool={pool}",
                                       f"--queues={queues}", f"--hostname=pmap-{os.getpid()}@%h",  # unique per host
                                       "--loglevel=" + settings.log_level.upper(), "--without-gossip",
                                       "--without-mingle", "--without-heartbeat"])
    except PmapError as exc:
        _fail(exc.message)
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()


@app.command()
def scheduler() -> None:
    """Run the scheduler alone (with a broker; without one `pmapctl serve` runs it): due syncs and secret
    rotations, ticket reconcile, jobs whose worker died, webhook deliveries left unprocessed. Several may run: a
    due run starts once."""
    import signal
    import threading

    from pmap.app import broker_dispatcher, compose_jobs, compose_scheduler, start
    from pmap.core.logs import configure_logging

    settings = _settings()
    configure_logging(production=settings.production, level=settings.log_level)
    dispatcher = broker_dispatcher(settings)
    if dispatcher is None:
        _fail("pmapctl scheduler needs PMAP_BROKER_URL; without a broker, `pmapctl serve` runs the scheduler")
    try:
        state = start(settings)
    except PmapError as exc:
        _fail(exc.message)
    jobs = compose_jobs(state, dispatcher)
    runner = compose_scheduler(state, jobs, dispatcher)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    runner.start()
    logging.getLogger("pmap.cli").info("scheduler running (every %g s)", settings.scheduler_interval)
    stop.wait()
    runner.shutdown()
    jobs.shutdown()
    state.engine.dispose()
    state.keys.close()


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Migrate the configured database (PMAP_DATABASE_URL, or the embedded SQLite file)."""
    from pmap.core.db import database_location
    from pmap.core.files import private_directory
    from pmap.migrations import upgrade

    settings = _settings()
    try:
        private_directory(settings.data_dir)
        upgrade(settings.resolved_database_url, revision)
    except PmapError as exc:
        _fail(exc.message)
    err.print(f"database migrated to {revision}: {escape(database_location(settings.resolved_database_url))}")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new random 256-bit platform key (base64) for PMAP_PLATFORM_KEY."""
    from pmap.core.crypto import generate_key

    print(generate_key())


@keys_app.command("rotate")
def keys_rotate(
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Integrations per committed batch.")] = 200,
    new_data_keys: Annotated[bool, typer.Option(
        "--new-data-keys", help="Also re-seal every secret under a new data key (through the audited decrypt path), "
                                "not only re-wrap data keys.")] = False,
) -> None:
    """Move every stored secret under the configured key-encryption key (PMAP_PKCS11_KEY_LABEL, else the keyring's
    primary) while servers and workers keep serving; killed, run it again: it continues where it stopped."""
    from pmap.audit.service import SessionAudit
    from pmap.credentials.rotation import rotate

    def progress(walked: int, total: int) -> None:
        err.print(f"  {walked:,}/{total:,} integrations", highlight=False)

    with _started() as state:
        err.print(f"rotating to key-encryption key {state.keys.configured}", highlight=False)
        report = rotate(state.sessions, state.keys, state.resolver, SessionAudit, batch=batch,
                        new_data_keys=new_data_keys, progress=progress,
                        settle_seconds=state.settings.kek_refresh_seconds,
                        waiting=lambda s: err.print(f"waiting {s:.0f} s for running processes to seal under the new "
                                                    "key (PMAP_KEK_REFRESH_SECONDS)", highlight=False))
    if report.resumed_after:
        err.print(f"continued an interrupted rotation after {report.resumed_after:,} integrations (its committed "
                  f"batches had re-wrapped {report.resumed_rewrapped} data key(s) and re-sealed "
                  f"{report.resumed_resealed} envelope(s))", highlight=False)
    err.print(f"re-wrapped {report.rewrapped} data key(s) and re-sealed {report.resealed} envelope(s) under "
              f"{report.target}{' in this run' if report.resumed_after else ''}; {report.current} already used it; "
              f"moved {report.audit_keys} audit key(s)", highlight=False)
    if report.changed_meanwhile:
        err.print(f"{report.changed_meanwhile} envelope(s) were sealed again by a running server meanwhile and left "
                  "as it wrote them", highlight=False)
    if report.failed:
        _fail(f"{len(report.failed)} envelope(s) could not be opened and still use their old key (keep it; enter "
              "those integrations' secrets again, then rotate again): " + ", ".join(report.failed))
    if report.remaining:
        _fail(f"{report.remaining} envelope(s) are still under another key (written by a process still configured "
              "with it?): give every process the new key, then run `pmapctl keys rotate` again")


@keys_app.command("verify")
def keys_verify() -> None:
    """Open every stored secret with the configured keys (audited, purpose key_verification) and name, by integration
    id and column, any that does not open; prints no secret. Exit 1 when one does not open."""
    from pmap.credentials.rotation import verify_all

    with _started() as state, state.sessions() as session:
        report = verify_all(session, state.keys, state.resolver)
    err.print(f"{report.opened} envelope(s) and {report.audit_keys} audit key(s) open with the configured keys",
              highlight=False)
    for key, count in sorted(report.by_key.items()):
        err.print(f"  {count:>8,}  {key}", highlight=False)
    if report.failed:
        _fail(f"{len(report.failed)} envelope(s) do not open: " + ", ".join(report.failed))


@keys_app.command("create-kek")
def keys_create_kek(
    label: Annotated[str, typer.Option(help="The new key's label (CKA_LABEL); then set PMAP_PKCS11_KEY_LABEL to it.")],
) -> None:
    """Generate a new AES-256 key-encryption key inside the configured PKCS#11 token (never extractable)."""
    from pmap.credentials.keyring import load_keys
    from pmap.credentials.pkcs11 import Pkcs11Provider

    settings = _settings()
    try:
        provider = load_keys(settings, sealed_data_exists=lambda: True).providers.get(Pkcs11Provider.name)
        if not isinstance(provider, Pkcs11Provider):
            _fail("no PKCS#11 token is configured (PMAP_PKCS11_MODULE, PMAP_PKCS11_TOKEN_LABEL, PMAP_PKCS11_PIN_FILE, "
                  "PMAP_PKCS11_KEY_LABEL)")
        provider.create_key(label)
    except PmapError as exc:
        _fail(exc.message)
    err.print(f"created key-encryption key pkcs11:{label} in token {provider.token_label!r}", highlight=False)


def _cli_actor(organization_id: uuid.UUID) -> Actor:
    """The audit actor of a pmapctl command: the CLI and the operating-system user who ran it."""
    from pmap.core.seams import Actor
    from pmap.core.text import CONTROL_CHARS

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (a bare container)
        user = "unknown"
    return Actor(kind="cli", name="pmapctl:" + CONTROL_CHARS.sub("?", user)[:64], organization_id=organization_id)


@contextmanager
def _started() -> Iterator[AppState]:
    """The started service's state for one command (its database, keys and audit); exit 1 with the reason when it
    does not start or the command's work fails with a PMAP error; the database is closed afterwards."""
    from pmap.app import start

    try:
        state = start(_settings())
    except PmapError as exc:
        _fail(exc.message)
    try:
        yield state
    except PmapError as exc:
        _fail(exc.message)
    finally:
        state.engine.dispose()
        state.keys.close()


@contextmanager
def _migrated_session() -> Iterator[Session]:
    """A session on the configured database, committed on success; exit 1 when it is not migrated."""
    from pmap.core.db import make_engine, make_session_factory, transaction
    from pmap.migrations import current_revision, head_revision

    settings = _settings()
    engine = make_engine(settings.resolved_database_url, busy_timeout=settings.sqlite_busy_timeout)
    try:
        if current_revision(engine) != head_revision():
            _fail("the database is not migrated: run `pmapctl db upgrade` first")
        factory = make_session_factory(engine)
        _seal_audit_after_commits(settings, engine, factory)
        with transaction(factory) as session:
            yield session
    except PmapError as exc:
        _fail(exc.message)
    finally:
        engine.dispose()


def _seal_audit_after_commits(settings: Settings, engine: Engine, factory: sessionmaker[Session]) -> None:
    """Seal the audit events a command writes into the chain right after its commit (as the service does); without
    usable keys they stay unsealed and `pmapctl audit verify` names them."""
    from pmap.audit.chain import AuditChain, AuditStream
    from pmap.credentials.keyring import load_keys

    try:
        keys = load_keys(settings, sealed_data_exists=lambda: True)
    except PmapError as exc:
        logging.getLogger("pmap.cli").warning("audit events of this command stay unsealed: %s", exc.message)
        return
    stream = AuditStream(settings.audit_stream) if settings.audit_stream else None
    AuditChain(engine, keys, stream).install(factory)


def _shown(text: str) -> str:
    """A database value made safe to print: no control or direction-changing characters."""
    from pmap.core.text import CONTROL_CHARS, DECEPTIVE_CHARS

    return DECEPTIVE_CHARS.sub("?", CONTROL_CHARS.sub("?", text))


@tokens_app.command("create")
def tokens_create(
    org: Annotated[str, typer.Option("--org", help="Organization (created if needed).")],
    role: Annotated[str, typer.Option("--role", help="viewer, operator or admin.")],
    name: Annotated[str, typer.Option("--name", help="A label for the token.")] = "cli",
    expires_in_days: Annotated[int | None, typer.Option(
        "--expires-in-days", min=1, max=3650, help="Days until it stops working (default: never).")] = None,
) -> None:
    """Create an API token (audited) and print it once, on the last line."""
    from pmap.auth.principal import Role
    from pmap.auth.service import expiry_in, get_or_create_org, issue_token
    from pmap.core.text import check_one_line

    try:
        role_value = Role(role.lower())
    except ValueError:
        _fail("role must be viewer, operator or admin")
    try:
        check_one_line(name)
    except ValueError as exc:
        _fail(f"--name {exc}")
    if not 1 <= len(name) <= 200:
        _fail("--name must be 1-200 characters")
    with _migrated_session() as session:
        organization = get_or_create_org(session, org)
        issued = issue_token(session, organization, role_value, name, actor=_cli_actor(organization.id),
                             expires_at=expiry_in(expires_in_days))
        token, expires = issued.token, issued.row.expires_at
    until = f", until {_when(expires)}" if expires else ""
    err.print(f"created {role_value.value} token '{escape(_shown(name))}' for organization '{escape(_shown(org))}'"
              f"{until}; it is shown once:")
    print(token)


def _when(moment: datetime | None, never: str = "never") -> str:
    return moment.strftime("%Y-%m-%dT%H:%MZ") if moment else never


@tokens_app.command("list")
def tokens_list(org: Annotated[str, typer.Option("--org", help="Organization.")]) -> None:
    """List an organization's tokens: id, name, role, prefix, created, last used, expiry, status (never a value)."""
    from sqlalchemy import select

    from pmap.auth.models import ApiToken, Organization
    from pmap.core.db import utcnow

    with _migrated_session() as session:
        organization = session.scalar(select(Organization).where(Organization.name == org))
        if organization is None:
            _fail(f"no organization is named '{_shown(org)}'")
        rows = session.scalars(select(ApiToken).where(ApiToken.organization_id == organization.id)
                               .order_by(ApiToken.created_at, ApiToken.id)).all()
        now = utcnow()
        table = [("ID", "NAME", "ROLE", "PREFIX", "CREATED", "LAST USED", "EXPIRES", "STATUS")] + [
            (str(r.id), _shown(r.name), r.role, _shown(r.prefix), _when(r.created_at), _when(r.last_used_at),
             _when(r.expires_at), "revoked" if r.revoked_at else "expired" if r.expires_at and r.expires_at <= now
             else "active") for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:  # plain text: a name holding "[bold]" is printed as it is, never as markup
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="The token's id (see `pmapctl tokens list`).")]) -> None:
    """Revoke a token (audited); never the organization's last active admin token."""
    from pmap.auth.models import ApiToken
    from pmap.auth.service import revoke

    try:
        ident = uuid.UUID(token_id)
    except ValueError:
        _fail("not a token id: give the ID column of `pmapctl tokens list`")
    with _migrated_session() as session:
        row = session.get(ApiToken, ident)
        if row is None:
            _fail("no token has this id")
        was_revoked = row.revoked_at is not None
        row = revoke(session, ident, actor=_cli_actor(row.organization_id), organization_id=row.organization_id)
        label = f"{row.role} token '{escape(_shown(row.name))}' ({ident})"
    err.print(f"{label} was already revoked" if was_revoked else f"revoked {label}")


def _catalog_table(category: str | None) -> Table:
    """The catalog, one section per category, in three columns that fit 80 characters: the vendor
    key (never wrapped: it is what ``--vendor`` and the API take), its name, and what it offers."""
    from rich import box

    from pmap.connectors.catalog import connector_types

    table = Table(title="PMAP connector types", box=box.SIMPLE_HEAD, pad_edge=False, expand=True)
    table.add_column("vendor", no_wrap=True)
    table.add_column("name", ratio=1, overflow="fold")
    # wraps between items, never inside one (fold only if an item alone is wider than the column)
    table.add_column("offers", ratio=2, overflow="fold")
    types = sorted(connector_types().values(), key=lambda c: (c.category.value, c.vendor))
    shown = [ct for ct in types if category is None or ct.category.value == category]
    for i, ct in enumerate(shown):
        if i == 0 or ct.category != shown[i - 1].category:
            table.add_row(f"[bold]{ct.category.value}[/]", "", "")
        offers = [f"operations: {', '.join(ct.offered()) or 'none (file import only)'}"]
        if ct.report_formats:
            offers.append(f"formats: {', '.join(ct.report_formats)}")
        if ct.webhook_scheme:
            offers.append(f"webhooks: {ct.webhook_scheme}")
        last = i + 1 == len(shown) or shown[i + 1].category != ct.category
        table.add_row(ct.vendor, escape(ct.display_name), "\n".join(offers), end_section=last)
    return table


@connectors_app.command("list")
def connectors_list(
    category: Annotated[Category | None, typer.Option(help="Only this category.", case_sensitive=False)] = None,
) -> None:
    """Print the connector catalog, grouped by category (fits an 80-column terminal)."""
    Console().print(_catalog_table(category.value if category else None))


@webhooks_app.command("prune")
def webhooks_prune(
    days: Annotated[int | None, typer.Option(
        "--days", min=1, max=36500,
        help="Keep payloads this many days (default: PMAP_WEBHOOK_RETENTION_DAYS).")] = None,
) -> None:
    """Apply the webhook delivery retention now: clear old payloads, delete old key-less rows."""
    from pmap.core.db import make_engine, make_session_factory, transaction
    from pmap.webhooks import clock
    from pmap.webhooks.retention import prune_deliveries

    settings = _settings()
    retention = days or settings.webhook_retention_days
    engine = make_engine(settings.resolved_database_url, busy_timeout=settings.sqlite_busy_timeout)
    try:
        with transaction(make_session_factory(engine)) as session:
            result = prune_deliveries(session, clock.now(), retention)
    finally:
        engine.dispose()
    err.print(f"kept {retention} days: cleared {result.bodies_cleared} payload(s), "
              f"deleted {result.rows_deleted} delivery row(s) without a de-duplication key")


def _org_id(session: Session, name: str) -> uuid.UUID:
    from sqlalchemy import select

    from pmap.auth.models import Organization

    org_id = session.scalar(select(Organization.id).where(Organization.name == name))
    if org_id is None:
        _fail(f"no organization is named '{_shown(name)}'")
    return org_id


@audit_app.command("verify")
def audit_verify(
    org: Annotated[str | None, typer.Option("--org", help="Only this organization (default: every one).")] = None,
    from_seq: Annotated[int | None, typer.Option("--from", min=1, help="First seq to check (default: the anchor).")
                        ] = None,
    to_seq: Annotated[int | None, typer.Option("--to", min=1, help="Last seq to check (default: the head).")] = None,
) -> None:
    """Verify each organization's audit chain (every MAC, no gap, the head); exit 1 naming the first edited,
    deleted, reordered or inserted event. Never seals and never prints a key or an event's detail."""
    from pmap.audit.chain import verify_chain

    with _started() as state, state.sessions() as session:
        org_id = _org_id(session, org) if org is not None else None
        report = verify_chain(session, state.keys, organization_id=org_id, from_seq=from_seq, to_seq=to_seq)
    for chain in report.organizations:
        label = f"organization '{escape(_shown(chain.name))}'"
        if chain.problem is None:
            span = f"seq {chain.first_seq}..{chain.head_seq}" if chain.head_seq is not None else "no sealed events"
            err.print(f"{label}: intact, {chain.verified} event(s) verified ({span}; anchor {chain.anchor_seq})")
        else:
            err.print(f"[bold red]{label}: BROKEN:[/] {escape(chain.problem.message)}")
    if not report.ok:
        raise typer.Exit(code=1)


@audit_app.command("seal")
def audit_seal() -> None:
    """Seal audit events still unsealed now (the service seals after each commit; this catches up after a
    crash). Seals whatever is unsealed: run `pmapctl audit verify` first, which names rows inserted behind PMAP."""
    from pmap.audit.chain import AuditChain

    with _started() as state:
        chain = state.audit_chain
        sealed = chain.seal() if isinstance(chain, AuditChain) else 0
    err.print(f"sealed {sealed} audit event(s)")


@audit_app.command("prune")
def audit_prune(
    org: Annotated[str, typer.Option("--org", help="Organization.")],
    before_seq: Annotated[int, typer.Option("--before-seq", min=2, help="Delete the events with a lower seq.")],
) -> None:
    """Delete an organization's audit events before a seq by moving its chain's anchor there (recorded as an
    audit.prune event, itself chained); refused when the chain up to there does not verify."""
    from pmap.audit.chain import AuditChain, prune

    with _started() as state:
        with state.sessions() as session:
            org_id = _org_id(session, org)
        chain = state.audit_chain
        if not isinstance(chain, AuditChain):
            _fail("the audit chain is not available")
        result = prune(chain, org_id, before_seq, _cli_actor(org_id))
    err.print(f"deleted {result.deleted} audit event(s) of organization '{escape(_shown(org))}'; the chain now starts "
              f"at seq {result.anchor_seq}")


@tickets_app.command("reconcile")
def tickets_reconcile() -> None:
    """Ask the trackers for open tickets no webhook updated lately (PMAP_TICKET_RECONCILE_AFTER); print a summary."""
    from pmap.tickets.reconcile import reconcile_tickets

    with _started() as state:
        summary = reconcile_tickets(state, actor_for=_cli_actor)
    err.print(f"checked {summary.checked} ticket(s): {summary.changed} changed, {summary.closed} closed, "
              f"{summary.findings_resolved} finding(s) resolved, {summary.failed} failed")
    for line in summary.failures:  # plain text: a vendor's message is printed as it is, never as markup
        print(_shown(line))
    if summary.failed:
        raise typer.Exit(code=1)  # so a scheduler running it sees a tracker that did not answer


@app.command("import")
def import_report(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The report file.")],
    integration: Annotated[str, typer.Option("--integration", help="The integration id to import into.")],
    report_format: Annotated[str | None, typer.Option("--format", help="Format key (detected when omitted).")] = None,
    scope: Annotated[str | None, typer.Option("--scope", help="Report scope (default: default).")] = None,
    partial: Annotated[bool, typer.Option(
        "--partial", help="A partial report: findings it lacks are not marked resolved.")] = False,
    resolve: Annotated[str | None, typer.Option(
        "--resolve", help="What a full report resolves of the findings it lacks: covered (default: those on the "
                          "hosts, sites, repositories or assets it covered; an empty report resolves nothing) or "
                          "scope (every finding of the scope, even when the report is empty).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON (no progress bar).")] = False,
    url: Annotated[str, typer.Option("--url", envvar="PMAP_URL", help="PMAP API base URL.")] = "http://127.0.0.1:8000",
    token: Annotated[str | None, typer.Option("--token", envvar="PMAP_TOKEN", help="API token (operator+).")] = None,
) -> None:
    """Upload a scanner report to an integration, wait for the import, print its summary."""
    from pmap.findings.cli_import import CliError, render_summary, upload_report

    if not token:
        _fail("an API token is needed: pass --token or set PMAP_TOKEN")
    try:
        summary = upload_report(file, integration, url=url, token=token or "", fmt=report_format, scope=scope,
                                full=not partial, resolve=resolve, show_progress=not as_json and err.is_terminal,
                                console=err)
    except CliError as exc:
        _fail(str(exc))
    render_summary(summary, as_json=as_json, console=Console())


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Loopback interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8900,
    tls: Annotated[bool, typer.Option(help="Serve HTTPS with a self-signed certificate made now.")] = False,
) -> None:
    """Serve the vendor sandbox: simulated vendor APIs for trying PMAP without vendor accounts."""
    from pmap_sandbox.server import run

    if not host.startswith("127.") and host not in ("localhost", "::1"):
        _fail("the sandbox listens on loopback only")
    run(host, port, tls)


def main() -> None:  # pragma: no cover - console entry point
    """Entry point."""
    try:
        app()
    except PmapError as exc:  # outside the app, where typer.Exit (raised by _fail) is not caught
        err.print(f"[bold red]error:[/] {escape(exc.message)}")
        sys.exit(1)
