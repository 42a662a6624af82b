"""Issue 10 probe: schemathesis against a production-mode PMAP; no 5xx, no canary anywhere.

    python -m bench.probe [--max-time 180] [--operator-time 60] [--workers 2] [--per-vendor 3] [--seed N] [--keep]
    make probe

Starts the vendor sandbox and a real ``pmapctl serve`` on loopback, in production mode (``PMAP_ENV=production``)
on a PostgreSQL database of its own, with a platform key and admin token made for this run and egress allowed
to loopback only so it may reach the sandbox. Seeds integrations of every vendor type the sandbox serves with
canary credentials (``bench/probe_seed.py``), then runs ``schemathesis run`` against ``/openapi.json`` with an
admin token, bounded by ``--max-time``, then with an operator token for ``--operator-time``. It fails on:
- any 5xx response (schemathesis's ``not_a_server_error``) but PMAP's documented ones, which it lists: 502
  ``upstream_error`` (the vendor could not be reached or answered wrongly) and 503 with Retry-After;
- any canary credential, probe token or webhook secret in a response body or header (``canary_free`` in
  ``bench/probe_hooks.py``; a webhook secret is allowed only in its own ``/webhook/reveal`` answer);
- any of them in the server's log or in a ``pg_dump`` of the probe's database, read after the run.
It prints requests sent and their statuses, each 5xx with its reproducer and each canary hit, and cleans up:
servers stopped, database dropped, run directory removed (kept with ``--keep`` or on a finding).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.common import PG_URL, free_port
from bench.probe_seed import Seeded, seed
from pmap.core.crypto import generate_key

ROOT = Path(__file__).resolve().parent.parent
SCHEMATHESIS_TOML = 'headers = { Authorization = "Bearer ${PMAP_PROBE_TOKEN}" }\n'


@contextmanager
def probe_database() -> Iterator[str]:
    """A PostgreSQL database of the probe's own (dropped afterwards); yields its SQLAlchemy URL."""
    name = f"pmap_probe_{secrets.token_hex(4)}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -m pmap.cli ARGS`` with its output in ``log``; wait until ``ready_url`` answers."""
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pmap.cli", *args], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"pmapctl {args[0]} exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"pmapctl {args[0]} did not answer within 60 s")
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def server_env(run_dir: Path, db_url: str, admin_token: str, port: int) -> dict[str, str]:
    """The production-mode environment: nothing PMAP_* inherited, key and token made for this run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMAP_")}
    env.update(
        PMAP_ENV="production",
        PMAP_DATA_DIR=str(run_dir / "data"),
        PMAP_DATABASE_URL=db_url,
        PMAP_PLATFORM_KEY=generate_key(),
        PMAP_BOOTSTRAP_ADMIN_TOKEN=admin_token,
        PMAP_EGRESS_ALLOW_CIDRS="127.0.0.0/8",
        PMAP_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        PMAP_CONNECTION_TEST_TIMEOUT="5",
        PYTHONPATH=str(ROOT),
    )
    return env


def run_schemathesis(api: str, run_dir: Path, role: str, token: str, max_time: int, args: argparse.Namespace) -> int:
    """``schemathesis run`` as ``role`` with the probe's hooks; its output is shown and kept in
    ``schemathesis-ROLE.txt``."""
    (run_dir / "schemathesis.toml").write_text(SCHEMATHESIS_TOML)
    env = {**os.environ, "PMAP_PROBE_TOKEN": token, "SCHEMATHESIS_HOOKS": "bench.probe_hooks",
           "PMAP_PROBE_STATE": str(run_dir / "state.json"), "PMAP_PROBE_STATS": str(run_dir / f"stats-{role}.json"),
           "PYTHONPATH": str(ROOT)}
    cmd = [str(Path(sys.executable).parent / "schemathesis"), "--no-color",
           "--config-file", str(run_dir / "schemathesis.toml"), "run", f"{api}/openapi.json",
           "--checks", "not_a_server_error,canary_free", "--max-time", str(max_time),
           "--workers", str(args.workers), "--phases", args.phases, "--suppress-health-check", "all",
           "--generation-database", "none", "--request-timeout", "30", "--continue-on-failure",
           "--report", "junit", "--report-dir", str(run_dir / f"report-{role}")]
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    cmd += args.schemathesis_args
    with (run_dir / f"schemathesis-{role}.txt").open("w") as out:
        proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if not args.quiet:
                print(line, end="", flush=True)
        return proc.wait()


def pg_dump(db_url: str) -> bytes:
    """A plain-text dump of the probe's database."""
    dsn = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    return subprocess.run(["pg_dump", "--no-owner", dsn], capture_output=True, check=True).stdout


