"""pmapctl tokens: create (audited, with an expiry), list (never a value), revoke (never the last admin)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.cli.test_pmapctl import _env, _run


def _create(env: dict[str, str], *args: str) -> str:
    out = _run(["tokens", "create", "--org", "acme", *args], env)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def _rows(tmp_path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(tmp_path / "data" / "pmap.db") as db:
        return db.execute(sql).fetchall()


def test_tokens_list_and_revoke_keep_an_admin_and_audit_everything(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert _run(["db", "upgrade"], env).returncode == 0
    first = _create(env, "--role", "admin", "--name", "first [bold]admin[/]")
    operator = _create(env, "--role", "operator", "--name", "ci", "--expires-in-days", "30")
    ids = dict(_rows(tmp_path, "SELECT name, id FROM api_tokens"))
    listed = _run(["tokens", "list", "--org", "acme"], env)
    assert listed.returncode == 0, listed.stderr
    # names are printed as they are (not as Rich markup), with role, prefix, expiry; never a value
    assert "first [bold]admin[/]" in listed.stdout and first[:12] in listed.stdout and operator[:12] in listed.stdout
    assert first not in listed.stdout + listed.stderr and operator not in listed.stdout + listed.stderr
    ci_line = next(line for line in listed.stdout.splitlines() if " ci " in f" {line} ")
    in_30_days = {(datetime.now(UTC) + timedelta(days=d)).date().isoformat() for d in (30, 31)}
    assert "operator" in ci_line and "active" in ci_line and any(day in ci_line for day in in_30_days)

    # the last active admin cannot be revoked, by the CLI either
    refused = _run(["tokens", "revoke", _hex_id(ids["first [bold]admin[/]"])], env)
    assert refused.returncode == 1 and "without an active admin token" in refused.stderr
    assert _run(["tokens", "revoke", _hex_id(ids["ci"])], env).returncode == 0
    again = _run(["tokens", "revoke", _hex_id(ids["ci"])], env)  # already revoked: unchanged, not audited twice
    assert again.returncode == 0 and "already revoked" in again.stderr
    _create(env, "--role", "admin", "--name", "recovery")
    assert _run(["tokens", "revoke", _hex_id(ids["first [bold]admin[/]"])], env).returncode == 0
    after = _run(["tokens", "list", "--org", "acme"], env).stdout
    assert sum("revoked" in line for line in after.splitlines()[1:]) == 2

    events = _rows(tmp_path, "SELECT action, actor, detail FROM audit_events ORDER BY created_at")
    assert [e[0] for e in events] == ["token.create"] * 2 + ["token.revoke"] + ["token.create", "token.revoke"]
    assert all(e[1].startswith("cli:pmapctl") for e in events)
    assert not any(v in str(events) for v in (first, operator))

    for bad in (["tokens", "list", "--org", "nobody"], ["tokens", "revoke", "not-an-id"],
                ["tokens", "revoke", "00000000-0000-0000-0000-000000000000"],
                ["tokens", "create", "--org", "acme", "--role", "viewer", "--expires-in-days", "0"],
                ["tokens", "create", "--org", "acme", "--role", "viewer", "--name", "two\nlines"]):
        out = _run(bad, env)
        assert out.returncode != 0 and "Traceback" not in out.stderr, bad


def _hex_id(value: str) -> str:
    """SQLite stores UUIDs as 32 hex digits; the CLI takes the dashed form."""
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
