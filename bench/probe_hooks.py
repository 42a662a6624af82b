"""Schemathesis hooks for ``python -m bench.probe`` (loaded through ``SCHEMATHESIS_HOOKS``).

The probe writes a state file (``PMAP_PROBE_STATE``) before schemathesis starts: the canary values, the
webhook secrets, the ids of the seeded records and the probe's own admin token id. These hooks
- send real ids as well as generated ones, so routes with ids reach real records, not only 404s;
- never revoke the probe's own admin token (that would turn the rest of the run into 401s);
- fail any response whose body or headers hold a canary (the ``canary_free`` check);
- count every response by status and write the counts to ``PMAP_PROBE_STATS`` at exit.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import uuid
from collections import Counter
from typing import Any

import schemathesis
from hypothesis import strategies as st

_STATE: dict[str, Any] = json.loads(open(os.environ["PMAP_PROBE_STATE"], encoding="utf-8").read())
_CANARIES: dict[bytes, str] = {value.encode(): label for value, label in _STATE["canaries"].items()}
_WEBHOOK_SECRETS: list[bytes] = [c.encode() for c in _STATE["webhook_secrets"]]
_IDS: dict[str, list[str]] = _STATE["ids"]
_OWN_TOKEN_ID: str = _STATE["own_token_id"]

_lock = threading.Lock()
_statuses: Counter[str] = Counter()
_server_errors: dict[tuple[str, str, int], dict[str, Any]] = {}  # one reproducer per method, path and status
_canary_hits: set[str] = set()


@schemathesis.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy:
    """Each id parameter is either the generated value or one of the seeded records' ids."""
    if not path_parameters:
        return st.just(path_parameters)
    choices = {
        name: st.sampled_from([value, *_IDS[name]]) if _IDS.get(name) else st.just(value)
        for name, value in path_parameters.items()
    }
    return st.fixed_dictionaries(choices)


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """The probe's own admin token is never the one revoked (links may find its id in GET /tokens)."""
    params = case.path_parameters or {}
    if str(params.get("token_id", "")).lower() == _OWN_TOKEN_ID:
        params["token_id"] = str(uuid.uuid4())


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    """Count every response the server sent, by status; keep a reproducer of each kind of 5xx."""
    with _lock:
        _statuses[str(response.status_code)] += 1
        key = (case.method, case.path, response.status_code)
        if response.status_code >= 500 and key not in _server_errors:
            request = response.request
            body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
            _server_errors[key] = {"status": response.status_code, "method": request.method, "url": request.url,
                                   "body": body[:600].decode(errors="replace"),
                                   "response": response.content[:300].decode(errors="replace")}


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
