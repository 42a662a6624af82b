"""Fixtures of the import pipeline tests."""

from __future__ import annotations

import pytest

from tests.conftest import Api


@pytest.fixture
def admin(api: Api) -> dict[str, str]:
    """Headers of an admin token of organization acme."""
    return api.token("acme", "admin")
