"""Every findings test fails if a report format's code faulted during it (an exception other than
``ReportError`` escaping a parser or detector), unless the test is marked ``parser_fault``: a fault
is a bug met on odd input, and the client saw only a generic 4xx for it."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from pmap.findings.formats.base import parser_faults


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "parser_fault: the test provokes a parser fault on purpose")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    before = parser_faults()
    result = yield  # a test that failed on its own raises here, and keeps its own failure
    moved = {k: n - before.get(k, 0) for k, n in parser_faults().items() if n != before.get(k, 0)}
    if moved and item.get_closest_marker("parser_fault") is None:
        pytest.fail(f"a report format's code faulted during this test (see the logged traceback): {moved}",
                    pytrace=False)
    return result
