"""The data the PostgreSQL value converters are built from: value-mode settings, resolved
types, column codecs, and the session settings that fix the text form of every value.

Everything here is pure. :mod:`duality.sources.postgres.types` is the entry point that
turns a :class:`PgType` plus a column's type modifier into a :class:`ColumnCodec`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from duality.errors import ConfigError

#: The GUCs every connection duality opens sets, so the text form of a value never depends
#: on server, database or role defaults. All are user-settable, so a non-superuser can set
#: them in a normal session and, through the ``options`` startup parameter, in a replication
#: (walsender) connection, whose output functions then use them for pgoutput's text tuples.
#:
#: They are the settings the PostgreSQL JDBC driver (and therefore Debezium) ends up with on
#: a default server, so unknown types passed through as text read the same as Debezium's:
#:
#: - ``TimeZone=UTC``: timestamptz and tstzrange text is UTC (``+00``); Debezium's JVM zone is
#:   what pgjdbc sends, and Debezium's own conversions are UTC.
#: - ``DateStyle=ISO``: ``YYYY-MM-DD HH:MM:SS[.ffffff]`` with a trailing `` BC``; pgjdbc sets it.
#: - ``IntervalStyle=postgres``: ``1 year 2 mons 3 days 04:05:06.789``, the server default
#:   Debezium parses (through pgjdbc's ``PGInterval``).
#: - ``extra_float_digits=3``: shortest exact float output (PostgreSQL 12+); pgjdbc sets it.
#: - ``bytea_output=hex``: ``\\x0a0b``, the server default.
#: - ``lc_monetary=C``: money as ``-$1,234.56`` with two fraction digits; exists everywhere.
#: - ``client_encoding=UTF8``: text arrives as UTF-8 whatever the database encoding.
SESSION_SETTINGS: dict[str, str] = {
    "TimeZone": "UTC",
    "DateStyle": "ISO",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "lc_monetary": "C",
    "client_encoding": "UTF8",
}


def pinned_options() -> str:
    """The libpq ``options`` value that sets :data:`SESSION_SETTINGS` at connection start,
    e.g. ``psycopg.connect(dsn, options=pinned_options())``. It works for replication
    (walsender) connections too, whose pgoutput text output then follows the same settings.
    """
    return " ".join(f"-c {name}={value}" for name, value in SESSION_SETTINGS.items())


_DECIMAL_MODES = ("precise", "string", "double")
_TIME_MODES = (
    "adaptive",
    "adaptive_time_microseconds",
    "connect",
    "isostring",
    "microseconds",
    "nanoseconds",
)
_BINARY_MODES = ("bytes", "base64", "base64-url-safe", "hex")
_INTERVAL_MODES = ("numeric", "string")
_HSTORE_MODES = ("json", "map")
_FAILURE_MODES = ("fail", "warn", "skip")


class ValueConversionError(ConfigError):
    """A value Debezium's converter cannot convert, e.g. a numeric ``NaN`` under
    ``decimal.handling.mode=precise``. Codecs turn it into null (``warn``, the default, logs
    it; ``skip`` does not) unless ``event.converting.failure.handling.mode=fail``, which is
    what Debezium does. The message names the column and the setting that helps.
    """


def _choice(props: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = props.get(name)
    if raw is None:
        return default
    value = str(raw).strip().lower()
    if value not in allowed:
        raise ConfigError(
            f"{name}={raw!r} is not valid; use one of: {', '.join(allowed)} (default {default})"
        )
    return value


def _bool(props: Mapping[str, str], name: str, default: bool) -> bool:
    raw = props.get(name)
    if raw is None:
        return default
    value = str(raw).strip().lower()
    if value not in ("true", "false"):
        raise ConfigError(f"{name}={raw!r} is not valid; use one of: true, false")
    return value == "true"


def _int(props: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = props.get(name)
    if raw is None:
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ConfigError(
            f"{name}={raw!r} is not valid; use an integer from {low} to {high} (default {default})"
        )
    return value


@dataclass(frozen=True, slots=True)
class ValueSettings:
    """How values are represented, under Debezium's property names and defaults."""

    decimal_handling_mode: str = "precise"
    time_precision_mode: str = "adaptive"
    binary_handling_mode: str = "bytes"
    interval_handling_mode: str = "numeric"
    hstore_handling_mode: str = "json"
    money_fraction_digits: int = 2
    include_unknown_datatypes: bool = False
    event_converting_failure_handling_mode: str = "warn"

    @classmethod
    def from_properties(cls, props: Mapping[str, str]) -> ValueSettings:
        """Read the value-mode properties of a Debezium connector config; others are ignored.

        Raises :class:`~duality.errors.ConfigError` naming the property, the bad value and
        the allowed values.
        """
        return cls(
            decimal_handling_mode=_choice(
                props, "decimal.handling.mode", _DECIMAL_MODES, "precise"
            ),
            time_precision_mode=_choice(props, "time.precision.mode", _TIME_MODES, "adaptive"),
            binary_handling_mode=_choice(props, "binary.handling.mode", _BINARY_MODES, "bytes"),
            interval_handling_mode=_choice(
                props, "interval.handling.mode", _INTERVAL_MODES, "numeric"
            ),
            hstore_handling_mode=_choice(props, "hstore.handling.mode", _HSTORE_MODES, "json"),
            money_fraction_digits=_int(props, "money.fraction.digits", 2, 0, 32767),
            include_unknown_datatypes=_bool(props, "include.unknown.datatypes", False),
            event_converting_failure_handling_mode=_choice(
                props, "event.converting.failure.handling.mode", _FAILURE_MODES, "warn"
            ),
        )


