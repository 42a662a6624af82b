"""One cheap authenticated call per scanner vendor, with the marker-bearing credential as a parameter.

``value=None`` sends the call without credentials. Token-exchange vendors (Checkmarx One, Black
Duck) exchange first and return the exchange's response when it fails.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from pmap_sandbox.scanners import veracode

Probe = Callable[[httpx.Client, str, "str | None"], httpx.Response]
SNYK_VERSION = "2024-06-10"


def _h(name: str, value: str | None) -> dict[str, str]:
    return {name: value} if value is not None else {}


def _bearer(value: str | None, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {value}"} if value is not None else {}


def _basic(user: str, value: str | None) -> httpx.BasicAuth | None:
    return httpx.BasicAuth(user, value) if value is not None else None


def tenable_vm(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.get(f"{base}/session", headers=_h("X-ApiKeys", v and f"accessKey={v}; secretKey=s3cr3t;"))


def nessus(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.get(f"{base}/server/properties", headers=_h("X-ApiKeys", v and f"accessKey={v}; secretKey=s3cr3t;"))


def tenable_sc(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.get(f"{base}/status", headers=_h("x-apikey", v and f"accesskey={v}; secretkey=s3cr3t;"))


def qualys_vmdr(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.get(f"{base}/msp/about.php", auth=_basic("pmap_qa", v), headers={"X-Requested-With": "pmap-tests"})


def rapid7_insightvm(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.get(f"{base}/administration/info", auth=_basic("pmap", v))


def burp_dast(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.post(f"{base}/graphql/v1", headers=_h("Authorization", v), json={"query": "{ sites { id name } }"})


def zap(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.get(f"{base}/JSON/core/view/version/", headers=_h("X-ZAP-API-Key", v))


def invicti(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.get(f"{base}/account/me", auth=_basic("0a1b2c3d", v))


def acunetix(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.get(f"{base}/me", headers=_h("X-Auth", v))


def sonarqube(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    # not /api/authentication/validate: it answers 200 {"valid": false} to a refused token
    return c.get(f"{base}/api/issues/search", params={"ps": 1}, headers=_bearer(v))


def checkmarx_one(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    form = {"grant_type": "refresh_token", "client_id": "ast-app"} | ({"refresh_token": v} if v is not None else {})
    tok = c.post(f"{base}/auth/realms/sandbox/protocol/openid-connect/token", data=form)
    if tok.status_code != 200:
        return tok
    return c.get(f"{base}/api/versions", headers=_bearer(tok.json()["access_token"]))


def veracode_(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    url = f"{base}/api/authn/v2/users/self"
    if v is None:
        return c.get(url)
    parts = urlsplit(url)
    header = veracode.authorization_header(v, veracode.secret_for(v), parts.hostname or "", parts.path, "GET")
    return c.get(url, headers={"Authorization": header})


def semgrep(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.get(f"{base}/deployments", headers=_bearer(v))


def github_code_scanning(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.get(f"{base}/user", headers=_bearer(v))


def snyk(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.get(f"{base}/self", params={"version": SNYK_VERSION}, headers=_bearer(v, "token"))


def dependency_track(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.get(f"{base}/api/v1/project", params={"pageSize": 1}, headers=_h("X-Api-Key", v))


def jfrog_xray(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.get(f"{base}/system/version", headers=_bearer(v))


def black_duck(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    tok = c.post(f"{base}/api/tokens/authenticate", headers=_bearer(v, "token"))
    if tok.status_code != 200:
        return tok
    return c.get(f"{base}/api/current-version", headers=_bearer(tok.json()["bearerToken"]))


def runzero(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.get(f"{base}/org", headers=_bearer(v and f"OT{v}"))


def mobsf(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.get(f"{base}/scans", params={"page": 1}, headers=_h("X-Mobsf-Api-Key", v))


def nowsecure(c: httpx.Client, base: str, v: str | None) -> httpx.Response:
    return c.post(f"{base}/graphql", headers=_bearer(v), json={"query": "{ auto { applications { ref } } }"})


PROBES: dict[str, Probe] = {
    "tenable_vm": tenable_vm,
    "nessus": nessus,
    "tenable_sc": tenable_sc,
    "qualys_vmdr": qualys_vmdr,
    "rapid7_insightvm": rapid7_insightvm,
    "burp_dast": burp_dast,
    "zap": zap,
    "invicti": invicti,
    "acunetix": acunetix,
    "sonarqube": sonarqube,
    "checkmarx_one": checkmarx_one,
    "veracode": veracode_,
    "semgrep": semgrep,
    "github_code_scanning": github_code_scanning,
    "snyk": snyk,
    "dependency_track": dependency_track,
    "jfrog_xray": jfrog_xray,
    "black_duck": black_duck,
    "runzero": runzero,
    "mobsf": mobsf,
    "nowsecure": nowsecure,
}

# vendors whose documented answer to a refused credential is not 401
BAD_STATUS = {"zap": 400, "checkmarx_one": 400}  # ZAP: 400 with api.reportpermerrors, else no answer at all
MISSING_STATUS = {"zap": 400, "checkmarx_one": 400}
RATELIMIT_STATUS = {"qualys_vmdr": 409}
