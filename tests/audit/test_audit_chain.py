"""The tamper-evident audit chain (pmap.audit.chain): sealed after each commit, verified from its anchor, an edit,
deletion, reorder or insertion named by event; pruned only by moving the anchor; the key survives a rotation;
streamed once per event without a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text, update

from pmap.app import start
from pmap.audit.chain import AuditChain, ChainReport, OrgChain, prune, verify_chain
from pmap.audit.models import AuditChainHead, AuditEvent, AuditKey
from pmap.auth.models import Organization
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.crypto import Keyring, KeyStore, decode_key, generate_key
from pmap.core.db import utcnow
from pmap.core.seams import Actor, Purpose
from pmap.core.settings import Settings
from pmap.integrations.models import Integration
from tests.conftest import Api
from tests.security.test_key_rotation import rotate_all

CANARY = "canary-Secret-" + "Q7x" * 8  # a credential value that must never reach the audit trail or its stream


def _activity(api: Api, h: dict[str, str], integrations: int = 3) -> list[str]:
    """Audited work through the API: integration creates, token creates, decrypts."""
    ids = []
    for i in range(integrations):
        r = api.client.post("/api/v1/integrations", json={"name": f"chain-{i}", "vendor": "tenable_vm", "credentials": {
            "access_key": "A" * 24, "secret_key": CANARY}}, headers=h)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        assert api.client.post("/api/v1/tokens", json={"name": f"t{i}", "role": "viewer"},
                               headers=h).status_code == 201
    with api.state.sessions() as s:
        for iid in ids:
            row = s.get_one(Integration, uuid.UUID(iid))
            for _ in range(2):
                with api.state.resolver.resolve(row, purpose=Purpose.SYNC,
                                                actor=Actor("system", "test", row.organization_id)):
                    pass
    return ids


def _org_id(api: Api, name: str = "acme") -> uuid.UUID:
    with api.state.sessions() as s:
        return s.scalars(select(Organization.id).where(Organization.name == name)).one()


def _verify(api: Api, **kw: Any) -> ChainReport:
    with api.state.sessions() as s:
        return verify_chain(s, api.state.keys, **kw)


def _chain(api: Api, name: str = "acme") -> OrgChain:
    return next(o for o in _verify(api).organizations if o.name == name)


def _events(api: Api, org: uuid.UUID) -> list[AuditEvent]:
    with api.state.sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.organization_id == org).order_by(AuditEvent.seq)))


def _sql(api: Api, *statements: Any) -> None:
    with api.state.engine.begin() as conn:
        for stmt in statements:
            conn.execute(stmt)


def _chain_of(api: Api) -> tuple[uuid.UUID, list[AuditEvent]]:
    _activity(api, api.token())
    org = _org_id(api)
    events = _events(api, org)
    assert len(events) >= 12 and _chain(api).ok
    return org, events


def test_a_chain_over_api_actions_verifies_and_the_api_shows_it(api: Api) -> None:
    h = api.token()
    _activity(api, h)
    org = _org_id(api)
    events = _events(api, org)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # every event sealed, contiguous
    assert len(events) >= 3 * 4 and all(e.mac and len(e.mac) == 64 and e.key_id for e in events)
    report = _verify(api)
    assert report.ok, report
    chain = _chain(api)
    assert (chain.head_seq, chain.verified, chain.first_seq) == (len(events), len(events), 1)
    page = api.client.get("/api/v1/audit-events", params={"limit": 500}, headers=h).json()
    seqs = [e["seq"] for e in page["items"]]
    assert seqs[0] >= len(events) and None not in seqs  # newest first (the listing itself may add none)
    assert page["chain"]["verified"] is True and page["chain"]["first_problem"] is None
    assert page["chain"]["head_seq"] >= len(events) and page["chain"]["verified_at"]
    with api.state.sessions() as s:
        assert s.scalar(select(AuditChainHead.seq).where(AuditChainHead.organization_id == org)) == chain.head_seq


@pytest.mark.parametrize(("column", "value"), [("detail", {"column": "encrypted_webhook_secret"}),
                                               ("actor", "token:someone-else"), ("outcome", "failure"),
                                               ("created_at", None)])
def test_an_edited_event_is_named(api: Api, column: str, value: Any) -> None:
    _org, events = _chain_of(api)
    victim = events[5]
    if column == "created_at":
        value = victim.created_at - timedelta(hours=1)
    _sql(api, update(AuditEvent).where(AuditEvent.id == victim.id).values({column: value}))
    problem = _chain(api).problem
    assert problem is not None and (problem.kind, problem.event_id, problem.seq) == ("edited", victim.id, victim.seq)
    assert str(victim.id) in problem.message
    page = api.client.get("/api/v1/audit-events", headers=api.token()).json()
    assert page["chain"]["verified"] is False and page["chain"]["first_problem"]["event_id"] == str(victim.id)


def test_a_deleted_event_is_named_as_a_gap(api: Api) -> None:
    _org, events = _chain_of(api)
    _sql(api, delete(AuditEvent).where(AuditEvent.id == events[4].id))
    problem = _chain(api).problem
    assert problem is not None and problem.kind == "gap" and problem.seq == events[4].seq
    assert str(events[5].id) in problem.message and str(events[3].id) in problem.message


def test_deleting_the_newest_events_without_the_head_is_named(api: Api) -> None:
    _org, events = _chain_of(api)
    _sql(api, delete(AuditEvent).where(AuditEvent.id.in_([e.id for e in events[-2:]])))
    problem = _chain(api).problem
    assert problem is not None and problem.kind == "gap" and problem.seq == events[-2].seq


def test_swapped_contents_and_swapped_seqs_are_named(api: Api) -> None:
    _org, events = _chain_of(api)
    a, b = events[2], events[7]
    columns = ("actor", "action", "integration_id", "purpose", "outcome", "detail", "created_at")
    _sql(api, update(AuditEvent).where(AuditEvent.id == a.id).values({c: getattr(b, c) for c in columns}),
         update(AuditEvent).where(AuditEvent.id == b.id).values({c: getattr(a, c) for c in columns}))
    problem = _chain(api).problem
    assert problem is not None and (problem.kind, problem.event_id) == ("edited", a.id)
    # the contents back, then the two rows' places in the chain swapped (through a free seq)
    _sql(api, update(AuditEvent).where(AuditEvent.id == a.id).values({c: getattr(a, c) for c in columns}),
         update(AuditEvent).where(AuditEvent.id == b.id).values({c: getattr(b, c) for c in columns}))
    assert _chain(api).ok
    _sql(api, update(AuditEvent).where(AuditEvent.id == a.id).values(seq=-1),
         update(AuditEvent).where(AuditEvent.id == b.id).values(seq=a.seq),
         update(AuditEvent).where(AuditEvent.id == a.id).values(seq=b.seq))
    problem = _chain(api).problem
    assert problem is not None and (problem.kind, problem.event_id, problem.seq) == ("edited", b.id, a.seq)


def _forged(org: uuid.UUID, **extra: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4(), "organization_id": org, "actor": "token:intruder", "action": "token.create",
            "integration_id": None, "purpose": None, "outcome": "success", "detail": {},
            "created_at": utcnow() - timedelta(minutes=5), **extra}


def test_inserted_events_are_named(api: Api) -> None:
    org, events = _chain_of(api)
    # unsealed: nothing PMAP wrote stays unsealed for long
    row = _forged(org)
    _sql(api, insert(AuditEvent).values(row))
    problem = _chain(api).problem
    assert problem is not None and (problem.kind, problem.event_id) == ("unsealed", row["id"])
    assert "inserted outside PMAP or not sealed" in problem.message
    _sql(api, delete(AuditEvent).where(AuditEvent.id == row["id"]))
    assert _chain(api).ok
    # with a forged seq and mac after the head
    key_id = events[0].key_id
    head = events[-1].seq
    assert head is not None
    row = _forged(org, seq=head + 1, mac="ab" * 32, key_id=key_id)
    _sql(api, insert(AuditEvent).values(row))
    problem = _chain(api).problem
    assert problem is not None and (problem.kind, problem.event_id, problem.seq) == ("inserted", row["id"], head + 1)
    # ... and with the head moved to it as well
    _sql(api, update(AuditChainHead).where(AuditChainHead.organization_id == org).values(seq=head + 1, mac="ab" * 32))
    problem = _chain(api).problem
    assert problem is not None and (problem.kind, problem.event_id) == ("edited", row["id"])


def test_an_event_written_in_the_middle_of_the_chain_is_named(api: Api) -> None:
    org, events = _chain_of(api)
    victim = events[6]
    # the real row goes, a forged one takes its seq and mac
    _sql(api, delete(AuditEvent).where(AuditEvent.id == victim.id),
         insert(AuditEvent).values(_forged(org, seq=victim.seq, mac=victim.mac, key_id=victim.key_id,
                                           created_at=victim.created_at)))
    problem = _chain(api).problem
    assert problem is not None and problem.kind == "edited" and problem.seq == victim.seq


def test_prune_moves_the_anchor_and_is_itself_chained(api: Api) -> None:
    org, events = _chain_of(api)
    chain = api.state.audit_chain
    assert isinstance(chain, AuditChain)
    head = events[-1].seq
    assert head is not None
    result = prune(chain, org, 6, Actor("cli", "pmapctl:test", org))
    assert (result.deleted, result.anchor_seq) == (5, 6)
    after = _events(api, org)
    assert after[0].seq == 6 and after[-1].seq == head + 1
    assert after[-1].action == AuditAction.AUDIT_PRUNE.value and after[-1].detail["before_seq"] == 6
    verified = _chain(api)
    assert verified.ok and (verified.first_seq, verified.anchor_seq, verified.head_seq) == (6, 6, head + 1)
    assert _verify(api, organization_id=org, from_seq=8, to_seq=10).ok  # a range


def test_an_anchor_moved_without_a_prune_event_is_named(api: Api) -> None:
    org, events = _chain_of(api)
    _sql(api, delete(AuditEvent).where(AuditEvent.id.in_([e.id for e in events[:3]])),
         update(AuditChainHead).where(AuditChainHead.organization_id == org)
         .values(anchor_seq=4, anchor_prev_mac=events[2].mac))
    problem = _chain(api).problem
    assert problem is not None and problem.kind == "anchor" and problem.seq == 4


def test_prune_refuses_a_chain_that_does_not_verify(api: Api) -> None:
    from pmap.core.errors import PmapError

    org, events = _chain_of(api)
    _sql(api, update(AuditEvent).where(AuditEvent.id == events[2].id).values(actor="token:edited"))
    chain = api.state.audit_chain
    assert isinstance(chain, AuditChain)
    with pytest.raises(PmapError, match="does not verify"):
        prune(chain, org, 6, Actor("cli", "pmapctl:test", org))
    assert len(_events(api, org)) == len(events)


def test_concurrent_writers_make_one_contiguous_chain(api: Api) -> None:
    h = api.token()
    org = _org_id(api)
    start_gate = threading.Barrier(6)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start_gate.wait()
            for i in range(15):
                api.state.audit.record(actor=Actor("system", f"w{n}", org), action=AuditAction.TOKEN_CREATE,
                                       integration_id=None, purpose=None, outcome=AuditOutcome.SUCCESS,
                                       detail={"i": i})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    events = _events(api, org)
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(events) + 1)) and len(events) >= 90
    assert _chain(api).ok
    assert api.client.get("/api/v1/audit-events", headers=h).json()["chain"]["verified"] is True


def test_the_stream_gets_each_event_once_with_seq_and_mac_and_no_secret(api: Api, make_api: Any,
                                                                       tmp_path: Path) -> None:
    target = tmp_path / "stream" / "audit.jsonl"
    target.parent.mkdir()
    streaming = make_api(audit_stream=f"file:{target}")
    _activity(streaming, streaming.token())
    org = _org_id(streaming)
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    events = _events(streaming, org)
    by_id = {line["id"]: line for line in lines}
    assert len(by_id) == len(lines)  # once each
    assert set(by_id) >= {str(e.id) for e in events}
    for e in events:
        line = by_id[str(e.id)]
        assert (line["seq"], line["mac"], line["action"], line["actor"]) == (e.seq, e.mac, e.action, e.actor)
    assert CANARY not in target.read_text()
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def test_a_failing_stream_never_fails_auditing(make_api: Any, tmp_path: Path) -> None:
    broken = make_api(audit_stream=f"file:{tmp_path / 'missing-dir' / 'audit.jsonl'}")
    h = broken.token()
    assert broken.client.post("/api/v1/tokens", json={"name": "x", "role": "viewer"}, headers=h).status_code == 201
    chain = broken.state.audit_chain
    assert isinstance(chain, AuditChain) and chain.stream is not None and chain.stream.failures >= 1
    metrics = broken.client.get("/metrics").text
    assert 'pmap_audit_chain_failures_total{what="stream"} ' in metrics
    assert 'pmap_audit_chain_failures_total{what="stream"} 0.0' not in metrics
    assert _chain(broken).ok and _events(broken, _org_id(broken))[-1].seq is not None


def test_settings_refuse_a_malformed_stream() -> None:
    from pydantic import ValidationError

    for bad in ("file:relative.jsonl", "syslog://host", "http://siem", "sysl"):
        with pytest.raises(ValidationError):
            Settings(audit_stream=bad)
    for good in ("file:/var/log/pmap/audit.jsonl", "syslog", "syslog://siem.example:514"):
        assert Settings(audit_stream=good).audit_stream == good


def test_key_rotation_reseals_the_audit_key_and_the_chain_still_verifies(db_url: str, tmp_path: Path) -> None:
    from tests.security.test_key_rotation import _ring, _seed

    settings, ring, old, new, _ids = _seed(db_url, tmp_path, 2, lambda _s, _rows, _k: None)
    state = start(settings.model_copy(update={"keyring_file": _ring(ring, {"k1": old, "k2": new}, "k2")}))
    with state.sessions() as s:
        assert [e["kek"] for e in s.scalars(select(AuditKey.envelope))] == ["k1"]
    report = rotate_all(state)
    assert report.audit_keys == 1 and report.failed == []
    with state.sessions() as s:
        assert [e["kek"] for e in s.scalars(select(AuditKey.envelope))] == ["k2"]
    state.engine.dispose()
    state = start(settings.model_copy(update={"keyring_file": _ring(ring, {"k2": new}, "k2")}))
    try:
        with state.sessions() as s:
            checked = verify_chain(s, state.keys)
            assert checked.ok and sum(o.verified for o in checked.organizations) >= 4, checked
        state.audit.record(actor=Actor("system", "after", checked.organizations[0].organization_id),
                           action=AuditAction.TOKEN_CREATE, integration_id=None, purpose=None,
                           outcome=AuditOutcome.SUCCESS)  # sealed with the same audit key, now under k2
        with state.sessions() as s:
            assert verify_chain(s, state.keys).ok
    finally:
        state.engine.dispose()


def test_without_the_key_that_sealed_the_audit_key_verify_names_the_events(db_url: str, tmp_path: Path) -> None:
    from tests.security.test_key_rotation import _seed

    settings, _ring_path, _old, _new, _ids = _seed(db_url, tmp_path, 1, lambda _s, _rows, _k: None)
    stranger = KeyStore.of(Keyring.single(decode_key(generate_key(), source="t"), "k1"))
    state = start(settings)
    try:
        with state.sessions() as s:
            report = verify_chain(s, stranger)
    finally:
        state.engine.dispose()
    assert not report.ok and {o.problem.kind for o in report.organizations if o.problem} == {"key"}


PMAPCTL = [sys.executable, "-m", "pmap.cli"]


def test_pmapctl_audit_verify_seal_and_prune(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMAP_")}
    env.update({"PMAP_DATA_DIR": str(tmp_path / "data"), "PMAP_PLATFORM_KEY": generate_key(),
                "PMAP_DATABASE_URL": f"sqlite:///{tmp_path / 'pmap.db'}"})

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*PMAPCTL, *args], env=env, capture_output=True, text=True, timeout=120)

    assert run("db", "upgrade").returncode == 0
    for i in range(4):
        assert run("tokens", "create", "--org", "acme", "--role", "admin", "--name", f"t{i}").returncode == 0
    out = run("audit", "verify")
    assert out.returncode == 0, out.stderr
    assert "organization 'acme': intact, 4 event(s) verified (seq 1..4; anchor 1)" in out.stderr
    from sqlalchemy import create_engine

    engine = create_engine(env["PMAP_DATABASE_URL"])
    with engine.begin() as conn:
        victim = conn.execute(select(AuditEvent.id).where(AuditEvent.seq == 2)).scalar_one()
        conn.execute(text("UPDATE audit_events SET actor = 'cli:pmapctl:mallory' WHERE seq = 2"))
    out = run("audit", "verify", "--org", "acme")
    assert out.returncode == 1 and str(victim) in out.stderr and "seq 2" in out.stderr, out.stderr
    assert run("audit", "prune", "--org", "acme", "--before-seq", "3").returncode == 1  # refused: broken before it
    out = run("audit", "verify", "--from", "3")
    assert out.returncode == 0, out.stderr  # a range that skips the edit
    with engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.seq == 2))  # now a gap
    out = run("audit", "verify")
    assert out.returncode == 1 and "seq 2..2 are missing" in out.stderr, out.stderr
    # an unsealed row is sealed only by an explicit `audit seal`
    with engine.begin() as conn:
        conn.execute(delete(AuditEvent))
        conn.execute(delete(AuditChainHead))
    assert run("tokens", "create", "--org", "acme", "--role", "admin").returncode == 0
    for i in range(3):
        assert run("tokens", "create", "--org", "acme", "--role", "viewer", "--name", f"v{i}").returncode == 0
    out = run("audit", "prune", "--org", "acme", "--before-seq", "3")
    assert out.returncode == 0 and "deleted 2 audit event(s)" in out.stderr, out.stderr
    out = run("audit", "verify")
    assert out.returncode == 0 and "(seq 3..5; anchor 3)" in out.stderr, out.stderr
    assert "detail" not in out.stdout + out.stderr
    out = run("audit", "seal")
    assert out.returncode == 0 and "sealed 0 audit event(s)" in out.stderr, out.stderr
    engine.dispose()


def test_events_from_before_the_upgrade_are_sealed_by_the_first_seal(fresh_url: str, tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from pmap.migrations import upgrade

    upgrade(fresh_url, "0014")
    engine = create_engine(fresh_url)
    org = uuid.uuid4()
    old = [_forged(org, actor=f"token:old-{i}", created_at=utcnow() - timedelta(days=1, seconds=-i)) for i in range(3)]
    with engine.begin() as conn:  # the audit_events columns as 0014 left them
        conn.execute(insert(Organization), [{"id": org, "name": "acme", "created_at": utcnow()}])
        conn.execute(text("INSERT INTO audit_events (id, organization_id, actor, action, integration_id, purpose, "
                          "outcome, detail, created_at) VALUES (:id, :organization_id, :actor, :action, "
                          ":integration_id, :purpose, :outcome, '{}', :created_at)"),
                     [{**row, "id": str(row["id"]) if "sqlite" not in fresh_url else row["id"].hex,
                       "organization_id": str(org) if "sqlite" not in fresh_url else org.hex} for row in old])
    engine.dispose()
    upgrade(fresh_url, "head")
    settings = Settings(database_url=fresh_url, data_dir=tmp_path / "data", platform_key=generate_key())
    state = start(settings)
    try:
        with state.sessions() as s:
            assert not verify_chain(s, state.keys).ok  # unsealed until a seal runs: named, not blessed
        state.audit.record(actor=Actor("system", "first", org), action=AuditAction.TOKEN_CREATE, integration_id=None,
                           purpose=None, outcome=AuditOutcome.SUCCESS)
        with state.sessions() as s:
            report = verify_chain(s, state.keys)
            seqs = list(s.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)))
        assert report.ok and seqs == [1, 2, 3, 4]
    finally:
        state.engine.dispose()


def test_the_syslog_stream_sends_each_event_over_udp(make_api: Any) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(5)
        streaming = make_api(audit_stream=f"syslog://127.0.0.1:{sink.getsockname()[1]}")
        h = streaming.token()
        assert streaming.client.post("/api/v1/tokens", json={"name": "s", "role": "viewer"},
                                     headers=h).status_code == 201
        org = _org_id(streaming)
        events = _events(streaming, org)
        got: dict[str, dict[str, Any]] = {}
        while len(got) < len(events):
            datagram = sink.recv(65536).decode()
            line = json.loads(datagram[datagram.index("{"):].rstrip("\x00"))
            got[line["id"]] = line
    assert {str(e.id): e.seq for e in events} == {i: line["seq"] for i, line in got.items()}
