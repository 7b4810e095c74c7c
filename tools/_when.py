"""Points in time and durations as the command line spells them.

A WHEN is one of

* an RFC 3339 time **with** a zone: ``2024-05-01T10:42:00Z``,
  ``2024-05-01 10:42+02:00`` (a time without a zone is refused, never guessed);
* ``seq:N``: the point just after the record with seq N;
* a relative time: ``now``, ``90s ago``, ``30m ago``, ``1h30m ago``, ``7d ago``, ``2w ago``.

A DURATION (``compact --retain``) is ``90s``, ``30m``, ``12h``, ``7d``, ``2w`` or a sum
such as ``1h30m`` or ``1d 12h``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["UsageError", "parse_duration", "parse_when", "when_help"]


class UsageError(Exception):
    """The command line is wrong (exit code 2); the message says how to fix it."""


_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 7 * 86400,
    "week": 7 * 86400,
    "weeks": 7 * 86400,
}
# One or more number-unit parts: 90s, 1.5h, 1h30m, 1d 12h.
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)\s*")
_DURATION = re.compile(r"^\s*((?:\d+(?:\.\d+)?\s*[a-z]+\s*)+)$")
_RELATIVE = re.compile(r"^\s*((?:\d+(?:\.\d+)?\s*[a-z]+\s*)+?)\s+ago\s*$")
_SEQ = re.compile(r"^\s*seq:(\d+)\s*$")

when_help = (
    "WHEN is an RFC 3339 time with a zone (2024-05-01T10:42:00Z, 2024-05-01 10:42+02:00), "
    "seq:N (just after the record with seq N), or a relative time (now, 30m ago, 1h30m ago, 7d ago)"
)


def parse_duration(text: str) -> timedelta:
    """``7d`` -> 7 days; raises :class:`UsageError` for anything else."""
    m = _DURATION.match(text.lower())
    seconds = _seconds(m.group(1)) if m else None
    if seconds is None:
        raise UsageError(
            f"bad duration {text!r}: use numbers and units, e.g. 90s, 30m, 1h30m, 12h, 7d"
        )
    return timedelta(seconds=seconds)


def _seconds(parts: str) -> float | None:
    """The seconds ``1h30m`` (one or more number-unit parts) stands for; None if
    a unit is unknown."""
    total = 0.0
    for number, unit in _PART.findall(parts):
        if unit not in _UNITS:
            return None
        total += float(number) * _UNITS[unit]
    return total


def parse_when(text: str, now: datetime | None = None) -> datetime | int:
    """A WHEN as an aware datetime or a seq (int); :class:`UsageError` otherwise."""
    now = now or datetime.now(UTC)
    lowered = text.strip().lower()
    m = _SEQ.match(lowered)
    if m:
        return int(m.group(1))
    if lowered == "now":
        return now
    m = _RELATIVE.match(lowered)
    if m:
        seconds = _seconds(m.group(1))
        if seconds is None:
            units = [u for _, u in _PART.findall(m.group(1)) if u not in _UNITS]
            raise UsageError(f"bad time {text!r}: unknown unit {units[0]!r} (use s, m, h, d, w)")
        return now - timedelta(seconds=seconds)
    raw = text.strip()
    if raw.endswith(("z", "Z")):
        raw = raw[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise UsageError(f"bad time {text!r}: {when_help}") from None
    if ":" not in raw.split("+")[0]:
        day = when.date().isoformat()
        raise UsageError(
            f"time {text!r} has no time of day and zone: give both (e.g. {day}T00:00Z for "
            f"UTC or {day}T00:00+02:00), or use seq:N or a relative time such as '2h ago'"
        )
    if when.tzinfo is None or when.utcoffset() is None:
        raise UsageError(
            f"time {text!r} has no zone: add one (e.g. {raw}Z for UTC or {raw}+02:00), "
            "or use seq:N or a relative time such as '2h ago'"
        )
    return when
