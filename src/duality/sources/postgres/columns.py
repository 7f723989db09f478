"""Column rules from the connector config: which columns are captured, how values are
masked or cut, and which columns make the record key.

Debezium's properties, with its matching rules: column lists are comma-separated regular
expressions matched against the whole ``<schema>.<table>.<column>``; table patterns in
``message.key.columns`` against ``<schema>.<table>``.

* ``column.include.list`` / ``column.exclude.list`` — captured columns.
* ``column.mask.with.<N>.chars`` — the value (NULL too, as Debezium does) becomes N ``*``.
* ``column.mask.hash.<ALGO>.with.salt.<SALT>`` — hex digest of the salt and the value as
  Java serialises a String (Debezium's v1); ``column.mask.hash.v2.<ALGO>.with.salt.<SALT>``
  hashes the value's UTF-8 bytes. NULL stays NULL.
* ``column.truncate.to.<N>.chars`` — at most N UTF-16 code units, as Java counts them; a
  character that would be cut in half is left out (Debezium writes half of it, a lone
  surrogate that is not valid Unicode).
* ``message.key.columns`` — ``<table regex>:<col>,<col>;…``: the record key columns.
* ``column.propagate.source.type`` / ``datatype.propagate.source.type`` — which columns'
  field schemas carry their source type (see :mod:`duality.sources.postgres.propagate`);
  matched case-insensitively, as Debezium matches them, against
  ``<schema>.<table>.<column>`` and ``<schema>.<table>.<type name>``.

Masked and hashed values are transformed as soon as they are converted, so the raw value
never reaches an event, a log line or an error message.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from duality.errors import ConfigError

Transform = Callable[[Any], Any]

_MASK = re.compile(r"column\.mask\.with\.(\d+)\.chars")
_TRUNCATE = re.compile(r"column\.truncate\.to\.(\d+)\.chars")
_HASH = re.compile(r"column\.mask\.hash\.(v2\.)?([^.]+(?:-\d+)?)\.with\.salt\.(.+)")
_PROPAGATE_COLUMNS: Final = "column.propagate.source.type"
_PROPAGATE_TYPES: Final = "datatype.propagate.source.type"
#: Debezium applies one rule per column, the first that matches, and these come before
#: the propagation rules: a column they change gets no source type parameters.
_BEFORE_PROPAGATION: Final = ("column.truncate.to.", "column.mask.with.")
_ALGORITHMS = {
    "SHA-256": "sha256", "SHA-512": "sha512", "SHA-384": "sha384", "SHA-224": "sha224",
    "SHA-1": "sha1", "SHA1": "sha1", "MD5": "md5", "MD2": "md5",
}  # fmt: skip


def compile_patterns(text: str, key: str, flags: int = 0) -> tuple[re.Pattern[str], ...]:
    out = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                out.append(re.compile(part, flags))
            except re.error as exc:
                raise ConfigError(
                    f"{key}: {part!r} is not a valid regular expression ({exc})"
                ) from None
    return tuple(out)


def _matches(patterns: tuple[re.Pattern[str], ...], text: str) -> bool:
    return any(p.fullmatch(text) for p in patterns)


@dataclass(frozen=True, slots=True)
class ColumnRules:
    """The column properties of one connector, parsed (see the module docstring)."""

    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()
    transforms: tuple[tuple[tuple[re.Pattern[str], ...], str, Transform], ...] = ()
    key_columns: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = ()
    propagate_columns: tuple[re.Pattern[str], ...] = ()
    propagate_types: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def from_properties(cls, props: Mapping[str, str]) -> ColumnRules:
        if props.get("column.include.list") and props.get("column.exclude.list"):
            raise ConfigError("set column.include.list or column.exclude.list, not both")
        transforms = []
        for key, value in props.items():
            made = _transform(key)
            if made is not None:
                transforms.append((compile_patterns(value, key), key, made))
        return cls(
            include=compile_patterns(props.get("column.include.list", ""), "column.include.list"),
            exclude=compile_patterns(props.get("column.exclude.list", ""), "column.exclude.list"),
            transforms=tuple(transforms),
            key_columns=_key_columns(props.get("message.key.columns", "")),
            propagate_columns=_any_case(props, _PROPAGATE_COLUMNS),
            propagate_types=_any_case(props, _PROPAGATE_TYPES),
        )

    def captured(self, schema: str, table: str, column: str) -> bool:
        name = f"{schema}.{table}.{column}"
        if self.include:
            return _matches(self.include, name)
        return not _matches(self.exclude, name)

    def altered_by(self, schema: str, table: str, column: str) -> tuple[str, ...]:
        """The properties that change this column's values (masks, hashes, truncation)."""
        name = f"{schema}.{table}.{column}"
        return tuple(key for patterns, key, _ in self.transforms if _matches(patterns, name))

    def marks(self, schema: str, table: str, column: str) -> dict[str, str]:
        """The parameters Debezium's masks and truncation give the column's value field:
        ``masked`` ``true`` (``column.mask.with``, ``column.mask.hash``) and
        ``truncateLength`` (``column.truncate.to``)."""
        out = {}
        for key in self.altered_by(schema, table, column):
            if match := _TRUNCATE.fullmatch(key):
                out["truncateLength"] = str(int(match.group(1)))
            else:
                out["masked"] = "true"
        return out

    def transform(self, schema: str, table: str, column: str, kind: str) -> Transform | None:
        """The value transform for a column whose Connect type is ``kind`` (several
        rules compose in the order they were given)."""
        name = f"{schema}.{table}.{column}"
        chosen = [(key, fn) for patterns, key, fn in self.transforms if _matches(patterns, name)]
        if not chosen:
            return None
        if kind != "string":
            keys = ", ".join(key for key, _ in chosen)
            raise ConfigError(
                f"{keys} matches {name}, which is not a character column (its values are "
                f"{kind}); these properties apply to character columns only"
            )
        functions = [fn for _, fn in chosen]
        if len(functions) == 1:
            return functions[0]

        def composed(value: Any) -> Any:
            for fn in functions:
                value = fn(value)
            return value

        return composed

    @property
    def propagating(self) -> bool:
        """Whether any column may carry its source type in its field schema."""
        return bool(self.propagate_columns or self.propagate_types)

    def propagates(self, schema: str, table: str, column: str, type_name: str) -> bool:
        """Whether this column's field schema carries its source type: its name matches
        ``column.propagate.source.type`` or its type name ``datatype.propagate.source.type``,
        and no truncation or mask rule that Debezium applies instead changes it."""
        prefix = f"{schema}.{table}."
        if not (_matches(self.propagate_columns, prefix + column)
                or _matches(self.propagate_types, prefix + type_name)):
            return False
        altered = self.altered_by(schema, table, column)
        return not any(key.startswith(_BEFORE_PROPAGATION) for key in altered)

    def key_for(self, schema: str, table: str) -> tuple[str, ...] | None:
        qualified = f"{schema}.{table}"
        for pattern, columns in self.key_columns:
            if pattern.fullmatch(qualified):
                return columns
        return None


