"""PostgreSQL array text (``array_out``) and the element quirks of Debezium's arrays.

Debezium reads every array through pgjdbc's ``PgArray``, whose element objects are not
always what the scalar path sees: time and timetz elements become ``java.sql.Time``
(millisecond precision), numeric elements ``BigDecimal`` (so ``NaN`` fails), and an element
of a multi-dimensional array is itself an array, which Debezium's element converters
cannot convert and emit as null.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from duality.sources.postgres.types_model import FromText, ValueConversionError

_LOG: Final = logging.getLogger("duality.sources.postgres.types")

Element = bytes | None
Nested = list[Any]


def parse_array(text: bytes, delimiter: int = 44) -> Nested:
    """The elements of an array's text form, nested per dimension; NULL elements are None.

    Accepts what ``array_out`` prints: an optional ``[l:u]=`` dimension prefix, quoted
    elements with backslash escapes, unquoted elements, and ``NULL``.
    """
    if text[:1] == b"[":
        text = text[text.index(b"=") + 1 :]
    if b'"' not in text and text.count(b"{") == 1:
        inner = text[1:-1]
        if not inner:
            return []
        return [None if item == b"NULL" else item for item in inner.split(bytes((delimiter,)))]
    items, end = _parse_level(text, 1, delimiter)
    if end != len(text):
        raise ValueError(f"trailing data after array literal: {text[end:]!r}")
    return items


def _parse_level(text: bytes, pos: int, delimiter: int) -> tuple[Nested, int]:
    """Parse elements after the ``{`` that precedes ``pos``; return them and the index
    after the matching ``}``."""
    items: Nested = []
    size = len(text)
    while pos < size:
        char = text[pos]
        if char == 125:  # '}'
            return items, pos + 1
        if char == delimiter:
            pos += 1
        elif char == 123:  # '{'
            child, pos = _parse_level(text, pos + 1, delimiter)
            items.append(child)
        elif char == 34:  # '"'
            value, pos = _quoted(text, pos + 1)
            items.append(value)
        else:
            end = pos
            while end < size and text[end] != delimiter and text[end] != 125:
                end += 1
            raw = text[pos:end].strip()
            items.append(None if raw.upper() == b"NULL" else raw)
            pos = end
    raise ValueError("unterminated array literal")


def _quoted(text: bytes, pos: int) -> tuple[bytes, int]:
    out = bytearray()
    while True:
        char = text[pos]
        if char == 92:  # backslash
            out.append(text[pos + 1])
            pos += 2
        elif char == 34:
            return bytes(out), pos + 1
        else:
            out.append(char)
            pos += 1


def array_converter(
    element: FromText, delimiter: int = 44, required: bool = False, column: str = ""
) -> FromText:
    """Array text → list of converted elements (None stays None; nested arrays → None,
    with a warning naming ``column``, once).

    With ``required`` items (Debezium's enum and tsvector arrays), a null element makes the
    array unconvertible, as Kafka Connect's validation makes it for Debezium.
    """
    warned = False

    def convert(text: bytes) -> list[Any]:
        nonlocal warned
        items = parse_array(text, delimiter)
        if items and isinstance(items[0], list) and not warned:
            warned = True
            _LOG.warning(
                "column %s holds a multi-dimensional array; its schema has one dimension, "
                "so each nested array is written as a null element, as Debezium does: those "
                "values are not in the log (tables, replicate and undo see nulls)",
                column or "(unnamed)",
            )
        return [
            None if item is None or isinstance(item, list) else element(item)
            for item in items
        ]

    if not required:
        return convert

    def convert_required(text: bytes) -> list[Any]:
        items = convert(text)
        if None in items:
            raise ValueConversionError(
                "an array whose elements may not be null (enum, tsvector, ltree, unknown) holds a "
                "NULL element, which Debezium cannot convert"
            )
        return items

    return convert_required


def truncate_clock(text: bytes) -> bytes:
    """time[] element text as ``java.sql.Time`` keeps it: milliseconds, and ``24:00:00``
    rolled over to midnight by the lenient calendar."""
    dot = text.find(b".")
    clock = text if dot < 0 else text[:dot] + b"." + text[dot + 1 : dot + 4]
    if clock.startswith(b"24:"):
        clock = b"00" + clock[2:]
    return clock


def whole_seconds_timetz(text: bytes) -> bytes:
    """timetz[] element text without its fraction: Debezium takes the element's
    ``java.sql.Time.toLocalTime()``, which keeps whole seconds only."""
    dot = text.find(b".")
    if dot < 0:
        return text
    end = dot + 1
    while end < len(text) and 48 <= text[end] <= 57:
        end += 1
    return text[:dot] + text[end:]


def element_or_null(element: FromText) -> FromText:
    """An element whose conversion Debezium gives up on becomes null, not the array."""

    def convert(text: bytes) -> Any:
        try:
            return element(text)
        except ValueConversionError:
            return None

    return convert


def numeric_element(element: FromText, column: str) -> FromText:
    """numeric[] elements: pgjdbc's ``BigDecimal`` parsing rejects NaN and infinities."""

    def convert(text: bytes) -> Any:
        if text[-1] == 78 or text[-1] == 121:
            raise ValueConversionError(
                f"column {column!r}: array element {text.decode()} cannot be read by "
                f"Debezium (pgjdbc rejects NaN/Infinity in numeric arrays)"
            )
        return element(text)

    return convert
