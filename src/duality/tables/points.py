"""Points in a topic's history as the command line names them, and how they are shown.

A point is one of:

- an **offset**: ``N`` on a single-partition topic; ``P:N`` per partition otherwise, one for
  every partition (``0:41,1:17``). The point is *after* the record at that offset;
- an **ISO time**: the source's commit time (``source.ts_us``, else ``source.ts_ms``); UTC
  unless the text names a zone (``2024-05-01T12:00:00``, ``2024-05-01 14:00+02:00``,
  ``2024-05-01``). The point is after every change committed at or before it;
- an **LSN**: PostgreSQL's ``X/Y``. The point is after every transaction whose changes all
  lie at or before it.

Parsing is pure; :mod:`duality.tables.cuts` resolves a point against a topic.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

from duality.errors import ConfigError

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
_OFFSETS = re.compile(r"^\d+:\d+(?:,\d+:\d+)*$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class OffsetPoint:
    """After the record at ``offsets[p]`` of each partition (None: the only partition)."""

    offsets: Mapping[int | None, int]
    text: str


@dataclass(frozen=True, slots=True)
class TimePoint:
    """After every change committed at or before ``micros`` (µs since the epoch, UTC)."""

    micros: int
    text: str


@dataclass(frozen=True, slots=True)
class LsnPoint:
    """After every transaction whose changes all lie at or before WAL position ``lsn``."""

    lsn: int
    text: str


Point = OffsetPoint | TimePoint | LsnPoint


def parse_point(text: str, option: str = "--as-of") -> Point:
    """A point from its command-line text (see the module docstring)."""
    raw = text.strip()
    if raw.isdigit():
        return OffsetPoint({None: int(raw)}, raw)
    if _OFFSETS.match(raw):
        offsets: dict[int | None, int] = {}
        for part in raw.split(","):
            partition, _, offset = part.partition(":")
            if int(partition) in offsets:
                raise ConfigError(f"{option} {text!r} names partition {partition} twice")
            offsets[int(partition)] = int(offset)
        return OffsetPoint(offsets, raw)
    match = _LSN.match(raw)
    if match:
        return LsnPoint((int(match.group(1), 16) << 32) | int(match.group(2), 16), raw)
    when = _iso_time(raw)
    if when is None:
        raise ConfigError(
            f"{option} {text!r} is not an offset (N, or P:N for each partition of a topic with "
            f"several), an ISO time (2024-05-01T12:00:00, UTC unless a zone is given) or an "
            f"LSN (0/16B3748)"
        )
    return TimePoint(micros_of(when), raw)


def _iso_time(text: str) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when


def micros_of(when: dt.datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact, no float rounding)."""
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def show_time(micros: int) -> str:
    """``2024-05-01T12:00:00.123456Z`` for µs since the epoch (UTC)."""
    try:
        when = _EPOCH + dt.timedelta(microseconds=micros)
    except OverflowError:
        return f"{micros}µs since 1970"
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def show_lsn(lsn: int) -> str:
    """PostgreSQL's ``X/Y`` form of a WAL position."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def show_when(ts_us: int | None, lsn: int | None, tx: object) -> list[str]:
    """What is known of when a change happened: commit time, LSN, transaction id."""
    parts = []
    if ts_us is not None:
        parts.append(show_time(ts_us))
    if lsn is not None:
        parts.append(f"lsn {show_lsn(lsn)}")
    if tx is not None:
        parts.append(f"txId {tx}")
    return parts


def show_offset(partition: int, offset: int, partitions: int) -> str:
    """``N`` on a single-partition topic, ``P:N`` otherwise."""
    return str(offset) if partitions == 1 else f"{partition}:{offset}"
