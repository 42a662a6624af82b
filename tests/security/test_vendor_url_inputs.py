"""Settings that become part of a vendor URL: path settings stay one segment each (no way out of the
configured base), a base URL carries no control character in any encoding, and a stored value PMAP
would refuse today answers a 4xx, never a 500."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from pmap.integrations.models import Integration
from tests.conftest import Api, canary

BASE = "http://127.0.0.1:9"  # nothing listens: nothing here may get as far as a connection
CREDS = {"github_issues": {"token": "t"}, "github": {"token": "t"}, "github_code_scanning": {"token": "t"},
         "azure_boards": {"personal_access_token": "p"}, "gitlab_issues": {"private_token": "g"},
         "jenkins": {"username": "u", "api_token": "j"}, "nessus": {"access_key": "a", "secret_key": "s"}}

PATH_SETTINGS = [
    ("github_issues", "repository", "../.."),
    ("github_issues", "repository", "acme/%2e%2e"),
    ("github", "repository", "../.."),
    ("github_code_scanning", "repository", "acme/.."),
    ("azure_boards", "project", "../otherorg/Security"),
    ("azure_boards", "project", "%2e%2e"),
    ("azure_boards", "project", "Sec%2fOps"),
    ("gitlab_issues", "project", "../../groups/other"),
    ("gitlab_issues", "project", "acme/%252e%252e"),
    ("jenkins", "job", "../../script"),
    ("jenkins", "job", "folder/%2e%2e"),
]


def _creds(vendor: str) -> dict[str, str]:
    return {k: canary(v) for k, v in CREDS[vendor].items()}


def _create(api: Api, h: dict[str, str], vendor: str, connection: dict[str, Any]) -> Any:
    return api.client.post("/api/v1/integrations", headers=h, json={
        "name": f"i-{uuid.uuid4().hex[:8]}", "vendor": vendor, "connection": {"base_url": BASE, **connection},
        "credentials": _creds(vendor)})


def _store(api: Api, iid: str, connection: dict[str, Any]) -> None:
    """Write ``connection`` into the row directly, as a row saved before a check existed would hold it."""
    with api.state.sessions() as session:
        row = session.get_one(Integration, uuid.UUID(iid))
        row.connection = connection
        session.commit()


@pytest.mark.parametrize(("vendor", "name", "value"), PATH_SETTINGS)
def test_path_settings_that_could_leave_the_base_are_refused_when_saved(api: Api, vendor: str, name: str,
                                                                          value: str) -> None:
    h = api.token()
    r = _create(api, h, vendor, {name: value})
    assert r.status_code == 422, r.text
    assert [f["field"] for f in r.json()["error"]["fields"]] == [f"connection.{name}"]
    good = {"repository": "acme/webapp", "project": "acme/webapp" if vendor.startswith("gitlab") else "Security",
            "job": "folder/webapp"}[name]
    iid = _create(api, h, vendor, {name: good}).json()["id"]
    r = api.client.patch(f"/api/v1/integrations/{iid}", headers=h, json={"connection": {name: value}})
    assert r.status_code == 422, r.text
    assert api.client.get(f"/api/v1/integrations/{iid}", headers=h).json()["connection"][name] == good


def test_ordinary_names_with_dots_spaces_and_unicode_stay_valid(api: Api) -> None:
    h = api.token()
    for vendor, connection in [("github_issues", {"repository": "acme/web.app"}),
                               ("azure_boards", {"project": "Sécurité Ops v1.2"}),
                               ("gitlab_issues", {"project": "acme/sub-group/web_app"}),
                               ("gitlab_issues", {"project": "1234"}),
                               ("jenkins", {"job": "Team Folder/web app..ci"})]:
        r = _create(api, h, vendor, connection)
        assert r.status_code == 201, (vendor, r.text)


@pytest.mark.parametrize("suffix", ["%0d%0a", "%0D%0AX-Injected:%201", "%00", "%09", "%7f", "%7F", "%c2%85",
                                    "%250d%250a", "\x7fx", "\x85x"])
def test_a_base_url_with_control_characters_raw_or_encoded_is_refused(api: Api, suffix: str) -> None:
    h = api.token()
    r = _create(api, h, "nessus", {"base_url": f"{BASE}/nessus{suffix}"})
    assert r.status_code == 422, r.text
    problem = r.json()["error"]["fields"][0]
    assert problem["field"] == "connection.base_url" and "control" in problem["reason"], r.text
    iid = _create(api, h, "nessus", {"base_url": f"{BASE}/nessus"}).json()["id"]
    r = api.client.patch(f"/api/v1/integrations/{iid}", headers=h,
                         json={"connection": {"base_url": f"{BASE}/nessus{suffix}"}, "credentials": _creds("nessus")})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "connection.base_url", r.text


@pytest.mark.parametrize("stored", [f"{BASE}/nessus%0d%0a", f"{BASE}/nessus%00", f"{BASE}/n%09x", f"{BASE}/n%7f",
                                    f"{BASE}/nessus\r\nX-Injected: 1", "http://[::1/nessus", "ftp://127.0.0.1/x"])
def test_a_stored_base_url_pmap_would_refuse_answers_4xx_never_500(api: Api, stored: str) -> None:
    h = api.token()
    iid = _create(api, h, "nessus", {"base_url": f"{BASE}/nessus"}).json()["id"]
    _store(api, iid, {"base_url": stored})
    for route in ("test", "permissions-check"):
        r = api.client.post(f"/api/v1/integrations/{iid}/{route}", headers=h, json={})
        assert 400 <= r.status_code < 500, (route, r.status_code, r.text)


@pytest.mark.parametrize(("vendor", "name", "value"), [("github_issues", "repository", "../.."),
                                                       ("azure_boards", "project", "../otherorg/Security")])
def test_a_stored_path_setting_pmap_would_refuse_answers_4xx_never_500(api: Api, vendor: str, name: str,
                                                                       value: str) -> None:
    h = api.token()
    iid = _create(api, h, vendor, {}).json()["id"]
    assert api.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=h).status_code == 201
    _store(api, iid, {"base_url": BASE, name: value})
    for route in ("test", "permissions-check", "webhook/register"):
        r = api.client.post(f"/api/v1/integrations/{iid}/{route}", headers=h, json={})
        assert r.status_code == 422, (route, r.status_code, r.text)
        assert f"connection.{name}" in [f["field"] for f in r.json()["error"]["fields"]], r.text
