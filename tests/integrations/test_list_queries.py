"""List endpoints: an unknown query parameter is a 422 naming the known ones; the integration
filters (name, vendor, category, enabled) and a ``total`` that holds on every page, last included."""

from __future__ import annotations

import re
import uuid
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from pmap.app import API_PREFIX
from pmap.core.query import known_query_names
from tests.conftest import Api

TENABLE = {"vendor": "tenable_vm", "connection": {}, "credentials": {"access_key": "a" * 20, "secret_key": "b" * 20}}
JIRA = {"vendor": "jira_cloud", "connection": {"base_url": "https://acme.atlassian.net"},
        "credentials": {"email": "sec@acme.test", "api_token": "t" * 24}}
#: what a new user tried: a typo, a search box, an order by a name no list takes
UNKNOWN = {"bogus": "1", "q": "x", "order_by": "name"}


def _api_routes(api: Api) -> list[RouteContext]:
    # routers are included lazily: their routes are reached through route contexts, with full paths
    return [r for r in iter_route_contexts(cast(FastAPI, api.client.app).routes)
            if isinstance(r.original_route, APIRoute) and (r.path or "").startswith(API_PREFIX)]


def _known(route: RouteContext) -> tuple[str, ...]:
    assert isinstance(route.original_route, APIRoute)
    return known_query_names(route.original_route)


def _concrete(path: str) -> str:
    # a path parameter gets a well-formed value that names nothing: the 422 must come before any lookup
    return re.sub(r"\{(\w+)\}", lambda m: "tenable_vm" if m.group(1) == "vendor" else str(uuid.uuid4()), path)


def _is_list(route: RouteContext) -> bool:
    model: Any = route.response_model
    fields = getattr(model, "model_fields", {})
    return "GET" in (route.methods or ()) and ("items" in fields or getattr(model, "__origin__", None) is list)


def test_every_list_endpoint_refuses_an_unknown_query_parameter(api: Api) -> None:
    h = api.token()
    lists = [r for r in _api_routes(api) if _is_list(r)]
    # the walk must see every list there is (integrations, imports, jobs, findings, rules, connector types,
    # deliveries, ticket events, audit events, tokens), or it proves nothing
    assert len(lists) >= 10, [r.path for r in lists]
    for route in lists:
        r = api.client.get(_concrete(route.path or ""), params=UNKNOWN, headers=h)
        assert r.status_code == 422, (route.path, r.text)
        error = r.json()["error"]
        known = list(_known(route))
        assert error["code"] == "validation_failed"
        assert error["known_query_parameters"] == known
        assert sorted(f["field"] for f in error["fields"]) == sorted(UNKNOWN)
        for name in known:
            assert name in error["message"], (route.path, name)


def test_every_get_and_every_write_refuses_unknown_parameters(api: Api) -> None:
    h = api.token()
    for route in _api_routes(api):
        for method in (route.methods or set()) - {"HEAD"}:
            r = api.client.request(method, _concrete(route.path or ""), params={"bogus": "1"}, headers=h)
            assert r.status_code == 422 and "bogus" in r.json()["error"]["message"], (method, route.path, r.text)


def test_known_names_come_from_the_route_aliases_included(api: Api) -> None:
    by_path = {r.path: r for r in _api_routes(api) if "GET" in (r.methods or ())}
    findings = _known(by_path[f"{API_PREFIX}/findings"])
    assert "status" in findings and "finding_status" not in findings  # the alias is what callers send
    assert {"title", "severity", "limit", "cursor"} <= set(findings)
    assert set(_known(by_path[f"{API_PREFIX}/integrations"])) == {
        "limit", "cursor", "name", "vendor", "category", "enabled", "sort"}
    assert _known(by_path[f"{API_PREFIX}/integrations/{{integration_id}}"]) == ()


def test_a_mistyped_dry_run_deletes_nothing(api: Api) -> None:
    h = api.token()
    iid = api.client.post("/api/v1/integrations", json={"name": "keep", **TENABLE}, headers=h).json()["id"]
    r = api.client.delete(f"/api/v1/integrations/{iid}", params={"dryrun": "true"}, headers=h)
    assert r.status_code == 422 and "dry_run" in r.json()["error"]["message"]
    assert api.client.get(f"/api/v1/integrations/{iid}", headers=h).status_code == 200


def test_declared_parameters_still_work(api: Api) -> None:
    h = api.token()
    r = api.client.get("/api/v1/findings", params={"status": "open", "limit": 5}, headers=h)
    assert r.status_code == 200, r.text
    assert api.client.get("/api/v1/audit-events", params={"limit": 5}, headers=h).status_code == 200


def _seed(api: Api, h: dict[str, str]) -> dict[str, str]:
    ids = {}
    for name, body in (("Prod Tenable", TENABLE), ("tenable-lab", TENABLE), ("100%_done", TENABLE),
                       ("100 percent", TENABLE), ("Jira PROD", JIRA)):
        r = api.client.post("/api/v1/integrations", json={"name": name, **body}, headers=h)
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
    assert api.client.patch(f"/api/v1/integrations/{ids['tenable-lab']}", json={"enabled": False},
                            headers=h).status_code == 200
    return ids


def _names(api: Api, h: dict[str, str], **params: Any) -> list[str]:
    r = api.client.get("/api/v1/integrations", params=params, headers=h)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == len(page["items"])  # one page here: the total is what it holds
    return sorted(i["name"] for i in page["items"])


