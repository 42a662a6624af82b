"""Vendor URL paths: settings become checked, encoded segments; no path leaves the base; a bad URL is
a 4xx before anything is sent."""

from __future__ import annotations

import pytest

from pmap.core.egress import EgressPolicy
from pmap.core.errors import EgressDenied, PmapError, ValidationFailed
from pmap.core.outbound import OutboundClient, OutboundConfig
from pmap.core.urlpath import dot_segment_in, segment_problem, vendor_path

DEV = OutboundConfig(policy=EgressPolicy(production=False))

HOSTILE_SEGMENTS = ["", ".", "..", "../..", "a/b", "a\\b", "%2e%2e", "%2E%2e", ".%2e", "%2e.", "%252e%252e",
                    "%25252e%25252e", "a%2fb", "a%2Fb", "a%5cb", "a%5Cb", "%252f", "a\x00b", "a%00b", "a\r\nb",
                    "a%0d%0ab", "a\tb", "a%09b", "a\x7fb", "a%7fb", "a\x85b", "a%c2%85b", "%ff%fe"]


@pytest.mark.parametrize("value", HOSTILE_SEGMENTS)
def test_hostile_segments_are_refused_naming_the_field_without_the_value(value: str) -> None:
    assert segment_problem(value) is not None
    with pytest.raises(ValidationFailed) as err:
        vendor_path("/{project}/_apis/wit/workitems", project=value)
    assert err.value.status == 422 and [f.field for f in err.value.fields] == ["project"]
    if len(value) > 2:
        assert value not in err.value.message and value not in err.value.fields[0].reason


@pytest.mark.parametrize("value", ["../..", "acme/..", "./webapp", "acme/", "/webapp", "acme//webapp", "acme/%2e%2e",
                                   "acme/web%2fapp"])
def test_every_part_of_a_multi_segment_setting_is_checked(value: str) -> None:
    for template in ("/repos/{repository/}/hooks", "/projects/{project%}"):
        with pytest.raises(ValidationFailed):
            vendor_path(template, repository=value, project=value)


def test_segments_are_percent_encoded_in_each_documented_form() -> None:
    assert vendor_path("/{project}/_apis/wit/workitems/${kind}", project="Sec Ops?#", kind="User Story") == \
        "/Sec%20Ops%3F%23/_apis/wit/workitems/$User%20Story"
    assert vendor_path("/repos/{repository/}/issues/{number}", repository="acme/web.app", number=12) == \
        "/repos/acme/web.app/issues/12"
    # GitLab's documented form of a project path: one segment, its slashes encoded
    assert vendor_path("/projects/{project%}/hooks", project="acme/sub group/webapp") == \
        "/projects/acme%2Fsub%20group%2Fwebapp/hooks"
    assert vendor_path("/x/{name}", name="Sécurité..v2") == "/x/S%C3%A9curit%C3%A9..v2"
    with pytest.raises(KeyError):
        vendor_path("/x/{missing}")


@pytest.mark.parametrize("path", ["/../other", "/a/../../other", "/%2e%2e/other", "/%2E%2E/other", "/.%2e/x",
                                  "/%252e%252e/other", "/a/%2e", "/a\\..\\x", "/a%5c..%5cx", "/./x"])
def test_the_client_sends_no_path_that_climbs_out_of_its_base(server, path: str) -> None:
    with OutboundClient(server.url() + "/myorg", DEV) as client, pytest.raises(EgressDenied) as err:
        client.get(path)
    assert err.value.status == 422 and "base path" in err.value.message
    assert server.seen == []


def test_ordinary_paths_and_gitlab_encoded_projects_still_go_out(server) -> None:
    with OutboundClient(server.url() + "/api/v4", DEV) as client:
        client.get("/projects/acme%2Fwebapp/pipelines", params={"ref": "../main"})
        client.get("/files/a..b/c.d")
    assert [s.path for s in server.seen] == ["/api/v4/projects/acme%2Fwebapp/pipelines?ref=..%2Fmain",
                                             "/api/v4/files/a..b/c.d"]
    assert not dot_segment_in("/projects/acme%2Fwebapp?x=/../..")


@pytest.mark.parametrize("base", ["/n%0d%0a", "/n%0D%0A", "/n%00", "/n%09x", "/n%7f", "/n%c2%85", "/n%250d"])
def test_a_base_url_with_encoded_control_characters_is_a_4xx_and_sends_nothing(server, base: str) -> None:
    with pytest.raises(PmapError) as err, OutboundClient(server.url() + base, DEV) as client:
        client.get("/session")
    assert 400 <= err.value.status < 500 and getattr(err.value, "step", None) == "egress", err.value
    assert server.seen == []


def test_a_base_url_keeps_its_encoded_path_as_it_was_given(server) -> None:
    with OutboundClient(server.url() + "/my%20org/a%2Fb", DEV) as client:
        client.get("/_apis/projects")
    assert [s.path for s in server.seen] == ["/my%20org/a%2Fb/_apis/projects"]
