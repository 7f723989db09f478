"""Debezium payload values decoded back into what a table stores, and stored values
rendered again (as JSON-ready values and as Python values).

Everything here is a small pure function. A decoder takes a non-null payload value (as
Kafka Connect's JSON converter writes it) and returns the stored value; a renderer takes
a non-null stored value. What is stored, per logical type (see :mod:`.types`):

- decimals: an SQLite number when it holds the value exactly (integers that fit 64 bits,
  or at most 15 significant digits), else the exact decimal text;
- dates, times and timestamps: ISO-8601 text with a fixed number of fraction digits per
  unit, so text order is time order; PostgreSQL's ``infinity``/``-infinity`` as those words;
- durations (``MicroDuration``): integer microseconds;
- bytes: a BLOB.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from duality.events.calendar import civil_from_days

_EPOCH_ORDINAL: Final = 719_163  # date(1970, 1, 1).toordinal()
_MAX_ORDINAL: Final = 3_652_059  # date(9999, 12, 31).toordinal()
_US_PER_DAY: Final = 86_400_000_000
_EXACT_DIGITS: Final = 10**15
_INT64: Final = 2**63
# Debezium's stand-ins for PostgreSQL's date/timestamp 'infinity' and '-infinity'.
_INFINITE_DAYS: Final = {-2_147_472_692: "infinity", -2_147_472_691: "-infinity"}
_INFINITE_MICROS: Final = {
    9_223_372_036_825_200_000: "infinity",
    -9_223_372_036_832_400_000: "-infinity",
}
_SPECIAL_DECIMALS: Final = {
    "NAN": "NaN",
    "NaN": "NaN",
    "POSITIVE_INFINITY": "Infinity",
    "Infinity": "Infinity",
    "NEGATIVE_INFINITY": "-Infinity",
    "-Infinity": "-Infinity",
}
_FLOAT_SPECIALS: Final = {"Infinity": float("inf"), "-Infinity": float("-inf")}
_POWERS: Final = [10**n for n in range(40)]
_CACHE_LIMIT: Final = 100_000


# --- numbers ---------------------------------------------------------------------------


def store_int(value: Any) -> Any:
    """Integers beyond SQLite's 64 bits are kept as their decimal text."""
    if type(value) is int and not -_INT64 <= value < _INT64:
        return str(value)
    return value


def store_float(value: Any) -> Any:
    """Jackson writes NaN and the infinities as strings; SQLite holds infinities as
    numbers but turns NaN into NULL, so NaN is kept as the text ``NaN``."""
    if type(value) is str:
        return _FLOAT_SPECIALS.get(value, value)
    return value


def unscaled(encoded: str) -> int:
    """The unscaled value of a Connect ``Decimal``: base64 of its big-endian two's
    complement."""
    return int.from_bytes(binascii.a2b_base64(encoded), "big", signed=True)


def unscaled_decimal(encoded: str, scale: int) -> Any:
    """A Connect ``Decimal`` as stored (see :func:`store_decimal`)."""
    value = unscaled(encoded)
    if scale > 0 and -_EXACT_DIGITS < value < _EXACT_DIGITS:
        return value / _POWERS[scale] if scale < len(_POWERS) else value / 10**scale
    return store_decimal(value, scale)


def store_decimal(unscaled: int, scale: int) -> Any:
    """unscaled * 10^-scale as stored: a number when exact, else the exact text."""
    if scale <= 0:
        return store_int(unscaled * 10**-scale)
    if -_EXACT_DIGITS < unscaled < _EXACT_DIGITS:
        return unscaled / 10**scale
    return decimal_str(unscaled, scale)


def decimal_str(unscaled: int, scale: int) -> str:
    """unscaled * 10^-scale as exact decimal text with ``scale`` fraction digits."""
    if scale <= 0:
        return str(unscaled * 10**-scale)
    text = str(abs(unscaled)).rjust(scale + 1, "0")
    sign = "-" if unscaled < 0 else ""
    return f"{sign}{text[:-scale]}.{text[-scale:]}"


def decimal_codec(scale: int) -> Callable[[Any], Any]:
    """The decoder of a Connect ``Decimal`` of ``scale`` into what a table stores
    (:func:`unscaled_decimal`); a value written as a number or as text
    (``decimal.handling.mode``) goes through :func:`decimal_text`."""

    def decode(value: Any) -> Any:
        return unscaled_decimal(value, scale) if type(value) is str else decimal_text(value)

    return decode


def decimal_text_codec(scale: int) -> Callable[[Any], Any]:
    """The decoder of a Connect ``Decimal`` of ``scale`` into its exact decimal text
    (what a SQL target reads back exactly); a value not written as base64 (a number)
    is left as it is."""

    def decode(value: Any) -> Any:
        return decimal_str(unscaled(value), scale) if type(value) is str else value

    return decode


def variable_decimal(value: Any) -> Any:
    """``VariableScaleDecimal``: ``{"scale": s, "value": base64}``."""
    return unscaled_decimal(value["value"], int(value["scale"]))


def decimal_text(value: Any) -> Any:
    """A decimal written as text (``decimal.handling.mode=string``, money) or as a number."""
    if type(value) is not str:
        return value
    special = _SPECIAL_DECIMALS.get(value)
    if special is not None:
        return _FLOAT_SPECIALS.get(special, special)
    try:
        number = Decimal(value)
    except InvalidOperation:
        return value
    sign, digits, exponent = number.as_tuple()
    unscaled = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    return store_decimal(unscaled, -int(exponent))


