"""Schemathesis hooks for ``python -m bench.probe`` (loaded through ``SCHEMATHESIS_HOOKS``).

The probe writes a state file (``PMAP_PROBE_STATE``) before schemathesis starts: the canary values, the
webhook secrets, the ids of the seeded records and the probe's own admin token id. These hooks
- send real ids as well as generated ones, so routes with ids reach real records, not only 404s (DELETE
  never gets the protected ones: the integrations holding the findings and webhook secrets);
- send, beside the generated bodies, valid integration bodies whose ``base_url`` ends in hostile text
  (percent-encoded controls, dot segments, stray ``%``), which random JSON would never reach;
- never revoke the probe's own tokens (that would turn the rest of the run into 401s);
- fail any response whose body or headers hold a canary (the ``canary_free`` check);
- count every response by status and write the counts to ``PMAP_PROBE_STATS`` at exit, with one
  reproducer for each kind of 5xx; a deliberate 5xx (502 ``upstream_error``: the vendor could not be reached
  or answered wrongly; 503 with Retry-After: back off) is listed but is not a failure.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis.core.failures import ServerError

_STATE: dict[str, Any] = json.loads(Path(os.environ["PMAP_PROBE_STATE"]).read_text(encoding="utf-8"))
_CANARIES: dict[bytes, str] = {value.encode(): label for value, label in _STATE["canaries"].items()}
_WEBHOOK_SECRETS: list[bytes] = [c.encode() for c in _STATE["webhook_secrets"]]
_IDS: dict[str, list[str]] = _STATE["ids"]
_KEPT_TOKEN_IDS: set[str] = set(_STATE["kept_token_ids"])  # the tokens the probe itself calls with
_PROTECTED: set[str] = set(_STATE["protected_ids"])
_EXAMPLES: list[dict[str, Any]] = _STATE["examples"]  # valid {vendor, connection, credentials} bodies
_URL_TAILS = st.one_of(
    st.text(max_size=24),
    st.lists(st.sampled_from(["%0d", "%0a", "%00", "%0D%0A", "%09", "%7f", "%2f", "%2e%2e", "%25", "%ff", "%c0%ae",
                              "%", "%zz", "..", "/", "?", "#", "@", ":", "\\", " ", "é", "\u202e", "~", "x"]),
             min_size=1, max_size=6).map("".join),
)

_lock = threading.Lock()
_statuses: Counter[str] = Counter()
_server_errors: dict[tuple[str, str, int, bool], dict[str, Any]] = {}  # a reproducer per operation, status, kind
_canary_hits: set[str] = set()


@schemathesis.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy:
    """Each id parameter is either the generated value or one of the seeded records' ids."""
    if not path_parameters:
        return st.just(path_parameters)
    deleting = context.operation.method.upper() == "DELETE"
    choices = {}
    for name, value in path_parameters.items():
        real = [i for i in _IDS.get(name, []) if not (deleting and i in _PROTECTED)]
        choices[name] = st.sampled_from([value, *real]) if real else st.just(value)
    return st.fixed_dictionaries(choices)


def _hostile_body(method: str, path: str) -> st.SearchStrategy | None:
    """A valid body for the integration routes that take settings, its ``base_url`` ending in hostile text."""
    def build(example: dict[str, Any], tail: str, name: str) -> dict[str, Any]:
        connection = {**example["connection"], "base_url": example["connection"]["base_url"] + tail}
        body = {"connection": connection, "credentials": example["credentials"]}
        if path == "/api/v1/integrations":
            return {"name": name, "vendor": example["vendor"], **body}
        if path == "/api/v1/integrations/test":
            return {"vendor": example["vendor"], **body}
        return {"connection": connection}  # PATCH and a saved test: the integration's own vendor decides
    if (method, path) not in {("POST", "/api/v1/integrations"), ("POST", "/api/v1/integrations/test"),
                              ("POST", "/api/v1/integrations/{integration_id}/test"),
                              ("PATCH", "/api/v1/integrations/{integration_id}")} or not _EXAMPLES:
        return None
    return st.builds(build, st.sampled_from(_EXAMPLES), _URL_TAILS, st.text(min_size=1, max_size=40))


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy:
    """The generated body, or (on the integration routes) a valid one with a hostile ``base_url``."""
    hostile = _hostile_body(context.operation.method.upper(), context.operation.path)
    return st.just(body) if hostile is None else st.one_of(hostile, st.just(body), hostile)


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """The probe's own tokens are never the ones revoked (links may find their ids in GET /tokens)."""
    params = case.path_parameters or {}
    if str(params.get("token_id", "")).lower() in _KEPT_TOKEN_IDS:
        params["token_id"] = str(uuid.uuid4())


def deliberate(response: Any) -> bool:
    """Whether a 5xx is PMAP's documented answer (an unreachable or wrong vendor, a back-off) rather than a fault."""
    if response.status_code == 503:
        return "retry-after" in response.headers
    if response.status_code != 502:
        return False
    try:
        return json.loads(response.content)["error"]["code"] == "upstream_error"
    except (ValueError, KeyError, TypeError):
        return False


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but the server-error check's on a deliberate 5xx."""
    return not (isinstance(failure, ServerError) and deliberate(response))


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    """Count every response the server sent, by status; keep a reproducer of each kind of 5xx."""
    with _lock:
        _statuses[str(response.status_code)] += 1
        key = (case.method, case.path, response.status_code, deliberate(response))
        if response.status_code >= 500 and key not in _server_errors:
            request = response.request
            body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
            _server_errors[key] = {"status": response.status_code, "method": request.method, "url": request.url,
                                   "body": body[:600].decode(errors="replace"),
                                   "response": response.content[:300].decode(errors="replace"), "count": 0,
                                   "deliberate": deliberate(response)}
        if key in _server_errors:
            _server_errors[key]["count"] += 1


@schemathesis.check
def canary_free(ctx: Any, response: Any, case: Any) -> bool | None:
    """No canary credential in the body or headers; a webhook secret only in its own reveal answer."""
    headers = "\n".join(f"{k}: {v}" for k, values in response.headers.items() for v in values).encode()
    for where, data in (("body", response.content or b""), ("headers", headers)):
        found = [label for value, label in _CANARIES.items() if value in data]
        if not case.path.endswith("/webhook/reveal"):
            found += ["a webhook secret" for value in _WEBHOOK_SECRETS if value in data]
        if found:
            with _lock:
                _canary_hits.update(f"{case.method} {case.path} ({where}): {label}" for label in found)
            raise AssertionError(f"planted secrets in the response {where}: {', '.join(found)}")
    return None


@atexit.register
def _write_stats() -> None:
    path = os.environ.get("PMAP_PROBE_STATS")
    if path:
        with _lock, open(path, "w", encoding="utf-8") as f:
            json.dump({"statuses": dict(_statuses), "server_errors": list(_server_errors.values()),
                       "canary_hits": sorted(_canary_hits)}, f)
