"""Schedule expressions: the three accepted forms and clear refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from berth.domain.errors import Invalid
from berth.domain.schedules import parse_schedule

NOON = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("*/5 * * * *", datetime(2026, 3, 2, 12, 5, tzinfo=UTC)),
        ("0 13 * * *", datetime(2026, 3, 2, 13, 0, tzinfo=UTC)),
        ("cron(0 12 * * ? *)", datetime(2026, 3, 3, 12, 0, tzinfo=UTC)),
        ("cron(15 10 ? * 2 *)", datetime(2026, 3, 9, 10, 15, tzinfo=UTC)),  # 2 = MON
        ("cron(0 9 ? * MON-FRI *)", datetime(2026, 3, 3, 9, 0, tzinfo=UTC)),
        ("rate(5 minutes)", NOON + timedelta(minutes=5)),
        ("rate(1 hour)", NOON + timedelta(hours=1)),
        ("rate(2 days)", NOON + timedelta(days=2)),
    ],
)
def test_each_form_gives_the_next_fire_time(expr: str, expected: datetime) -> None:
    assert parse_schedule(expr).next_after(NOON) == expected


@pytest.mark.parametrize(
    ("expr", "hint"),
    [
        ("61 * * * *", "not a valid cron"),
        ("* * * *", "five cron fields"),
        ("every day", "five cron fields"),
        ("rate(0 minutes)", "at least 1"),
        ("rate(5 weeks)", "rate(N minutes|hours|days)"),
        ("cron(0 12 * * ? 2027)", "year"),
        ("cron(0 12 L * ? *)", "not supported"),
        ("cron(0 12 *)", "six fields"),
        ("cron(0 12 ? * 8 *)", "weekdays are 1-7"),
        ("0 0 31 2 *", "never fires"),
        ("rate(10000000 days)", "at most 366 days"),
    ],
)
def test_bad_expressions_are_refused_naming_the_field(expr: str, hint: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_schedule(expr)
    assert caught.value.field == "schedule_expr"
    assert hint in caught.value.message
    assert caught.value.message.startswith("schedule_expr:")
