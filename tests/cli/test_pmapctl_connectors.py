"""``pmapctl connectors list``: an unknown category is a usage error naming the valid ones, and the
catalog fits an 80-column terminal with every vendor key, operation and format whole."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from pmap.cli.main import app
from pmap.connectors.base import Category
from pmap.connectors.catalog import connector_types

runner = CliRunner()


def _list(*args: str, columns: int = 80) -> tuple[int, str, str]:
    result = runner.invoke(app, ["connectors", "list", *args], env={"COLUMNS": str(columns), "NO_COLOR": "1"})
    return result.exit_code, result.stdout, result.stderr


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[\w./()-]+", text))


def test_an_unknown_category_is_a_usage_error_naming_the_valid_ones() -> None:
    code, out, err = _list("--category", "bogus")
    assert code == 2 and out == ""
    for category in Category:
        assert f"'{category.value}'" in err, err


@pytest.mark.parametrize("columns", [80, 100, 200])
def test_the_catalog_fits_the_terminal_with_nothing_cut(columns: int) -> None:
    code, out, _err = _list(columns=columns)
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert "…" not in out  # nothing shortened with an ellipsis
    words = _tokens(out)
    for ct in connector_types().values():
        # the vendor key starts a line of its own row, never wrapped: it is what the API and CLI take
        assert any(line.split()[:1] == [ct.vendor] for line in lines if line.strip()), ct.vendor
        assert set(ct.offered()) <= words, (ct.vendor, ct.offered())
        assert set(ct.report_formats) <= words, (ct.vendor, ct.report_formats)
        if ct.webhook_scheme:
            assert ct.webhook_scheme in words
    for category in Category:
        assert category.value in words


def test_a_category_lists_only_its_vendor_types() -> None:
    code, out, _err = _list("--category", "ITSM")  # any case
    assert code == 0
    shown = {line.split()[0] for line in out.splitlines() if line.strip() and line.split()[0] in connector_types()}
    assert shown == {v for v, ct in connector_types().items() if ct.category is Category.ITSM}