@dataclass(frozen=True, slots=True)
class PgType:
    """A PostgreSQL type as ``pg_type`` describes it, with its dependencies resolved.

    ``typtype`` is ``b`` base, ``e`` enum, ``d`` domain, ``r`` range, ``m`` multirange,
    ``c`` composite, ``p`` pseudo. ``element`` is set for arrays (category ``A``) only,
    ``base`` and ``typmod`` (``typtypmod``) for domains, ``subtype`` for ranges,
    ``enum_labels`` (in sort order) for enums. ``delimiter`` is ``typdelim``: the separator
    used when values of this type are elements of an array. ``on_path``: whether the
    type's schema is on the reading session's ``search_path`` (the JDBC driver names other
    types schema-qualified). ``base_name``: a domain's base type as ``format_type`` names it
    under the domain's modifier (``numeric(8,3)``).
    """

    oid: int
    name: str
    schema: str = "pg_catalog"
    typtype: str = "b"
    category: str = "U"
    element: PgType | None = None
    base: PgType | None = None
    typmod: int = -1
    subtype: PgType | None = None
    enum_labels: tuple[str, ...] = ()
    delimiter: str = ","
    on_path: bool = True
    base_name: str | None = None

    @property
    def is_array(self) -> bool:
        return self.category == "A" and self.element is not None

    def under_domains(self) -> str | None:
        """The type under a domain (or under an array's domain elements), as ``format_type``
        names it (``numeric(8,3)``, ``bytea[]``); None for any other type."""
        pg_type, brackets = self, ""
        if self.is_array and self.element is not None and self.element.typtype == "d":
            pg_type, brackets = self.element, "[]"
        if pg_type.typtype != "d":
            return None
        while pg_type.base is not None and pg_type.base.typtype == "d":
            pg_type = pg_type.base
        return None if pg_type.base_name is None else pg_type.base_name + brackets

    def root(self, type_modifier: int = -1) -> tuple[PgType, int]:
        """The non-domain type under any domains, and the type modifier that applies to it:
        the column's own modifier, else the nearest domain's ``typtypmod``."""
        pg_type, modifier = self, type_modifier
        while pg_type.typtype == "d" and pg_type.base is not None:
            if modifier == -1:
                modifier = pg_type.typmod
            pg_type = pg_type.base
        return pg_type, modifier


#: Text value → JSON-ready payload value. Never called with SQL NULL.
FromText = Callable[[bytes], Any]


@dataclass(frozen=True, slots=True)
class ColumnCodec:
    """How one column's values become Debezium payload values.

    ``schema`` is the Kafka Connect field schema as Debezium's JSON converter writes it,
    without the ``field`` key. ``from_text`` turns the PostgreSQL text output of a non-null
    value (COPY text field or pgoutput text tuple) into the JSON-ready payload value.

    ``from_text`` never raises for text PostgreSQL produces under
    :data:`SESSION_SETTINGS`, except :class:`ValueConversionError` where Debezium's
    converter fails and ``event.converting.failure.handling.mode=fail``; it may return None
    where Debezium emits null for a non-null value.

    ``unknown`` is set when Debezium 3.6 cannot map the type. With
    ``include.unknown.datatypes=true`` the codec then does what Debezium does (the text's
    UTF-8 bytes under ``binary.handling.mode``, an array of them for arrays), except for
    the array types Debezium always leaves out. Otherwise Debezium would leave the column
    out (or, for ``bit(n)[]``, always emit null), and the codec passes the text through as
    an optional string: the caller must warn or refuse, and ``note`` says why.
    """

    schema: dict[str, Any]
    from_text: FromText
    unknown: bool = False
    note: str = ""
    type_name: str = ""
