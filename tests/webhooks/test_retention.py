"""Webhook delivery retention: old payloads are cleared, key-less rows deleted, replays still refused."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from sqlalchemy import select
from typer.testing import CliRunner

from pmap.core.db import transaction
from pmap.webhooks import clock
from pmap.webhooks.models import WebhookDelivery
from pmap.webhooks.retention import prune_deliveries
from tests.conftest import Api

from .conftest import create_integration, payload, settle, signed, vendor_for

DAY = 24 * 3600


def _github(api: Api) -> tuple[dict[str, str], str, str]:
    vendor = vendor_for("github")
    assert vendor is not None
    h = api.token()
    iid = create_integration(api.client, h, vendor)
    assert api.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=h).status_code == 201
    secret = api.client.post(f"/api/v1/integrations/{iid}/webhook/reveal", headers=h).json()["secret"]
    return h, iid, secret


def _rows(api: Api, iid: str) -> dict[str, WebhookDelivery]:
    with api.state.sessions() as s:
        rows = s.scalars(select(WebhookDelivery).where(WebhookDelivery.integration_id == uuid.UUID(iid))).all()
    return {f"{r.outcome}:{r.delivery_id}": r for r in rows}


def _prune(api: Api, days: int | None = None) -> tuple[int, int]:
    days = days or api.state.settings.webhook_retention_days  # the documented default (30) unless given
    with transaction(api.state.sessions) as session:
        result = prune_deliveries(session, clock.now(), days)
    return result.bodies_cleared, result.rows_deleted


def test_old_payloads_are_cleared_and_keyless_rows_deleted_recent_ones_kept(
        api: Api, travel: Callable[[float], None]) -> None:
    h, iid, secret = _github(api)
    old_body = payload("github")
    assert api.client.post(f"/hooks/{iid}", content=old_body,
                           headers=signed("github", old_body, secret, delivery_id="old-1")).status_code == 202
    again = api.client.post(f"/hooks/{iid}", content=old_body, headers=signed("github", old_body, secret,
                                                                             delivery_id="old-1"))
    assert again.status_code == 200  # acknowledged duplicate: a row of its own, without a key
    forged = api.client.post(f"/hooks/{iid}", content=old_body, headers=signed("github", old_body, "wrong",
                                                                              delivery_id="old-2"))
    assert forged.status_code == 401
    settle(api)
    before = _rows(api, iid)
    assert before["processed:old-1"].body == old_body
    assert {"duplicate:old-1", "rejected:None"} <= set(before)  # unverified ids are not kept

    travel(31 * DAY)
    new_body = payload("github", 1)
    assert api.client.post(f"/hooks/{iid}", content=new_body,
                           headers=signed("github", new_body, secret, delivery_id="new-1")).status_code == 202
    settle(api)
    assert _prune(api) == (1, 2)
    after = _rows(api, iid)
    assert set(after) == {"processed:old-1", "processed:new-1"}
    assert after["processed:old-1"].body is None and after["processed:new-1"].body == new_body
    assert after["processed:old-1"].dedupe_key is not None  # the key stays: it is the replay defence
    assert _prune(api) == (0, 0)  # idempotent

    # a captured old delivery replayed after its payload is gone is still only a duplicate
    replay = api.client.post(f"/hooks/{iid}", content=old_body, headers=signed("github", old_body, secret,
                                                                              delivery_id="old-1"))
    assert replay.status_code == 200 and "duplicate:old-1" in _rows(api, iid)


def test_deliveries_still_waiting_for_processing_are_never_pruned(api: Api, travel: Callable[[float], None]) -> None:
    h, iid, secret = _github(api)
    body = payload("github")
    assert api.client.post(f"/hooks/{iid}", content=body,
                           headers=signed("github", body, secret, delivery_id="waiting")).status_code == 202
    settle(api)
    with transaction(api.state.sessions) as s:  # as if the process died before processing it
        row = s.scalars(select(WebhookDelivery).where(WebhookDelivery.delivery_id == "waiting")).one()
        row.outcome, row.processed_at = "accepted", None
    travel(90 * DAY)
    assert _prune(api, days=1) == (0, 0)
    assert _rows(api, iid)["accepted:waiting"].body == body


def test_the_processor_applies_the_retention_when_it_starts(make_api: Callable[..., Api],
                                                            travel: Callable[[float], None]) -> None:
    api = make_api(webhook_retention_days=7)
    h, iid, secret = _github(api)
    body = payload("github")
    api.client.post(f"/hooks/{iid}", content=body, headers=signed("github", body, secret, delivery_id="a"))
    settle(api)
    travel(8 * DAY)
    fresh = make_api(webhook_retention_days=7)  # a new app: its processor starts with the next delivery
    other = payload("github", 2)
    r = fresh.client.post(f"/hooks/{iid}", content=other, headers=signed("github", other, secret, delivery_id="b"))
    assert r.status_code == 202, r.text
    settle(fresh)
    deadline = time.monotonic() + 10  # the worker prunes in the background, after the answer
    while _rows(fresh, iid)["processed:a"].body is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    rows = _rows(fresh, iid)
    assert rows["processed:a"].body is None and rows["processed:b"].body == other


def test_pmapctl_webhooks_prune(api: Api, travel: Callable[[float], None], monkeypatch) -> None:
    from pmap.cli.main import app
    from pmap.core.settings import get_settings

    h, iid, secret = _github(api)
    body = payload("github")
    api.client.post(f"/hooks/{iid}", content=body, headers=signed("github", body, secret, delivery_id="cli"))
    settle(api)
    travel(3 * DAY)
    monkeypatch.setenv("PMAP_DATABASE_URL", api.state.settings.resolved_database_url)
    get_settings.cache_clear()
    try:
        kept = CliRunner().invoke(app, ["webhooks", "prune"])  # default 30 days: nothing is that old
        assert kept.exit_code == 0, kept.output
        assert _rows(api, iid)["processed:cli"].body == body
        done = CliRunner().invoke(app, ["webhooks", "prune", "--days", "2"])
        assert done.exit_code == 0, done.output
        assert "cleared 1 payload" in done.output
        assert _rows(api, iid)["processed:cli"].body is None
        assert CliRunner().invoke(app, ["webhooks", "prune", "--days", "0"]).exit_code != 0
    finally:
        get_settings.cache_clear()
