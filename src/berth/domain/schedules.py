"""Schedule expressions: when a `schedule` workload fires.

Three forms are accepted:

- five-field cron, `*/5 * * * *` (minute hour day-of-month month day-of-week, UTC);
- `cron(...)` in the EventBridge style, six fields with a year (`cron(0 12 * * ? *)`); `?` means
  "any", days of the week are 1-7 for SUN-SAT (or names), and the year must be `*`;
- `rate(N minutes|hours|days)` (the singular is accepted for 1), at fixed intervals from the
  moment the schedule was created or last fired.

A schedule that missed fires (berth was down) fires once on restart, not once per slot: the
next fire time is always computed from now.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import CroniterBadDateError, croniter

from berth.domain.errors import Invalid

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON_FN = re.compile(r"^cron\((.*)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
MAX_INTERVAL = timedelta(days=366)


@dataclass(frozen=True)
class Schedule:
    cron: str | None
    interval: timedelta | None

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after `moment` (aware UTC in, aware UTC out)."""
        if self.interval is not None:
            return moment + self.interval
        assert self.cron is not None
        result: datetime = croniter(self.cron, moment).get_next(datetime)
        return result


def parse_schedule(expr: str) -> Schedule:
    """Parse a schedule expression or raise `Invalid` naming `schedule_expr`."""
    text = expr.strip()
    rate = _RATE.match(text)
    if rate:
        count, unit = int(rate.group(1)), rate.group(2).rstrip("s")
        if count < 1:
            raise _invalid(expr, "a rate must be at least 1")
        seconds = count * _UNITS[unit]
        if seconds > MAX_INTERVAL.total_seconds():
            raise _invalid(expr, "a rate must be at most 366 days")
        return Schedule(cron=None, interval=timedelta(seconds=seconds))
    if text.startswith("rate("):
        raise _invalid(expr, "use rate(N minutes|hours|days), e.g. rate(5 minutes)")
    fn = _CRON_FN.match(text)
    if fn:
        text = _eventbridge_to_cron(expr, fn.group(1).split())
    fields = text.split()
    if len(fields) != 5:
        raise _invalid(
            expr,
            "expected five cron fields (minute hour day month weekday), cron(...) or rate(...)",
        )
    if not croniter.is_valid(text):
        raise _invalid(expr, "not a valid cron expression")
    schedule = Schedule(cron=text, interval=None)
    try:
        schedule.next_after(datetime.now(UTC))
    except (CroniterBadDateError, ValueError, OverflowError) as exc:
        raise _invalid(expr, "this schedule never fires") from exc
    return schedule


def _eventbridge_to_cron(expr: str, fields: list[str]) -> str:
    if len(fields) not in (5, 6):
        raise _invalid(expr, "cron(...) takes six fields: minute hour day month weekday year")
    if len(fields) == 6:
        if fields[5] not in ("*", "?"):
            raise _invalid(expr, "a year other than * is not supported")
        fields = fields[:5]
    if any(ch in field for field in fields for ch in "LW#"):
        raise _invalid(expr, "L, W and # are not supported")
    fields = ["*" if field == "?" else field for field in fields]
    weekdays = [int(n) for n in re.findall(r"(?<!/)\d+", fields[4])]
    if any(not 1 <= day <= 7 for day in weekdays):
        raise _invalid(expr, "in cron(...) weekdays are 1-7 (SUN-SAT)")
    fields[4] = re.sub(r"(?<!/)\d+", lambda m: str(int(m.group()) - 1), fields[4])
    return " ".join(fields)


def _invalid(expr: str, rule: str) -> Invalid:
    return Invalid(f"schedule_expr: {rule} (got {expr!r})", field="schedule_expr")
