"""Fetching ahead (pmap.connectors.vendors._pull.prefetched): order kept, at most one page ahead, errors raised
where they happened, and a consumer that stops early stops the fetching."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from pmap.connectors.vendors._pull import prefetched


def test_pages_arrive_in_order_and_at_most_one_ahead_of_the_consumer() -> None:
    produced: list[int] = []
    consumed: list[int] = []
    gate = threading.Event()

    def pages() -> Iterator[int]:
        for n in range(6):
            produced.append(n)
            yield n

    for page in prefetched(pages()):
        consumed.append(page)
        gate.wait(0.02)  # let the fetcher run ahead as far as it can
        assert len(produced) - len(consumed) <= 2  # the page in the queue, and the one being handed over
    assert consumed == list(range(6))


def test_an_error_of_the_fetching_side_is_raised_after_the_pages_before_it() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("the vendor answered garbage")

    got: list[int] = []
    with pytest.raises(ValueError, match="garbage"):
        for page in prefetched(pages()):
            got.append(page)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_the_fetcher() -> None:
    produced: list[int] = []

    def pages() -> Iterator[int]:
        for n in range(1000):
            produced.append(n)
            yield n

    stream = prefetched(pages(), name="test-prefetch")
    assert next(stream) == 0
    stream.close()
    assert len(produced) <= 4
    assert not any(t.name == "test-prefetch" for t in threading.enumerate())
