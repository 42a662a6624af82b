"""An unexpected fault answers 500 with a correlation id and nothing internal."""

from __future__ import annotations

import pytest

from pmap.integrations import service
from tests.conftest import Api, canary


def test_500_has_correlation_id_and_no_detail(api: Api, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    secret = canary()
    from pmap.core import redaction

    def explode(*_a, **_kw):  # noqa: ANN002, ANN003, ANN202
        with redaction.secrets_in_use([secret]):
            raise RuntimeError(f"database password is {secret} at /srv/pmap/internal.py")

    monkeypatch.setattr(service, "list_page", explode)
    r = api.client.get("/api/v1/integrations", headers=api.token())
    assert r.status_code == 500
    err = r.json()["error"]
    assert err["code"] == "internal_error" and len(err["correlation_id"]) == 32
    assert r.headers["x-correlation-id"] == err["correlation_id"]
    assert secret not in r.text and "internal.py" not in r.text and "RuntimeError" not in r.text
    logs = capfd.readouterr().err
    assert err["correlation_id"] in logs  # the fault is logged, with its correlation id
    assert "RuntimeError" in logs and secret not in logs
