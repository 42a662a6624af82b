"""An unknown route's 404 (and a wrong method's 405) names the method and the path it did not serve:
never the query string (it may carry a secret), and with control characters escaped."""

from __future__ import annotations

from pmap.core.http_errors import shown
from tests.conftest import Api


def _error(api: Api, method: str, url: str) -> tuple[int, dict[str, str]]:
    r = api.client.request(method, url, headers=api.token())
    return r.status_code, r.json()["error"]


def test_a_404_names_the_path_it_has_no_route_for(api: Api) -> None:
    status, error = _error(api, "GET", "/api/v1/bogus")
    assert (status, error["code"], error["message"]) == (404, "not_found", "no route for GET /api/v1/bogus")
    status, error = _error(api, "DELETE", "/nowhere/at/all")
    assert (status, error["message"]) == (404, "no route for DELETE /nowhere/at/all")


def test_a_405_names_the_method_and_the_path(api: Api) -> None:
    status, error = _error(api, "PUT", "/api/v1/integrations")
    assert (status, error["code"], error["message"]) == (405, "method_not_allowed",
                                                         "PUT is not allowed on /api/v1/integrations")


def test_the_query_string_is_never_echoed(api: Api) -> None:
    secret = "ghp_" + "Q" * 36
    for url in (f"/api/v1/bogus?token={secret}", f"/api/v1/bogus?access_token={secret}&x=1"):
        r = api.client.get(url, headers=api.token())
        assert r.status_code == 404 and r.json()["error"]["message"] == "no route for GET /api/v1/bogus"
        assert secret not in r.text and "token=" not in r.text


def test_control_and_direction_changing_characters_are_escaped(api: Api) -> None:
    status, error = _error(api, "GET", "/api/v1/a%7fSet-Cookie:%20x%e2%80%aeb%1b[31m")
    assert status == 404
    assert error["message"] == "no route for GET /api/v1/a\\x7fSet-Cookie: x\\u202eb\\x1b[31m"
    assert not any(ch in error["message"] for ch in "\x7f\x1b\u202e")
    # the HTTP client drops tab, CR and LF from a URL itself: the helper is tested with them directly
    assert shown("a\r\nb\x00\x85\u2028") == "a\\r\\nb\\x00\\x85\\u2028"


def test_a_long_path_is_cut(api: Api) -> None:
    status, error = _error(api, "GET", "/api/v1/" + "a" * 5000)
    assert status == 404 and len(error["message"]) <= len("no route for GET ") + 200
    assert error["message"].endswith("…")


def test_a_404_raised_by_the_code_keeps_its_own_message(api: Api) -> None:
    status, error = _error(api, "GET", "/api/v1/integrations/00000000-0000-0000-0000-000000000000")
    assert (status, error["message"]) == (404, "integration not found")
