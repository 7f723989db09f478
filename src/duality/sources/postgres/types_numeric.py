"""Numbers, booleans and bit strings: PostgreSQL text → Debezium payload values.

Facts from Debezium 3.6 (``PostgresValueConverter``, ``SpecialValueDecimal``,
``VariableScaleDecimal``, ``PostgresMoney``) and pgjdbc 42.7 (column length and scale):

- ``numeric(p,s)`` under ``precise`` is ``Decimal`` with ``scale`` and
  ``connect.decimal.precision`` parameters; unconstrained ``numeric`` is a
  ``VariableScaleDecimal`` struct whose value has its trailing zeros stripped.
- ``NaN`` and ``±Infinity`` cannot be expressed under ``precise`` (Debezium stops the
  connector); ``double`` gives the double (written ``"NaN"``/``"Infinity"`` by Jackson),
  ``string`` gives ``SpecialValueDecimal``'s enum names ``NAN``, ``POSITIVE_INFINITY``,
  ``NEGATIVE_INFINITY``.
- ``money`` is parsed from its locale text (``-$1,234.56`` under ``lc_monetary=C``) and,
  under ``precise``, rescaled to ``money.fraction.digits`` with HALF_UP rounding.
- ``bit(1)``/``varbit(1)`` are booleans; longer bit strings are ``Bits``: the bit string's
  value as minimal little-endian bytes (all zero bits give no bytes at all).
"""

from __future__ import annotations

import functools
from binascii import b2a_base64
from collections.abc import Callable
from typing import Any

from duality.sources.postgres.types_javafloat import java_float_value
from duality.sources.postgres.types_model import FromText, ValueConversionError
from duality.sources.postgres.types_schema import (
    BITS,
    DECIMAL,
    VARIABLE_SCALE_DECIMAL,
    Schema,
    b64,
    java_double,
    prim,
    struct,
    twos_complement,
)

#: pgjdbc reports an unconstrained numeric as this display size, and Debezium treats that
#: length (or 0) with scale 0 as "variable scale".
VARIABLE_SCALE_LENGTH = 131089
#: pgjdbc's default ``unknownLength``: the length of unbounded varbit, varchar, text.
UNKNOWN_LENGTH = 2147483647

_SPECIAL_STRINGS = {
    b"NaN": "NAN",
    b"Infinity": "POSITIVE_INFINITY",
    b"-Infinity": "NEGATIVE_INFINITY",
}


def to_int(text: bytes) -> int:
    return int(text)


def to_bool(text: bytes) -> bool:
    return text == b"t"


@functools.lru_cache(maxsize=4096)
def to_float(text: bytes) -> float | str:
    """A real as Debezium's JSON holds it: Java's ``Float.toString`` digits, read as a double."""
    value = float(text)
    if value - value != 0.0:
        return java_double(value)
    return java_float_value(value)


def to_double(text: bytes) -> float | str:
    value = float(text)
    # x - x is 0.0 for every finite x and NaN otherwise: one subtraction on the hot path.
    return value if value - value == 0.0 else java_double(value)


def numeric_precision_scale(type_modifier: int) -> tuple[int, int | None]:
    """Column length and scale as pgjdbc reports a numeric column (scale None: unset).

    pgjdbc reads the scale as an unsigned 16-bit field, so PostgreSQL 15's negative scales
    come out as 65536 - n; Debezium uses what it is given.
    """
    if type_modifier == -1:
        return 0, None
    return ((type_modifier - 4) >> 16) & 0xFFFF, (type_modifier - 4) & 0xFFFF


def _split(text: bytes) -> tuple[int, int]:
    """Unscaled value and scale of a plain decimal text such as ``-12.340``."""
    dot = text.find(b".")
    if dot < 0:
        return int(text), 0
    return int(text[:dot] + text[dot + 1 :]), len(text) - dot - 1


def _rescale(unscaled: int, scale: int, target: int, half_up: bool, column: str) -> int:
    """``BigDecimal.setScale(target)``; without ``half_up`` an inexact rescale is an error."""
    if scale == target:
        return unscaled
    if scale < target:
        return unscaled * int(10 ** (target - scale))
    divisor = int(10 ** (scale - target))
    quotient, remainder = divmod(abs(unscaled), divisor)
    if remainder and not half_up:
        raise ValueConversionError(
            f"column {column!r}: value {unscaled}e-{scale} does not fit scale {target}"
        )
    if half_up and remainder * 2 >= divisor:
        quotient += 1
    return quotient if unscaled >= 0 else -quotient


def _special(text: bytes, mode: str, column: str) -> Any:
    if mode == "string":
        return _SPECIAL_STRINGS[text]
    if mode == "double":
        return java_double(float(text))
    raise ValueConversionError(
        f"column {column!r} holds the numeric value {text.decode()}, which "
        f"decimal.handling.mode=precise cannot represent; set decimal.handling.mode to "
        f"string or double to capture it"
    )


