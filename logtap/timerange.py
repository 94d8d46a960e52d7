"""``--since`` / ``--until`` parsing and the hour folders a time range has to read.

Bedrock writes each record under ``.../YYYY/MM/DD/HH/`` (UTC) but may deliver it into the next
hour's folder, so the folders of the range plus one hour of slack at each end are read; the exact
``timestamp`` filter (since inclusive, until exclusive) is applied to the records themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from logtap.errors import LogtapError

_RELATIVE = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
SLACK = timedelta(hours=1)


class TimeError(LogtapError, ValueError):
    """A --since/--until value that is neither ISO 8601 nor a relative duration."""


def parse_time(value: str | datetime | date, *, now: datetime | None = None, option: str = "--since") -> datetime:
    """An aware UTC datetime from ISO 8601 (UTC unless a zone is given) or ``30m`` / ``12h`` / ``7d``."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    rel = _RELATIVE.match(value)
    if rel:
        now = now or datetime.now(timezone.utc)
        return now - timedelta(**{_UNITS[rel.group(2)]: int(rel.group(1))})
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise TimeError(f"{option} {value!r} is not a time: use an ISO 8601 date or date-time such as "
                        "2025-06-01 or 2025-06-01T12:00:00Z, or a relative 30m / 12h / 7d") from None
    return parse_time(parsed)


@dataclass(frozen=True)
class TimeRange:
    """``since <= timestamp < until``; either end may be open."""

    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(cls, since: str | datetime | date | None, until: str | datetime | date | None,
              *, now: datetime | None = None) -> TimeRange:
        now = now or datetime.now(timezone.utc)
        rng = cls(parse_time(since, now=now) if since is not None else None,
                  parse_time(until, now=now, option="--until") if until is not None else None)
        if rng.since and rng.until and rng.since >= rng.until:
            raise TimeError(f"--since {rng.since.isoformat()} is not before --until {rng.until.isoformat()}; "
                            "swap them or widen the range")
        return rng

    @property
    def bounded(self) -> bool:
        return self.since is not None or self.until is not None

    def folder_span(self, now: datetime | None = None) -> tuple[datetime, datetime] | None:
        """First and last hour folder to read (inclusive, slack included), or None if unbounded below."""
        if self.since is None:
            return None
        start = self.since.replace(minute=0, second=0, microsecond=0) - SLACK
        end_t = self.until or ((now or datetime.now(timezone.utc)) + SLACK)
        end = (end_t - timedelta(microseconds=1)).replace(minute=0, second=0, microsecond=0) + SLACK
        return start, end

    def hour_in_range(self, hour: datetime) -> bool:
        """Whether the folder of ``hour`` (an hour start, UTC) must be read."""
        if self.since is not None and hour < self.since.replace(minute=0, second=0, microsecond=0) - SLACK:
            return False
        return not (self.until is not None and hour > self.until - timedelta(microseconds=1) + SLACK)

    def prefix_may_match(self, parts: tuple[int, ...]) -> bool:
        """Whether a folder ``YYYY[/MM[/DD[/HH]]]`` (given as ints) can hold hours in range."""
        if not self.bounded or not parts:
            return True
        try:
            lo = datetime(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1,
                          parts[3] if len(parts) > 3 else 0, tzinfo=timezone.utc)
        except ValueError:
            return True
        if len(parts) == 1:
            hi = lo.replace(year=lo.year + 1)
        elif len(parts) == 2:
            hi = (lo.replace(day=28) + timedelta(days=4)).replace(day=1)
        elif len(parts) == 3:
            hi = lo + timedelta(days=1)
        else:
            hi = lo + timedelta(hours=1)
        last_hour = hi - timedelta(hours=1)
        if self.since is not None and last_hour < self.since.replace(minute=0, second=0, microsecond=0) - SLACK:
            return False
        return not (self.until is not None and lo > self.until - timedelta(microseconds=1) + SLACK)

    def hour_prefixes(self, now: datetime | None = None) -> list[str]:
        """``YYYY/MM/DD/`` (whole days) and ``YYYY/MM/DD/HH/`` prefixes covering the folder span."""
        span = self.folder_span(now)
        if span is None:
            return []
        start, end = span
        hours: list[datetime] = []
        t = start
        while t <= end:
            hours.append(t)
            t += timedelta(hours=1)
        out: list[str] = []
        i = 0
        while i < len(hours):
            h = hours[i]
            if h.hour == 0 and i + 23 < len(hours) and hours[i + 23].date() == h.date():
                out.append(h.strftime("%Y/%m/%d/"))
                i += 24
            else:
                out.append(h.strftime("%Y/%m/%d/%H/"))
                i += 1
        return out
