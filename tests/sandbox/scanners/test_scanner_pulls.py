"""The seeded data sets of the pulling vendors, read as the vendors document their paging (no PMAP code):
Snyk's cursor links and limit bounds, GitHub's Link headers and sort order, Qualys's truncation warning."""

from __future__ import annotations

import httpx

from pmap_sandbox.scanners import _common
from pmap_sandbox.scanners.snyk import ORG_ID
from pmap_sandbox.server import SandboxServer

from .conftest import cred, vendor_url


def test_snyk_pages_by_cursor_links_relative_to_the_rest_base(sandbox: SandboxServer, client: httpx.Client) -> None:
    base, token = vendor_url(sandbox, "snyk"), cred()
    _common.seed(sandbox.app, "snyk", token, count=25)
    auth = {"Authorization": f"token {token}"}
    too_small = client.get(f"{base}/orgs/{ORG_ID}/issues", params={"version": "2024-06-10", "limit": 5}, headers=auth)
    assert too_small.status_code == 400 and too_small.json()["errors"][0]["source"] == {"parameter": "limit"}
    seen, url = [], f"{base}/orgs/{ORG_ID}/issues?version=2024-06-10&limit=10"
    while url:
        page = client.get(url, headers=auth).json()
        seen += [issue["attributes"]["key"] for issue in page["data"]]
        nxt = page["links"].get("next")
        assert nxt is None or nxt.startswith(f"/orgs/{ORG_ID}/issues?")
        url = f"{base}{nxt}" if nxt else ""
    assert len(seen) == len(set(seen)) == 25 and _common.pulls(sandbox.app, "snyk", token) == 4


def test_github_pages_by_link_header_newest_update_first(sandbox: SandboxServer, client: httpx.Client) -> None:
    base, token = vendor_url(sandbox, "github_code_scanning"), cred()
    _common.seed(sandbox.app, "github_code_scanning", token, count=5, fixed_every=2)
    url: str | None = f"{base}/repos/example/shop/code-scanning/alerts?per_page=2&sort=updated&direction=desc"
    numbers = []
    while url:
        resp = client.get(url, headers={"Authorization": f"Bearer {token}"})
        numbers += [a["number"] for a in resp.json()]
        url = resp.links.get("next", {}).get("url")
    assert numbers == [5, 4, 3, 2, 1]
    fixed = client.get(f"{base}/repos/example/shop/code-scanning/alerts", params={"state": "fixed"},
                       headers={"Authorization": f"Bearer {token}"}).json()
    assert [a["number"] for a in fixed] == [4, 2]


def test_qualys_truncates_with_a_warning_naming_the_next_batch(sandbox: SandboxServer, client: httpx.Client) -> None:
    base, user = vendor_url(sandbox, "qualys_vmdr"), cred("user")
    _common.seed(sandbox.app, "qualys_vmdr", user, count=3)
    resp = client.post(f"{base}/api/2.0/fo/asset/host/vm/detection/", auth=(user, cred()),
                       headers={"X-Requested-With": "pmap"}, data={"action": "list", "truncation_limit": "2"})
    assert resp.text.count("<HOST>") == 2 and "<CODE>1980</CODE>" in resp.text
    nxt = resp.text.split("<URL><![CDATA[", 1)[1].split("]]>", 1)[0]
    assert "id_min=1002" in nxt
    last = client.get(nxt, auth=(user, cred()), headers={"X-Requested-With": "pmap"})
    assert last.text.count("<HOST>") == 1 and "<WARNING>" not in last.text
