"""Five-field cron expressions: what is accepted, and when a schedule is due."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pmap.core.cron import CronError, check_cron, latest_due, next_due

MONDAY_NOON = datetime(2026, 12, 7, 12, 5, 30, tzinfo=UTC)  # 2026-12-07 is a Monday


@pytest.mark.parametrize(("given", "kept"), [
    ("*/5 * * * *", "*/5 * * * *"),
    ("  0   3 * *  1 ", "0 3 * * 1"),
    ("0 9-17 * * MON-FRI", "0 9-17 * * MON-FRI"),
    ("15 2 1 1,7 *", "15 2 1 1,7 *"),
])
def test_five_valid_fields_are_kept_with_whitespace_normalized(given: str, kept: str) -> None:
    assert check_cron(given) == kept


@pytest.mark.parametrize(("given", "why"), [
    ("* * * *", "five fields"),
    ("* * * * * *", "five fields"),  # cronsim would read a sixth field as seconds
    ("@hourly", "five fields"),
    ("61 * * * *", "not a valid cron expression"),
    ("* 24 * * *", "not a valid cron expression"),
    ("* * 0 * *", "not a valid cron expression"),
    ("", "1 to 100 characters"),
    ("1," * 60 + "1 * * * *", "1 to 100 characters"),
])
def test_anything_else_is_refused_saying_why(given: str, why: str) -> None:
    with pytest.raises(CronError, match=why) as err:
        check_cron(given)
    assert "e.g." in str(err.value)  # an example of what is accepted


def test_latest_due_is_at_or_before_now_and_next_due_strictly_after() -> None:
    assert latest_due("*/5 * * * *", MONDAY_NOON) == datetime(2026, 12, 7, 12, 5, tzinfo=UTC)
    assert latest_due("*/5 * * * *", datetime(2026, 12, 7, 12, 4, 59, tzinfo=UTC)) == \
        datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert latest_due("0 3 * * 1", MONDAY_NOON) == datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    assert next_due("*/5 * * * *", datetime(2026, 12, 7, 12, 5, tzinfo=UTC)) == \
        datetime(2026, 12, 7, 12, 10, tzinfo=UTC)
    assert next_due("0 3 * * 1", MONDAY_NOON) == datetime(2026, 12, 14, 3, 0, tzinfo=UTC)