def hits(secret_values: dict[str, str], data: bytes) -> list[str]:
    """Where each secret found in ``data`` was planted."""
    return [label for value, label in secret_values.items() if value.encode() in data]


def masked(line: str, planted: dict[str, str]) -> str:
    """A reproducer with each planted value replaced by where it was planted (the probe prints no secret)."""
    for value, label in planted.items():
        line = line.replace(value, f"<{label}>")
    return line


def main(argv: list[str] | None = None) -> int:
    """Run the probe once; the exit code is 0 only when nothing was found."""
    parser = argparse.ArgumentParser(prog="python -m bench.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", type=int, default=180, help="schemathesis time budget in seconds (default 180)")
    parser.add_argument("--operator-time", type=int, default=60,
                        help="then as long with an operator token (default 60; 0 skips it)")
    parser.add_argument("--workers", type=int, default=2, help="schemathesis workers (default 2)")
    parser.add_argument("--per-vendor", type=int, default=3, help="integrations seeded per vendor type (default 3)")
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument("--seed", type=int, default=None, help="schemathesis random seed (to replay a run)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs, dump, reports)")
    parser.add_argument("--quiet", action="store_true", help="show only the summary, not schemathesis's output")
    parser.add_argument("schemathesis_args", nargs="*",
                        help="after --: more `schemathesis run` options (say --include-path P)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    run_dir = Path(tempfile.mkdtemp(prefix="pmap-probe-"))
    bootstrap = "pmap_" + secrets.token_urlsafe(32)
    api_port, sandbox_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    with ExitStack() as stack:
        db_url = stack.enter_context(probe_database())
        env = server_env(run_dir, db_url, bootstrap, api_port)
        subprocess.run([sys.executable, "-m", "pmap.cli", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        stack.enter_context(process(["sandbox", "--port", str(sandbox_port)], env, run_dir / "sandbox.log",
                                    f"{sandbox}/_sandbox/vendors"))
        stack.enter_context(process(["serve", "--port", str(api_port)], env, run_dir / "server.log", f"{api}/healthz"))
        with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {bootstrap}"}, timeout=60) as client:
            seeded = seed(client, httpx.get(f"{sandbox}/_sandbox/vendors").json(), args.per_vendor)
            probe_token, operator, victim = (
                client.post("/api/v1/tokens", json={"name": f"probe {role}", "role": role}).json()
                for role in ("admin", "operator", "viewer"))
        seeded.add_id("token_id", victim["id"])  # the one real token a DELETE may revoke
        secrets_planted = {**seeded.canaries, bootstrap: "bootstrap admin token",
                           probe_token["token"]: "probe admin token", operator["token"]: "operator token",
                           victim["token"]: "viewer token"}
        (run_dir / "state.json").write_text(json.dumps({
            "canaries": secrets_planted, "webhook_secrets": seeded.webhook_secrets, "ids": seeded.ids,
            "kept_token_ids": [probe_token["id"], operator["id"]], "protected_ids": list(seeded.first_of.values()),
            "examples": seeded.examples}))
        print(f"probe: {len(seeded.ids['integration_id'])} integrations, {len(seeded.canaries)} canary credentials, "
              f"{len(seeded.webhook_secrets)} webhook secrets, {len(seeded.ids.get('finding_id', []))} findings seeded "
              f"in {time.monotonic() - started:.0f} s; schemathesis for {args.max_time} s as admin, "
              f"{args.operator_time} s as operator", flush=True)
        code = run_schemathesis(api, run_dir, "admin", probe_token["token"], args.max_time, args)
        if args.operator_time:
            code = run_schemathesis(api, run_dir, "operator", operator["token"], args.operator_time, args) or code
        dump = pg_dump(db_url)
    report = summarize(run_dir, seeded, secrets_planted, dump, code, time.monotonic() - started)
    if report or args.keep:  # a finding keeps its logs, dump and reports for the reader
        print(f"run directory kept: {run_dir}")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 1 if report else 0


#: a schemathesis error that is the tool's own, not an answer of PMAP's: with several workers, hypothesis's
#: lambda descriptions parse source in threads and CPython 3.11's ast constructor is not thread-safe
_TOOL_ERRORS = ("AST constructor recursion depth mismatch",)


def tool_errors_only(run_dir: Path) -> str:
    """What schemathesis's error summaries list, when every error is a known fault of the tool itself; else ""."""
    kinds: Counter[str] = Counter()
    known = 0
    for path in run_dir.glob("schemathesis-*.txt"):
        text = path.read_text(errors="replace")
        known += sum(text.count(marker) for marker in _TOOL_ERRORS)
        summary = text.split("\nErrors:\n", 1)
        for line in summary[1].splitlines() if len(summary) == 2 else []:
            match = re.match(r"^\s+\S+ (.+?): (\d+)$", line)
            if not match:
                break
            kinds[match.group(1)] += int(match.group(2))
    if not kinds or set(kinds) != {"Runtime Error"} or known < kinds["Runtime Error"]:
        return ""
    return f"{kinds['Runtime Error']} runtime error(s): {_TOOL_ERRORS[0]}"


def summarize(run_dir: Path, seeded: Seeded, planted: dict[str, str], dump: bytes, code: int,
              elapsed: float) -> list[str]:
    """Print the figures and every finding; returns the findings (empty when the probe passed)."""
    counts: Counter[str] = Counter()
    findings: list[str] = []
    deliberate: list[str] = []  # 502 upstream_error, 503 with Retry-After: documented answers, not faults
    for path in sorted(run_dir.glob("stats-*.json")):
        stats = json.loads(path.read_text())
        counts.update(stats["statuses"])
        for fault in stats["server_errors"]:
            line = masked(f"{fault['status']} (x{fault['count']}) {fault['method']} {fault['url']} "
                          f"body={fault['body']!r} -> {fault['response']!r}", planted)
            (deliberate if fault["deliberate"] else findings).append(line)
        findings += [f"canary in a response: {hit}" for hit in stats["canary_hits"]]
    log = (run_dir / "server.log").read_bytes()
    everything = {**planted, **{s: "webhook secret" for s in seeded.webhook_secrets}}
    findings += [f"in the server log: {label}" for label in hits(everything, log)]
    findings += [f"in the pg_dump: {label}" for label in hits(everything, dump)]
    findings += [f"in a seeding answer: {label}" for label in hits(planted, "\n".join(seeded.responses).encode())]
    if not counts:
        findings.append("schemathesis sent no request (a --max-time shorter than loading the schema?)")
    tool_noise = tool_errors_only(run_dir)
    if code != 0 and not findings and not tool_noise:
        findings.append(f"schemathesis exited with {code} (see its output above)")
    print("\n=== probe summary ===")
    print(f"duration {elapsed:.0f} s; requests {sum(counts.values())}; statuses "
          + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    print(f"secrets watched: {len(planted)} (+{len(seeded.webhook_secrets)} webhook secrets); "
          f"server log {len(log):,} bytes, pg_dump {len(dump):,} bytes; "
          f"tracebacks in the log: {log.count(b'Traceback')}")
    for line in deliberate:
        print("deliberate (not a failure):", line)
    if code != 0 and tool_noise:
        print(f"schemathesis's own error, not a PMAP finding: {tool_noise} (its requests were all counted above)")
    for line in findings:
        print("FOUND", line)
    print("no 5xx, no canary: PASS" if not findings else f"{len(findings)} finding(s): FAIL")
    return findings


if __name__ == "__main__":
    sys.exit(main())
