"""Dates, times, timestamps and intervals: PostgreSQL text → Debezium payload values.

Input is what PostgreSQL prints under ``DateStyle=ISO``, ``TimeZone=UTC`` and
``IntervalStyle=postgres`` (see ``SESSION_SETTINGS``). Facts from Debezium 3.6
(``PostgresValueConverter``, ``JdbcValueConverters``, ``TemporalPrecisionMode``,
``io.debezium.time.*``) and pgjdbc 42.7 (``PGInterval``, column scale):

- ``date``: days since 1970-01-01 (``io.debezium.time.Date``; Connect ``Date`` under
  ``connect``; ``IsoDate`` string under ``isostring``). ``infinity``/``-infinity`` become
  the sentinel dates Debezium's streaming uses (-5877611-06-21 and -22, in that order).
- ``time(p)``: ``adaptive`` gives milliseconds (p ≤ 3) or microseconds; ``24:00:00`` is
  86 400 s. ``timestamp(p)``: ``adaptive`` gives epoch milliseconds (p ≤ 3) or microseconds;
  ``±infinity`` become Debezium's sentinel instants.
- ``timestamptz`` is always a ``ZonedTimestamp`` string in UTC whose fraction has exactly p
  digits (none for p = 0); ``±infinity`` pass through as text. ``timetz`` is always a
  ``ZonedTime`` string shifted to UTC, fraction without trailing zeros.
- ``interval``: ``MicroDuration`` computed in doubles with 30.4375-day months, or an ISO 8601
  string ``PnYnMnDTnHnMnS``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any

from duality.events.calendar import civil_from_days, days_from_civil
from duality.sources.postgres.types_model import FromText, ValueConversionError
from duality.sources.postgres.types_schema import (
    CONNECT_DATE,
    CONNECT_TIME,
    CONNECT_TIMESTAMP,
    DATE,
    INTERVAL,
    ISO_DATE,
    ISO_TIME,
    ISO_TIMESTAMP,
    MICRO_DURATION,
    MICRO_TIME,
    MICRO_TIMESTAMP,
    NANO_TIME,
    NANO_TIMESTAMP,
    TIME,
    TIMESTAMP,
    ZONED_TIME,
    ZONED_TIMESTAMP,
    Schema,
    prim,
)

_US_PER_DAY = 86_400_000_000
_EPOCH_ORDINAL = 719_163  # date(1970, 1, 1).toordinal()
_EPOCH = _dt.datetime(1970, 1, 1)
_ONE_US = _dt.timedelta(microseconds=1)
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
# pgjdbc's PGStatement.DATE_POSITIVE/NEGATIVE_INFINITY, read by Debezium as microseconds.
POSITIVE_INFINITY_MICROS = 9_223_372_036_825_200_000
NEGATIVE_INFINITY_MICROS = -9_223_372_036_832_400_000
# Debezium's stand-ins for date 'infinity' and '-infinity' (LocalDate -5877611-06-21 and -22),
# as epoch days; its snapshot reads dates through java.sql.Date and gets other numbers.
POSITIVE_INFINITY_DAYS = -2_147_472_692
NEGATIVE_INFINITY_DAYS = -2_147_472_691
_DAYS_PER_MONTH_AVG = 365.25 / 12.0


def iso_year(year: int) -> str:
    """A year as java.time's ISO formatters print it: 4+ digits, ``+`` above 9999."""
    if year > 9999:
        return f"+{year}"
    if year < 0:
        return f"-{-year:04d}"
    return f"{year:04d}"