def test_integration_filters(api: Api) -> None:
    h = api.token()
    _seed(api, h)
    assert _names(api, h, name="prod") == ["Jira PROD", "Prod Tenable"]  # substring, any case
    assert _names(api, h, name="TENABLE") == ["Prod Tenable", "tenable-lab"]
    assert _names(api, h, name="%") == ["100%_done"]  # % is literal, not a wildcard
    assert _names(api, h, name="%_d") == ["100%_done"]
    assert _names(api, h, name="t_n") == []  # so is _ (as a wildcard it would match three "ten"s)
    assert _names(api, h, name="\\") == []  # the escape character too
    assert _names(api, h, name="100 ") == ["100 percent"]
    assert _names(api, h, vendor="jira_cloud") == ["Jira PROD"]
    assert _names(api, h, category="ticketing") == ["Jira PROD"]
    assert _names(api, h, category="vm", enabled="false") == ["tenable-lab"]
    assert _names(api, h, enabled="true", name="tenable") == ["Prod Tenable"]
    assert _names(api, h, name="nothing like it") == []


def test_integration_filters_refuse_unknown_values(api: Api) -> None:
    h = api.token()
    r = api.client.get("/api/v1/integrations", params={"category": "bogus"}, headers=h)
    assert r.status_code == 422 and "vm" in r.text and "ticketing" in r.text
    r = api.client.get("/api/v1/integrations", params={"vendor": "tenable"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "vendor"
    assert api.client.get("/api/v1/integrations", params={"enabled": "maybe"}, headers=h).status_code == 422
    assert api.client.get("/api/v1/integrations", params={"name": ""}, headers=h).status_code == 422


def test_other_organizations_are_neither_listed_nor_counted(api: Api) -> None:
    _seed(api, api.token("other"))
    page = api.client.get("/api/v1/integrations", headers=api.token()).json()
    assert page == {"items": [], "next_cursor": None, "total": 0}


@pytest.mark.parametrize("limit", [2, 3, 7])
def test_total_is_the_filtered_count_on_every_page_last_included(api: Api, limit: int) -> None:
    h = api.token()
    _seed(api, h)
    seen, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": limit, "category": "vm", **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/api/v1/integrations", params=params, headers=h).json()
        pages += 1
        assert page["total"] == 4, page  # the four vm integrations, whichever page this is
        seen += [i["name"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 4 and pages == -(-4 // limit)


def test_token_list_total(api: Api) -> None:
    h = api.token()
    for _ in range(2):
        api.token(role="viewer")
    api.token("other")
    first = api.client.get("/api/v1/tokens", params={"limit": 2}, headers=h).json()
    last = api.client.get("/api/v1/tokens", params={"limit": 2, "cursor": first["next_cursor"]}, headers=h).json()
    assert first["total"] == last["total"] == 3
    assert len(last["items"]) == 1 and last["next_cursor"] is None


@pytest.mark.parametrize("sort", ["name", "-name", "vendor", "-category", "created_at", "-last_tested_at",
                                  "last_synced_at"])
def test_integrations_sort_and_page_in_any_order(api: Api, sort: str) -> None:
    h = api.token()
    made = []
    for i, name in enumerate(["delta", "alpha", "echo", "charlie", "bravo"]):
        body = {**(TENABLE if i % 2 else JIRA), "name": f"{name}-{uuid.uuid4().hex[:6]}"}
        r = api.client.post("/api/v1/integrations", json=body, headers=h)
        assert r.status_code == 201, r.text
        made.append(r.json())
    tested = made[3]["id"]  # only one was ever tested: the rest sort as never
    with api.state.sessions() as s:
        from pmap.core.db import utcnow
        from pmap.integrations.models import Integration

        s.get_one(Integration, uuid.UUID(tested)).last_tested_at = utcnow()
        s.commit()
    field, descending = sort.lstrip("-"), sort.startswith("-")
    listed = api.client.get("/api/v1/integrations", params={"limit": 200}, headers=h).json()["items"]
    key = {i["id"]: (i[field] or "") for i in listed}
    expected = sorted(key, key=lambda ident: (key[ident], ident), reverse=descending)
    walked, cursor = [], None
    while True:
        params: dict[str, Any] = {"sort": sort, "limit": 2, **({"cursor": cursor} if cursor else {})}
        r = api.client.get("/api/v1/integrations", params=params, headers=h)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["total"] == len(made)
        walked += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert walked == expected
    if field == "last_tested_at":
        assert walked.index(tested) == (0 if descending else len(made) - 1)


def test_a_cursor_continues_only_the_order_that_issued_it(api: Api) -> None:
    h = api.token()
    for name in ("a", "b", "c"):
        assert api.client.post("/api/v1/integrations", json={**JIRA, "name": name}, headers=h).status_code == 201
    by_name = api.client.get("/api/v1/integrations", params={"sort": "name", "limit": 1}, headers=h).json()
    newest = api.client.get("/api/v1/integrations", params={"limit": 1}, headers=h).json()
    assert api.client.get("/api/v1/integrations", params={"sort": "-name", "cursor": by_name["next_cursor"]},
                          headers=h).status_code == 400
    assert api.client.get("/api/v1/integrations", params={"sort": "name", "cursor": newest["next_cursor"]},
                          headers=h).status_code == 400
    assert api.client.get("/api/v1/integrations", params={"sort": "secret_key"}, headers=h).status_code == 422