def numeric_codec(
    type_modifier: int, mode: str, optional: bool, column: str = ""
) -> tuple[Schema, FromText]:
    """Schema and converter of a numeric column (or array element) under ``mode``."""
    precision, scale = numeric_precision_scale(type_modifier)
    variable = precision in (0, VARIABLE_SCALE_LENGTH) and not scale
    if mode == "double":
        return prim("double", optional), to_double
    if mode == "string":
        return prim("string", optional), _numeric_string(scale or 0, column)
    if variable:
        fields = [("scale", prim("int32", False)), ("value", prim("bytes", False))]
        schema = struct(fields, optional, VARIABLE_SCALE_DECIMAL, "Variable scaled decimal")
        return schema, _numeric_variable(column)
    params = {"scale": str(scale), "connect.decimal.precision": str(precision)}
    return prim("bytes", optional, DECIMAL, parameters=params), _numeric_fixed(scale or 0, column)


def _numeric_string(scale: int, column: str) -> FromText:
    # PostgreSQL prints numeric(p,s) with exactly s fraction digits and never an exponent,
    # which is what BigDecimal.toPlainString() gives after Debezium's setScale(s). Only a
    # negative declared scale (PostgreSQL 15), which pgjdbc reads as 65536 - n, differs.
    def convert(text: bytes) -> Any:
        if text[-1] == 78 or text[-1] == 121:  # NaN, [-]Infinity
            return _special(text, "string", column)
        if scale:
            dot = text.find(b".")
            digits = 0 if dot < 0 else len(text) - dot - 1
            if digits < scale:
                text = text + (b"" if dot >= 0 else b".") + b"0" * (scale - digits)
        return text.decode("ascii")

    return convert


def _numeric_fixed(scale: int, column: str) -> FromText:
    dot_at = -scale - 1

    def convert(text: bytes) -> Any:
        # Hot path: PostgreSQL prints numeric(p,s) with exactly s fraction digits.
        if scale and len(text) > scale and text[dot_at] == 46 and text[-1] < 58:
            unscaled = int(text.replace(b".", b""))
            size = ((unscaled if unscaled >= 0 else ~unscaled).bit_length() >> 3) + 1
            return b2a_base64(unscaled.to_bytes(size, "big", signed=True), newline=False).decode()
        try:
            unscaled, text_scale = _split(text)
        except ValueError:
            return _special(text, "precise", column)
        if text_scale != scale:
            unscaled = _rescale(unscaled, text_scale, scale, False, column)
        return b64(twos_complement(unscaled))

    return convert


def _numeric_variable(column: str) -> FromText:
    def convert(text: bytes) -> Any:
        dot = text.find(b".")
        try:
            if dot < 0:
                return {"scale": 0, "value": b64(twos_complement(int(text)))}
            fraction = text[dot + 1 :].rstrip(b"0")
            unscaled = int(text[:dot] + fraction)
        except ValueError:
            return _special(text, "precise", column)
        return {"scale": len(fraction), "value": b64(twos_complement(unscaled))}

    return convert


def money_codec(digits: int, mode: str, optional: bool) -> tuple[Schema, FromText]:
    """Schema and converter of a money column; text as ``lc_monetary=C`` prints it."""
    if mode == "double":
        return prim("double", optional), lambda text: float(_money_plain(text))
    if mode == "string":
        return prim("string", optional), lambda text: _money_plain(text).decode("ascii")
    schema = prim("bytes", optional, DECIMAL, parameters={"scale": str(digits)})

    def convert(text: bytes) -> str:
        unscaled, scale = _split(_money_plain(text))
        return b64(twos_complement(_rescale(unscaled, scale, digits, True, "")))

    return schema, convert


def _money_plain(text: bytes) -> bytes:
    """``-$1,234.56`` → ``-1234.56`` (also accepts ``($1,234.56)`` as other locales print)."""
    negative = text[:1] in (b"-", b"(")
    body = text.strip(b"-()")
    if body and not (48 <= body[0] <= 57 or body[0] == 46):
        body = body[1:]  # the currency symbol (one byte under lc_monetary=C)
    body = body.replace(b",", b"")
    return b"-" + body if negative else body


def bits_codec(length: int, optional: bool) -> tuple[Schema, FromText]:
    """bit(n)/varbit(n): a boolean for length 1, otherwise ``Bits`` (minimal little-endian)."""
    if length == 1:
        return prim("boolean", optional), lambda text: int(text, 2) != 0
    params = {"length": str(length)}
    return prim("bytes", optional, BITS, parameters=params), _bits_bytes


def _bits_bytes(text: bytes) -> str:
    value = int(text, 2) if text else 0
    return b64(value.to_bytes((value.bit_length() + 7) >> 3, "little"))


def bit_length(type_modifier: int, varying: bool) -> int:
    """Column length as pgjdbc reports bit(n) and varbit(n) columns."""
    if type_modifier == -1:
        return UNKNOWN_LENGTH if varying else 1
    return type_modifier


SIMPLE: dict[str, tuple[str, Callable[[bytes], Any]]] = {
    "int2": ("int16", to_int),
    "int4": ("int32", to_int),
    "int8": ("int64", to_int),
    "oid": ("int64", to_int),
    "float4": ("float", to_float),
    "float8": ("double", to_double),
    "bool": ("boolean", to_bool),
}