def iso_time(micros_of_day: int) -> str:
    """``ISO_LOCAL_TIME``: seconds always, the fraction without trailing zeros."""
    seconds, fraction = divmod(micros_of_day, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    text = f"{hour:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{fraction:06d}".rstrip("0") if fraction else text


def iso_datetime(micros: int) -> str:
    """``ISO_OFFSET_DATE_TIME`` of a UTC instant given in microseconds."""
    days, micros_of_day = divmod(micros, _US_PER_DAY)
    year, month, day = civil_from_days(days)
    return f"{iso_year(year)}-{month:02d}-{day:02d}T{iso_time(micros_of_day)}Z"


# --- parsing PostgreSQL text ---------------------------------------------------------------


def parse_date(text: bytes) -> int:
    """Epoch day of ``YYYY-MM-DD[ BC]``, or Debezium's infinity sentinels."""
    try:
        return _dt.date.fromisoformat(text.decode("ascii")).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        pass
    if text == b"infinity":
        return POSITIVE_INFINITY_DAYS
    if text == b"-infinity":
        return NEGATIVE_INFINITY_DAYS
    year, month, day = _ymd(text)
    return days_from_civil(year, month, day)


def _ymd(text: bytes) -> tuple[int, int, int]:
    dash = text.index(b"-", 1)
    year = int(text[:dash])
    if text.endswith(b" BC"):
        year = 1 - year
    return year, int(text[dash + 1 : dash + 3]), int(text[dash + 4 : dash + 6])


def parse_time(text: bytes) -> int:
    """Microseconds of ``HH:MM:SS[.ffffff]`` (``24:00:00`` allowed)."""
    micros = ((int(text[0:2]) * 60 + int(text[3:5])) * 60 + int(text[6:8])) * 1_000_000
    if len(text) > 9:
        fraction = text[9:]
        micros += int(fraction) * 10 ** (6 - len(fraction))
    return micros


def parse_timestamp(text: bytes) -> int:
    """Epoch microseconds of ``YYYY-MM-DD HH:MM:SS[.ffffff][ BC]`` or ``±infinity``."""
    try:
        return (_dt.datetime.fromisoformat(text.decode("ascii")) - _EPOCH) // _ONE_US
    except ValueError:
        pass
    if text == b"infinity":
        return POSITIVE_INFINITY_MICROS
    if text == b"-infinity":
        return NEGATIVE_INFINITY_MICROS
    year, month, day = _ymd(text)
    space = text.index(b" ", 8)
    clock = text[space + 1 :].removesuffix(b" BC")
    return days_from_civil(year, month, day) * _US_PER_DAY + parse_time(clock)


# --- codecs --------------------------------------------------------------------------------


def temporal_precision(type_modifier: int) -> int:
    """Fractional-second digits as pgjdbc reports time/timestamp columns (6 when unset)."""
    return 6 if type_modifier == -1 else type_modifier


# What java.sql.Date makes of 'infinity' and '-infinity' in a UTC JVM, as local dates.
_JDBC_INFINITY_DATES = {b"infinity": (292278994, 8, 16), b"-infinity": (292269055, 12, 2)}


def jdbc_date_parts(text: bytes) -> tuple[int, int, int]:
    """A date as Debezium sees it inside an array, read through ``java.sql.Date``: the era
    is dropped (``0044-03-15 BC`` reads as 44 AD) and the infinities become far dates."""
    special = _JDBC_INFINITY_DATES.get(text)
    if special is not None:
        return special
    dash = text.index(b"-", 1)
    return int(text[:dash]), int(text[dash + 1 : dash + 3]), int(text[dash + 4 : dash + 6])


def _int32(value: int) -> int:
    return (value + 2**31) % 2**32 - 2**31


def jdbc_date_codec(mode: str, optional: bool) -> tuple[Schema, FromText]:
    """date[] elements (see :func:`jdbc_date_parts`); the epoch day wraps like Java's int."""
    schema = date_codec(mode, optional)[0]
    if mode == "isostring":

        def iso(text: bytes) -> str:
            year, month, day = jdbc_date_parts(text)
            return f"{iso_year(year)}-{month:02d}-{day:02d}Z"

        return schema, iso
    return schema, lambda text: _int32(days_from_civil(*jdbc_date_parts(text)))


def date_codec(mode: str, optional: bool) -> tuple[Schema, FromText]:
    if mode == "isostring":
        return prim("string", optional, ISO_DATE), _iso_date
    name = CONNECT_DATE if mode == "connect" else DATE
    return prim("int32", optional, name), parse_date


def _iso_date(text: bytes) -> str:
    if len(text) == 10:
        return text.decode("ascii") + "Z"
    if text == b"infinity":
        return "-5877611-06-21Z"
    if text == b"-infinity":
        return "-5877611-06-22Z"
    year, month, day = _ymd(text)
    return f"{iso_year(year)}-{month:02d}-{day:02d}Z"


def _iso_time_of(text: bytes) -> str:
    # IsoTime adds the duration to midnight, so 24:00:00 wraps to 00:00:00.
    return iso_time(parse_time(text) % _US_PER_DAY) + "Z"


def time_codec(precision: int, mode: str, optional: bool) -> tuple[Schema, FromText]:
    if mode == "isostring":
        return prim("string", optional, ISO_TIME), _iso_time_of
    if mode == "connect" or (mode == "adaptive" and precision <= 3):
        name = CONNECT_TIME if mode == "connect" else TIME
        return prim("int32", optional, name), lambda text: parse_time(text) // 1000
    if mode == "nanoseconds":
        return prim("int64", optional, NANO_TIME), lambda text: parse_time(text) * 1000
    return prim("int64", optional, MICRO_TIME), parse_time


def timestamp_codec(
    precision: int,
    mode: str,
    optional: bool,
    column: str = "",
    parse: Callable[[bytes], int] = parse_timestamp,
) -> tuple[Schema, FromText]:
    """timestamp(p) under ``mode``; ``parse`` gives epoch microseconds of the text."""
    if mode == "isostring":
        return prim("string", optional, ISO_TIMESTAMP), lambda t: iso_datetime(parse(t))
    adaptive = mode in ("adaptive", "adaptive_time_microseconds")
    if mode == "connect" or (adaptive and precision <= 3):
        name = CONNECT_TIMESTAMP if mode == "connect" else TIMESTAMP
        return prim("int64", optional, name), lambda text: parse(text) // 1000
    if mode == "nanoseconds":
        return prim("int64", optional, NANO_TIMESTAMP), _epoch_nanos(column, parse)
    if parse is parse_timestamp:
        return prim("int64", optional, MICRO_TIMESTAMP), _epoch_micros
    return prim("int64", optional, MICRO_TIMESTAMP), lambda text: java_micros(parse(text))


def _epoch_micros(text: bytes) -> int:
    try:
        return (_dt.datetime.fromisoformat(text.decode("ascii")) - _EPOCH) // _ONE_US
    except ValueError:
        return java_micros(parse_timestamp(text))


def java_micros(micros: int) -> int:
    """Epoch microseconds as Debezium computes them: the seconds part saturates at the long
    range and adding the fraction then wraps (only years past 294247 get there)."""
    if _LONG_MIN <= micros <= _LONG_MAX:
        return micros
    seconds, fraction = divmod(micros, 1_000_000)
    saturated = max(_LONG_MIN, min(_LONG_MAX, seconds * 1_000_000))
    return (saturated + fraction + 2**63) % 2**64 - 2**63


def _epoch_nanos(column: str, parse: Callable[[bytes], int]) -> FromText:
    def convert(text: bytes) -> int:
        micros = parse(text)
        if micros == POSITIVE_INFINITY_MICROS:
            return _LONG_MAX
        if micros == NEGATIVE_INFINITY_MICROS:
            return _LONG_MIN
        days, micros_of_day = divmod(micros, _US_PER_DAY)
        # Debezium multiplies the day first, so the first minutes of 1677-09-21 overflow too.
        day_nanos = days * _US_PER_DAY * 1000
        nanos = day_nanos + micros_of_day * 1000
        if day_nanos >= _LONG_MIN and nanos <= _LONG_MAX:
            return nanos
        raise ValueConversionError(
            f"column {column!r}: timestamp {text.decode()} is outside the range of "
            f"time.precision.mode=nanoseconds (1677-09-21 to 2262-04-11); use microseconds "
            f"or isostring"
        )

    return convert


def julian_days(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a date on the Julian calendar (astronomical year)."""
    a = (14 - month) // 12
    y = year + 4800 - a
    m = month + 12 * a - 3
    return day + (153 * m + 2) // 5 + 365 * y + y // 4 - 32083 - 2_440_588


def parse_jdbc_timestamp(text: bytes) -> int:
    """A timestamp[] element as Debezium reads it through ``java.sql.Timestamp``: dates
    before the Gregorian reform (1582-10-15) are taken as Julian calendar dates."""
    if (text[:4] > b"1582" and text[4:5] == b"-") or text in (b"infinity", b"-infinity"):
        return parse_timestamp(text)
    year, month, day = _ymd(text)
    if (year, month, day) >= (1582, 10, 15):
        return parse_timestamp(text)
    space = text.index(b" ", 8)
    clock = text[space + 1 :].removesuffix(b" BC")
    return julian_days(year, month, day) * _US_PER_DAY + parse_time(clock)


def timestamptz_codec(precision: int, optional: bool) -> tuple[Schema, FromText]:
    """ZonedTimestamp: the UTC text rewritten as ISO 8601 with ``precision`` fraction digits."""
    width = precision if 0 < precision <= 9 else 0
    pad = "0" * width

    def convert(text: bytes) -> str:
        if width == 6 and len(text) == 29 and text[10] == 32 and text[-3:] == b"+00":
            # hot path: a full microsecond fraction, the common case
            return (text[:10] + b"T" + text[11:26] + b"Z").decode("ascii")
        if len(text) >= 22 and text[10] == 32 and text[-3] == 43 and text[-2:] == b"00":
            # fast path: 'YYYY-MM-DD HH:MM:SS[.f]+00' (4-digit AD year, UTC session)
            head = text[:10].decode("ascii") + "T" + text[11:19].decode("ascii")
            fraction = text[20:-3].decode("ascii") if text[19] == 46 else ""
            if width:
                return f"{head}.{(fraction + pad)[:width]}Z"
            return f"{head}.{fraction}Z" if fraction else head + "Z"
        return _zoned_slow(text, width)

    return prim("string", optional, ZONED_TIMESTAMP), convert


def _zoned_slow(text: bytes, width: int) -> str:
    if text in (b"infinity", b"-infinity"):
        return text.decode("ascii")
    bc = text.endswith(b" BC")
    body = text.removesuffix(b" BC")
    sign_at = max(body.rfind(b"+"), body.rfind(b"-"))
    offset_parts = [int(p) for p in body[sign_at + 1 :].split(b":")]
    offset = sum(v * u for v, u in zip(offset_parts, (3600, 60, 1), strict=False))
    if body[sign_at] == 45:
        offset = -offset
    local = body[:sign_at] + (b" BC" if bc else b"")
    micros = parse_timestamp(local) - offset * 1_000_000
    text_out = iso_datetime(micros)
    if not width:
        return text_out
    head, _, rest = text_out[:-1].partition(".")
    return f"{head}.{(rest + '0' * width)[:width]}Z"


def timetz_codec(optional: bool) -> tuple[Schema, FromText]:
    return prim("string", optional, ZONED_TIME), timetz_iso


def timetz_iso(text: bytes) -> str:
    """``HH:MM:SS[.ffffff]±HH[:MM[:SS]]`` shifted to UTC, as ``ISO_OFFSET_TIME`` prints it.

    Offsets are whole seconds, so the fraction is carried over as text.
    """
    sign_at = max(text.rfind(b"+"), text.rfind(b"-"))
    offset = _offset_seconds(text, sign_at)
    seconds = (int(text[0:2]) * 3600 + int(text[3:5]) * 60 + int(text[6:8]) - offset) % 86400
    hour, rest = divmod(seconds, 3600)
    minute, second = divmod(rest, 60)
    # (an empty slice spelled empty: compiled, text[9:8] is not b"")
    fraction = text[9:sign_at].rstrip(b"0") if sign_at > 9 else b""
    if fraction:
        return f"{hour:02d}:{minute:02d}:{second:02d}.{fraction.decode('ascii')}Z"
    return f"{hour:02d}:{minute:02d}:{second:02d}Z"


def _offset_seconds(text: bytes, sign_at: int) -> int:
    part = text[sign_at + 1 :]
    offset = int(part[0:2]) * 3600
    if len(part) > 2:
        offset += int(part[3:5]) * 60
        if len(part) > 5:
            offset += int(part[6:8])
    return -offset if text[sign_at] == 45 else offset  # 45: '-'


# --- interval ------------------------------------------------------------------------------


def parse_interval(text: bytes) -> tuple[int, int, int, int, int, int, int]:
    """(years, months, days, hours, minutes, whole seconds, microseconds) of a
    ``postgres``-style interval, signed per field as pgjdbc's ``PGInterval`` reads it."""
    years = months = days = hours = minutes = seconds = micros = 0
    tokens = text.split()
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if b":" in token:
            hours, minutes, seconds, micros = _clock(token)
            index += 1
            continue
        unit = tokens[index + 1][0] if index + 1 < len(tokens) else 0
        if unit == 121:  # year(s)
            years = int(token)
        elif unit == 109:  # mon(s)
            months = int(token)
        elif unit == 100:  # day(s)
            days = int(token)
        index += 2
    return years, months, days, hours, minutes, seconds, micros


def _clock(token: bytes) -> tuple[int, int, int, int]:
    negative = token[:1] == b"-"
    hours, minutes, rest = token.lstrip(b"+-").split(b":")
    whole, _, fraction = rest.partition(b".")
    micros = int(fraction.ljust(6, b"0")) if fraction else 0
    values = int(hours), int(minutes), int(whole), micros
    if negative:
        return -values[0], -values[1], -values[2], -values[3]
    return values


def interval_micros(text: bytes) -> int:
    """``MicroDuration.durationMicros``: double arithmetic, months of 30.4375 days."""
    years, months, days, hours, minutes, whole, micros = parse_interval(text)
    seconds = whole + micros / 1_000_000
    number_of_days = (years * 12 + months) * _DAYS_PER_MONTH_AVG + days
    number_of_seconds = ((number_of_days * 24 + hours) * 60 + minutes) * 60 + seconds
    # Java's (long) cast saturates (178 million years overflow it).
    return max(_LONG_MIN, min(_LONG_MAX, int(number_of_seconds * 1e6)))


def interval_iso(text: bytes) -> str:
    """``Interval.toIsoString``: ``P1Y2M3DT4H5M6.789S``, seconds without trailing zeros."""
    years, months, days, hours, minutes, whole, micros = parse_interval(text)
    sign = "-" if whole < 0 or micros < 0 else ""
    whole, micros = abs(whole), abs(micros)
    seconds = f"{sign}{whole}.{micros:06d}".rstrip("0") if micros else f"{sign}{whole}"
    return f"P{years}Y{months}M{days}DT{hours}H{minutes}M{seconds}S"


def interval_codec(mode: str, optional: bool) -> tuple[Schema, Callable[[bytes], Any]]:
    if mode == "string":
        return prim("string", optional, INTERVAL), interval_iso
    return prim("int64", optional, MICRO_DURATION), interval_micros
