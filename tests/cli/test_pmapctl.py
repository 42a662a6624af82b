"""pmapctl end to end: keys, migrations, tokens, the bootstrap token, and a real served API."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PMAPCTL = [sys.executable, "-m", "pmap.cli"]


def _run(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PMAPCTL, *args], env=env, capture_output=True, text=True, timeout=120, **kw)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMAP_")}
    env.update({"PMAP_DATA_DIR": str(tmp_path / "data"), **extra})
    return env


def test_keys_generate_prints_a_256_bit_key(tmp_path: Path) -> None:
    out = _run(["keys", "generate"], _env(tmp_path))
    assert out.returncode == 0
    assert len(base64.b64decode(out.stdout.strip())) == 32


def test_tokens_create_prints_token_last(tmp_path: Path) -> None:
    env = _env(tmp_path)
    unmigrated = _run(["tokens", "create", "--org", "acme", "--role", "admin"], env)  # no database yet
    assert unmigrated.returncode == 1 and "Traceback" not in unmigrated.stderr, unmigrated.stderr
    assert str(tmp_path / "data") in unmigrated.stderr.replace("\n", "")
    assert _run(["db", "upgrade"], env).returncode == 0
    out = _run(["tokens", "create", "--org", "acme", "--role", "operator"], env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("pmap_")
    assert _run(["tokens", "create", "--org", "acme", "--role", "root"], env).returncode == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_migrates_sqlite_and_answers(tmp_path: Path) -> None:
    port = _free_port()
    token = "bootstrap-" + "x" * 30
    env = _env(tmp_path, PMAP_BOOTSTRAP_ADMIN_TOKEN=token)
    proc = subprocess.Popen([*PMAPCTL, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("server did not start")
        who = httpx.get(f"{base}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}).json()
        assert who == {"organization": "default", "token_name": "bootstrap-admin", "role": "admin"}
        assert httpx.get(f"{base}/docs").status_code == 200
        assert (tmp_path / "data" / "pmap.db").exists()
        assert oct((tmp_path / "data" / "keyring.json").stat().st_mode & 0o777) == "0o600"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert token not in out
    assert out.count("created a development keyring") == 1


def test_production_refuses_to_start_without_key(tmp_path: Path) -> None:
    env = _env(tmp_path, PMAP_ENV="production")
    out = _run(["serve", "--port", str(_free_port())], env)
    assert out.returncode == 1 and "PMAP_PLATFORM_KEY" in out.stderr


def test_keys_rotate_reports_what_it_resealed(tmp_path: Path) -> None:
    from pmap.core.crypto import Keyring, decode_key, generate_key

    ring = tmp_path / "ring.json"
    Keyring(keys={"k1": decode_key(generate_key(), source="t")}, primary="k1").to_file(ring)
    env = _env(tmp_path, PMAP_KEYRING_FILE=str(ring))
    assert _run(["db", "upgrade"], env).returncode == 0
    out = _run(["keys", "rotate"], env)
    assert out.returncode == 0, out.stderr
    said = " ".join(out.stderr.split())  # Rich wraps at the terminal's width
    assert "rotating to key-encryption key keyring:k1" in said
    assert "re-wrapped 0 data key(s) and re-sealed 0 envelope(s) under keyring:k1" in said


def test_keys_rotate_fails_while_an_envelope_still_needs_the_old_key(tmp_path: Path) -> None:
    from pmap.migrations import upgrade
    from tests.security.test_key_rotation import _ring, _seed

    url = f"sqlite:///{tmp_path / 'pmap.db'}"
    upgrade(url)

    def move_envelope(_s, rows, _keyring) -> None:
        rows[1].encrypted_credentials = dict(rows[0].encrypted_credentials)  # bound to the first: cannot open

    _settings, ring, old, new, ids = _seed(url, tmp_path, 2, move_envelope)
    env = _env(tmp_path, PMAP_DATABASE_URL=url, PMAP_KEYRING_FILE=str(_ring(ring, {"k1": old, "k2": new}, "k2")))
    out = _run(["keys", "rotate"], env)
    assert out.returncode == 1, out.stderr  # the old key must not look safe to remove
    said = " ".join(out.stderr.split())
    assert "re-wrapped 1 data key(s) and re-sealed 0 envelope(s) under keyring:k2" in said and ids[1] in said


def test_keys_verify_opens_everything_and_names_what_does_not(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    from pmap.migrations import upgrade
    from tests.security.test_key_rotation import _seed

    url = f"sqlite:///{tmp_path / 'pmap.db'}"
    upgrade(url)
    _settings, ring, _old, _new, ids = _seed(url, tmp_path, 3, lambda _s, _rows, _keyring: None)
    env = _env(tmp_path, PMAP_DATABASE_URL=url, PMAP_KEYRING_FILE=str(ring))
    out = _run(["keys", "verify"], env)
    assert out.returncode == 0, out.stderr
    assert "3 envelope(s) and 1 audit key(s) open with the configured keys" in out.stderr
    engine = create_engine(url)
    with engine.begin() as conn:  # the third's envelope moved onto the second: bound to another row, it cannot open
        first = conn.execute(text("SELECT encrypted_credentials FROM integrations WHERE id = :i"),
                             {"i": ids[2].replace("-", "")}).scalar_one()
        conn.execute(text("UPDATE integrations SET encrypted_credentials = :e WHERE id = :i"),
                     {"e": first, "i": ids[1].replace("-", "")})
        audited = conn.execute(text("SELECT count(*) FROM audit_events WHERE purpose = 'key_verification'")).scalar()
    engine.dispose()
    assert audited == 3  # every decrypt of the verification is audited, with its purpose
    out = _run(["keys", "verify"], env)
    assert out.returncode == 1
    said = " ".join(out.stderr.split())  # the console wraps long lines
    assert f"{ids[1]}: encrypted_credentials" in said and ids[0] not in said and ids[2] not in said
    assert "S" * 24 not in out.stdout + out.stderr  # no secret printed


def test_an_empty_key_variable_counts_as_unset_and_retention_is_bounded(tmp_path: Path) -> None:
    from pmap.core.crypto import Keyring, decode_key, generate_key

    ring = tmp_path / "ring.json"
    Keyring(keys={"k1": decode_key(generate_key(), source="t")}, primary="k1").to_file(ring)
    env = _env(tmp_path, PMAP_KEYRING_FILE=str(ring), PMAP_PLATFORM_KEY="")  # `export PMAP_PLATFORM_KEY=`
    assert _run(["db", "upgrade"], env).returncode == 0
    rotated = _run(["keys", "rotate"], env)
    assert rotated.returncode == 0, rotated.stderr
    too_far = _run(["webhooks", "prune", "--days", "36501"], env)
    assert too_far.returncode == 2 and "Traceback" not in too_far.stderr
    assert _run(["webhooks", "prune", "--days", "36500"], env).returncode == 0
    bad_setting = _run(["webhooks", "prune"], {**env, "PMAP_WEBHOOK_RETENTION_DAYS": "1000000"})
    assert bad_setting.returncode == 1 and "PMAP_WEBHOOK_RETENTION_DAYS" in bad_setting.stderr
    assert "less than or equal to 36500" in " ".join(bad_setting.stderr.split())
    assert "Traceback" not in bad_setting.stderr


def test_an_empty_setting_takes_its_default_but_an_empty_env_is_refused(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert _run(["db", "upgrade"], env).returncode == 0
    pruned = _run(["webhooks", "prune"], {**env, "PMAP_WEBHOOK_RETENTION_DAYS": ""})
    assert pruned.returncode == 0 and "30 day" in pruned.stderr + pruned.stdout, pruned.stderr
    # `PMAP_ENV=${UNSET}` in a production deployment must not quietly mean development
    no_env = _run(["webhooks", "prune"], {**env, "PMAP_ENV": ""})
    assert no_env.returncode == 1 and "PMAP_ENV" in no_env.stderr and "Traceback" not in no_env.stderr


def _serve_until_healthy(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    port = _free_port()
    proc = subprocess.Popen([*PMAPCTL, *args, "--port", str(port)], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    for _ in range(150):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start: " + proc.communicate(timeout=10)[0])


def test_serve_says_where_its_data_lives_and_keeps_it_private(tmp_path: Path) -> None:
    workdir = tmp_path / "a"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMAP_")}  # the default ./.pmap
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # pmap from this checkout, whatever the cwd
    old_umask = os.umask(0o022)  # the child inherits the usual umask, under which plain creates are 0644
    try:
        proc = _serve_until_healthy(["serve"], env, workdir)
    finally:
        os.umask(old_umask)
    data = workdir / ".pmap"
    try:
        db = data / "pmap.db"
        modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (db, Path(f"{db}-wal"), data / "keyring.json")}
        assert modes == {"pmap.db": "0o600", "pmap.db-wal": "0o600", "keyring.json": "0o600"}
        assert oct(data.stat().st_mode & 0o777) == "0o700"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    flat = " ".join(out.split())  # Rich may wrap long lines
    assert f"data directory {data}" in flat and f"SQLite file {db}" in flat, out


def test_a_new_keyring_is_refused_beside_a_database_sealed_with_another(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMAP_")}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[2]),
               PMAP_DATABASE_URL=f"sqlite:///{tmp_path / 'shared.db'}")
    assert _run(["db", "upgrade"], env, cwd=first).returncode == 0
    started = _run(["keys", "rotate"], env, cwd=first)  # starts the app: creates ./.pmap/keyring.json, seals its canary
    assert started.returncode == 0, started.stderr
    assert (first / ".pmap" / "keyring.json").exists()
    for command in (["serve", "--port", str(_free_port())], ["keys", "rotate"]):
        out = _run(command, env, cwd=second)
        flat = " ".join(out.stderr.split())
        assert out.returncode == 1, out.stderr
        # Rich folds a path longer than the line (xdist's temporary paths are): compare without whitespace
        assert str(second / ".pmap") in "".join(out.stderr.split()), out.stderr
        assert "PMAP_DATA_DIR" in flat and "PMAP_KEYRING_FILE" in flat, out.stderr
        assert "already holds data sealed" in flat and "Traceback" not in out.stderr
        assert not (second / ".pmap" / "keyring.json").exists()
    assert _run(["keys", "rotate"], env, cwd=first).returncode == 0  # the right directory still starts