def _any_case(props: Mapping[str, str], key: str) -> tuple[re.Pattern[str], ...]:
    return compile_patterns(props.get(key, ""), key, re.IGNORECASE)


def _key_columns(text: str) -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    out = []
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        table, sep, columns = entry.rpartition(":")
        names = tuple(c.strip() for c in columns.split(",") if c.strip())
        if not sep or not table or not names:
            raise ConfigError(
                f"message.key.columns entry {entry!r} is not of the form "
                f"<schema>.<table>:<column>,<column>"
            )
        try:
            out.append((re.compile(table), names))
        except re.error as exc:
            raise ConfigError(
                f"message.key.columns: {table!r} is not a valid regular expression ({exc})"
            ) from None
    return tuple(out)


def _transform(key: str) -> Transform | None:
    if match := _MASK.fullmatch(key):
        return _mask(int(match.group(1)))
    if match := _TRUNCATE.fullmatch(key):
        return _truncate(int(match.group(1)))
    if match := _HASH.fullmatch(key):
        v2, algorithm, salt = bool(match.group(1)), match.group(2), match.group(3)
        name = _ALGORITHMS.get(algorithm.upper())
        if name is None:
            raise ConfigError(
                f"{key}: unknown hash algorithm {algorithm!r}; use one of "
                f"{', '.join(sorted(_ALGORITHMS))}"
            )
        return _hash(name, salt.encode(), v2=v2)
    return None


def _mask(length: int) -> Transform:
    masked = "*" * length
    return lambda _value: masked


def _truncate(length: int) -> Transform:
    def truncate(value: Any) -> Any:
        if not isinstance(value, str) or len(value) <= length // 2:
            return value
        units = 0
        for index, char in enumerate(value):
            units += 2 if ord(char) > 0xFFFF else 1
            if units > length:
                return value[:index]
        return value

    return truncate


def _hash(algorithm: str, salt: bytes, *, v2: bool) -> Transform:
    def digest(value: Any) -> Any:
        if value is None:
            return None
        data = str(value).encode("utf-8") if v2 else java_serialized(str(value))
        return hashlib.new(algorithm, salt + data).hexdigest()

    return digest


def java_serialized(text: str) -> bytes:
    """``text`` as ``ObjectOutputStream.writeObject`` writes a String: the stream header,
    then TC_STRING with a 2-byte length (TC_LONGSTRING with 8 bytes for long strings) and
    the modified UTF-8 bytes (NUL as two bytes, characters above U+FFFF as two 3-byte
    surrogates)."""
    encoded = _modified_utf8(text)
    header = b"\xac\xed\x00\x05"
    if len(encoded) <= 0xFFFF:
        return header + b"\x74" + struct.pack(">H", len(encoded)) + encoded
    return header + b"\x7c" + struct.pack(">Q", len(encoded)) + encoded


def _modified_utf8(text: str) -> bytes:
    units = text.encode("utf-16-be", "surrogatepass")
    out = bytearray()
    for (unit,) in struct.iter_unpack(">H", units):
        if 0 < unit < 0x80:
            out.append(unit)
        elif unit < 0x800:
            out += bytes((0xC0 | (unit >> 6), 0x80 | (unit & 0x3F)))
        else:
            out += bytes((0xE0 | (unit >> 12), 0x80 | ((unit >> 6) & 0x3F), 0x80 | (unit & 0x3F)))
    return bytes(out)
