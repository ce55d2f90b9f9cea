"""Five-field cron expressions, evaluated in an IANA time zone, daylight saving included.

``minute hour day-of-month month day-of-week``, each ``*``, a number, a range ``a-b``, a
step ``*/n`` or ``a-b/n``, or a comma list of those; months and weekdays also by name
(``jan``, ``mon``); weekday 0 and 7 are Sunday; ``@hourly``, ``@daily`` (``@midnight``),
``@weekly``, ``@monthly``, ``@yearly`` (``@annually``).  When both day fields are
restricted a day matching either one matches (as cron does).

Daylight saving, as Vixie cron (Debian's cron) does it, so users get what their crontab
gave them:

- a wall time that does not exist (clocks go forward): a *fixed-time* expression (its
  minute and hour fields are not ``*``-based) fires when the gap ends; one whose minute or
  hour is ``*``-based simply has no tick there;
- a wall time that happens twice (clocks go back): a fixed-time expression fires once,
  at the first; a ``*``-based one fires at both.

The module is pure (no clock): callers give the instant to start after, so a test can
walk across a transition with a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

UTC = timezone.utc
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
           "@annually": "0 0 1 1 *"}
_FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
           ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS))
# Walls are scanned this far around a transition: no zone shifts its clock by more.
_MAX_SHIFT = timedelta(hours=3)
_HORIZON_YEARS = 9  # an expression with no match in this many years never fires (Feb 30)


class CronError(ValueError):
    """A cron expression that does not parse, or never fires."""


def _value(text: str, low: int, names: tuple[str, ...], what: str) -> int:
    lowered = text.lower()
    if names and lowered in names:
        return names.index(lowered) + (1 if what == "month" else 0)
    if not text.isdigit():
        raise CronError(f"{what} field: '{text}' is not a number" + (f" or a name ({names[0]}...)" if names else ""))
    return int(text)


def _field(text: str, what: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{what} field: step '{step_text}' must be a whole number above 0")
            step = int(step_text)
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start, end = _value(first, low, names, what), _value(last, low, names, what)
        elif body:
            start = _value(body, low, names, what)
            end = high if slash else start
        else:
            raise CronError(f"{what} field: empty value in '{text}'")
        if not (low <= start <= high and low <= end <= high):
            raise CronError(f"{what} field: '{part}' is outside {low}-{high}")
        if start > end:
            raise CronError(f"{what} field: range '{body}' runs backwards")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month is `*`
    any_weekday: bool  # day of week is `*`
    wildcard: bool  # minute or hour is `*`-based: repeats in a repeated hour, none in a gap

    def day_matches(self, wall: datetime) -> bool:
        """Does the date of ``wall`` match the day fields?"""
        in_month = wall.day in self.days
        in_week = (wall.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week

    def next_wall(self, wall: datetime) -> datetime:
        """The first wall-clock minute at or after ``wall`` (naive) that matches."""
        t = wall.replace(second=0, microsecond=0)
        if t < wall:
            t += timedelta(minutes=1)
        limit = t.year + _HORIZON_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self.day_matches(t):
                t = (t + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if t.hour not in self.hours:
                later = [h for h in self.hours if h > t.hour]
                t = t.replace(hour=min(later), minute=0) if later else (t + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if t.minute not in self.minutes:
                later = [m for m in self.minutes if m > t.minute]
                t = t.replace(minute=min(later)) if later else (t + timedelta(hours=1)).replace(minute=0)
                continue
            return t
        raise CronError(f"'{self.text}' never fires")

    def instants(self, wall: datetime, tz: ZoneInfo) -> list[datetime]:
        """The UTC instants at which a matching wall time fires (0, 1 or 2; see the module)."""
        first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        if first.astimezone(tz).replace(tzinfo=None) == wall:  # it happens twice
            return sorted({first, second}) if self.wildcard else [min(first, second)]
        if self.wildcard:
            return []  # it does not exist; the expression's next match comes soon enough
        return [gap_end(second, first, tz)]

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime:
        """The first instant strictly after ``after`` (aware) at which this fires, in UTC."""
        after = after.astimezone(UTC)
        shifting = offset(tz, after) != offset(tz, after + _MAX_SHIFT)
        wall = after.astimezone(tz).replace(tzinfo=None, fold=0) - (_MAX_SHIFT if shifting else timedelta(0))
        best: datetime | None = None
        stop: datetime | None = None
        while stop is None or wall <= stop:
            wall = self.next_wall(wall)
            if stop is not None and wall > stop:
                break
            for instant in self.instants(wall, tz):
                if instant > after and (best is None or instant < best):
                    best = instant
            if best is not None and stop is None:
                near = offset(tz, best - _MAX_SHIFT) != offset(tz, best + _MAX_SHIFT)
                stop = wall + (_MAX_SHIFT if near else timedelta(0))
            wall += timedelta(minutes=1)
        assert best is not None
        return best


def offset(tz: ZoneInfo, instant: datetime) -> timedelta | None:
    """The zone's UTC offset at an instant (``tz.utcoffset`` would read it as a wall time)."""
    return instant.astimezone(tz).utcoffset()


def gap_end(before: datetime, after: datetime, tz: ZoneInfo) -> datetime:
    """The instant a clock jumps forward, between ``before`` and ``after`` (UTC, one second)."""
    low, high = int(before.timestamp()), int(after.timestamp())
    target = offset(tz, after)
    while high - low > 1:
        middle = (low + high) // 2
        if offset(tz, datetime.fromtimestamp(middle, UTC)) == target:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def parse_cron(text: str) -> Cron:
    """Parse a five-field expression (or a macro); CronError saying what is wrong."""
    if not isinstance(text, str):
        raise CronError("a cron expression is a string of five fields")
    source = text.strip()
    expanded = _MACROS.get(source.lower(), source)
    if expanded.startswith("@"):
        raise CronError(f"unknown macro '{source}' (use one of {', '.join(_MACROS)})")
    parts = expanded.split()
    if len(parts) != 5:
        raise CronError(f"'{source}' has {len(parts)} field{'s' if len(parts) != 1 else ''}; cron needs 5: "
                        "minute hour day-of-month month day-of-week")
    sets = [_field(part, what, low, high, names) for part, (what, low, high, names) in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    cron = Cron(source, sets[0], sets[1], sets[2], sets[3], weekdays,
                any_day=parts[2].startswith("*"), any_weekday=parts[4].startswith("*"),
                wildcard=parts[0].startswith("*") or parts[1].startswith("*"))
    cron.next_wall(datetime(2000, 1, 1))  # raises for an expression that never matches
    return cron