def render_decimal(stored: Any, scale: int | None) -> str:
    """A stored decimal as exact text, with ``scale`` fraction digits when known."""
    if type(stored) is str:
        return stored
    if type(stored) is float:
        if stored - stored != 0:  # NaN or an infinity
            return "Infinity" if stored > 0 else "-Infinity" if stored < 0 else "NaN"
        if scale is not None:
            return f"{stored:.{scale}f}"
        return format(Decimal(repr(stored)), "f")
    if scale:
        return f"{stored}.{'0' * scale}"
    return str(stored)


# --- dates and times -------------------------------------------------------------------


_DAYS_SEEN: dict[int, str] = {}
_HMS: list[str] = []


def cached_day(days: int) -> str:
    """:func:`iso_day`, remembered (timestamps of a stream share few days)."""
    text = _DAYS_SEEN.get(days)
    if text is None:
        if len(_DAYS_SEEN) > _CACHE_LIMIT:
            _DAYS_SEEN.clear()
        text = _DAYS_SEEN[days] = iso_day(days)
    return text


def _hms() -> list[str]:
    """``HH:MM:SS`` of every second of a day (built on first use)."""
    if not _HMS:
        _HMS.extend(f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60)
                    for s in range(60))
    return _HMS


def iso_day(days: int) -> str:
    """``YYYY-MM-DD`` of an epoch day (ISO years: ``-0043`` is 44 BC, ``+10000``)."""
    if 0 < days + _EPOCH_ORDINAL <= _MAX_ORDINAL:
        return dt.date.fromordinal(days + _EPOCH_ORDINAL).isoformat()
    year, month, day = civil_from_days(days)
    text = f"+{year}" if year > 9999 else f"-{-year:04d}" if year < 0 else f"{year:04d}"
    return f"{text}-{month:02d}-{day:02d}"


def date_from_days(days: int) -> str:
    return _INFINITE_DAYS.get(days) or iso_day(days)


def clock(units: int, digits: int) -> str:
    """``HH:MM:SS.fff…`` of a time of day in units of 10^-digits seconds (24:00:00 kept)."""
    seconds, fraction = divmod(units, _POWERS[digits])
    if 0 <= seconds < 86_400:
        return f"{(_HMS or _hms())[seconds]}.{fraction:0{digits}d}"
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02d}:{minute:02d}:{second:02d}.{fraction:0{digits}d}"


def infinite_timestamps(digits: int) -> dict[int, str]:
    """Debezium's stand-ins for a timestamp's ``infinity``/``-infinity`` in epoch units
    of 10^-digits seconds → those words."""
    specials = {
        (m // 10 ** (6 - digits) if digits <= 6 else m * 10 ** (digits - 6)): text
        for m, text in _INFINITE_MICROS.items()
    }
    if digits == 9:
        specials.update({2**63 - 1: "infinity", -(2**63): "-infinity"})
    return specials


def timestamp_codec(digits: int) -> Callable[[int], str]:
    """ISO ``YYYY-MM-DDTHH:MM:SS.fff…`` of epoch time in units of 10^-digits seconds;
    Debezium's stand-ins for ``infinity``/``-infinity`` become those words."""
    scale = _POWERS[digits]
    per_day = 86_400 * scale
    specials = infinite_timestamps(digits)
    template = f"%sT%s.%0{digits}d"
    days_seen = _DAYS_SEEN

    def convert(units: int) -> str:
        if units in specials:
            return specials[units]
        days, rest = divmod(units, per_day)
        seconds, fraction = divmod(rest, scale)
        day = days_seen.get(days) or cached_day(days)
        return template % (day, (_HMS or _hms())[seconds], fraction)

    return convert


def timestamp(units: int, digits: int) -> str:
    return _TIMESTAMPS[digits](units)


_TIMESTAMPS = {digits: timestamp_codec(digits) for digits in (3, 6, 9)}


def duration_iso(micros: int) -> str:
    """ISO-8601 duration of microseconds: days, hours, minutes and seconds (``P1DT2H3M4.5S``)."""
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    text = f"{second}.{fraction:06d}".rstrip("0").rstrip(".")
    return f"{sign}P{days}DT{hour}H{minute}M{text}S"


def python_date(stored: str) -> Any:
    try:
        return dt.date.fromisoformat(stored)
    except ValueError:
        return stored


def python_time(stored: str) -> Any:
    try:
        return dt.time.fromisoformat(stored[:15])
    except ValueError:
        return stored


def python_timestamp(stored: str) -> Any:
    try:
        return dt.datetime.fromisoformat(stored[:26] if stored[-1:] != "Z" else stored)
    except ValueError:
        return stored


def python_duration(stored: int) -> Any:
    try:
        return dt.timedelta(microseconds=stored)
    except OverflowError:
        return stored


# --- bytes -----------------------------------------------------------------------------


def from_base64(value: Any) -> Any:
    if type(value) is not str:
        return value
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        return value


def to_base64(stored: Any) -> Any:
    if isinstance(stored, bytes):
        return base64.b64encode(stored).decode("ascii")
    return stored
