"""``pmapctl``: serve, migrate, keys, tokens, the connector catalog, webhook retention, the vendor sandbox, imports."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pmap.core.errors import PmapError

if TYPE_CHECKING:
    from pmap.core.settings import Settings

app = typer.Typer(no_args_is_help=True, help="PMAP control: the connector hub of a vulnerability management platform.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
keys_app = typer.Typer(no_args_is_help=True, help="Platform keys.")
tokens_app = typer.Typer(no_args_is_help=True, help="API tokens.")
connectors_app = typer.Typer(no_args_is_help=True, help="The connector catalog.")
webhooks_app = typer.Typer(no_args_is_help=True, help="Inbound webhook deliveries.")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(tokens_app, name="tokens")
app.add_typer(connectors_app, name="connectors")
app.add_typer(webhooks_app, name="webhooks")

err = Console(stderr=True)


def _fail(message: str) -> None:
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

    from pmap.app import create_app
    from pmap.migrations import upgrade

    from pmap.app import start
    from pmap.core.logs import configure_logging

    settings = _settings()
    configure_logging(production=settings.production, level=settings.log_level)
    try:
        if settings.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            upgrade(settings.resolved_database_url)
        start(settings).engine.dispose()  # pre-flight: key, schema and canary, with a clear message
        application = create_app(settings)
    except PmapError as exc:
        _fail(exc.message)
    uvicorn.run(application, host=host, port=port, log_config=None, proxy_headers=False)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Migrate the configured database (PMAP_DATABASE_URL, or the embedded SQLite file)."""
    from pmap.migrations import upgrade

    settings = _settings()
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url, revision)
    err.print(f"database migrated to {revision}")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new random 256-bit platform key (base64) for PMAP_PLATFORM_KEY."""
    from pmap.core.crypto import generate_key

    print(generate_key())


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-seal every stored secret under the keyring's primary key (then the old key can be removed)."""
    from pmap.app import start
    from pmap.credentials.rotation import reseal_all

    try:
        state = start(_settings())
    except PmapError as exc:
        _fail(exc.message)
    try:
        with state.sessions() as session:
            report = reseal_all(session, state.keyring, state.resolver)  # type: ignore[arg-type]
    except PmapError as exc:
        _fail(exc.message)
    finally:
        state.engine.dispose()
    err.print(f"re-sealed {report.resealed} envelope(s) under key {state.keyring.primary}; "
              f"{report.current} already used it")
    if report.failed:
        _fail(f"{len(report.failed)} envelope(s) could not be opened and still use their old key (keep it in the "
              "keyring; enter those integrations' secrets again, then rotate again): " + ", ".join(report.failed))


@tokens_app.command("create")
def tokens_create(
    org: Annotated[str, typer.Option("--org", help="Organization (created if needed).")],
    role: Annotated[str, typer.Option("--role", help="viewer, operator or admin.")],
    name: Annotated[str, typer.Option("--name", help="A label for the token.")] = "cli",
) -> None:
    """Create an API token and print it once, on the last line."""
    from pmap.auth.principal import Role
    from pmap.auth.service import get_or_create_org, issue_token
    from pmap.core.db import make_engine, make_session_factory, transaction
    from pmap.migrations import current_revision, head_revision

    try:
        role_value = Role(role.lower())
    except ValueError:
        _fail("role must be viewer, operator or admin")
    settings = _settings()
    engine = make_engine(settings.resolved_database_url, busy_timeout=settings.sqlite_busy_timeout)
    if current_revision(engine) != head_revision():
        _fail("the database is not migrated: run `pmapctl db upgrade` first")
    with transaction(make_session_factory(engine)) as session:
        organization = get_or_create_org(session, org)
        issued = issue_token(session, organization, role_value, name)
        token = issued.token
    engine.dispose()
    err.print(f"created {role_value.value} token '{escape(name)}' for organization '{escape(org)}'; it is shown once:")
    print(token)


@connectors_app.command("list")
def connectors_list(
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
) -> None:
    """Print the connector catalog as a table."""
    from pmap.connectors.catalog import connector_types

    table = Table(title="PMAP connector types")
    for col in ("vendor", "name", "category", "operations", "formats", "webhooks"):
        table.add_column(col, overflow="fold")
    for ct in sorted(connector_types().values(), key=lambda c: (c.category.value, c.vendor)):
        if category and ct.category.value != category:
            continue
        table.add_row(ct.vendor, ct.display_name, ct.category.value,
                      ", ".join(ct.offered()) or "file import", ", ".join(ct.report_formats), ct.webhook_scheme or "")
    Console().print(table)


@webhooks_app.command("prune")
def webhooks_prune(
    days: Annotated[int | None, typer.Option(
        "--days", min=1, max=36500, help="Keep payloads this many days (default: PMAP_WEBHOOK_RETENTION_DAYS).")] = None,
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


@app.command("import")
def import_report(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The report file.")],
    integration: Annotated[str, typer.Option("--integration", help="The integration id to import into.")],
    report_format: Annotated[str | None, typer.Option("--format", help="Format key (detected when omitted).")] = None,
    scope: Annotated[str | None, typer.Option("--scope", help="Report scope (default: default).")] = None,
    partial: Annotated[bool, typer.Option(
        "--partial", help="A partial report: findings it lacks are not marked resolved.")] = False,
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
                                full=not partial, show_progress=not as_json and err.is_terminal, console=err)
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
    from pmap.sandbox.server import run

    if not host.startswith("127.") and host not in ("localhost", "::1"):
        _fail("the sandbox listens on loopback only")
    run(host, port, tls)


def main() -> None:  # pragma: no cover - console entry point
    """Entry point."""
    try:
        app()
    except PmapError as exc:
        _fail(exc.message)
        sys.exit(1)
