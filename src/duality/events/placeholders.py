"""The unchanged-TOAST placeholder of an array, numeric or bit-string column, in a form
that fits the column's schema: what capture writes (:mod:`duality.sources.postgres.tables`)
and what the fold recognises (:func:`duality.tables.types.placeholder_values`).

Debezium's ``UnchangedToastedPlaceholder`` has forms for some element types: the
placeholder's bytes as (signed, Java ``byte``) numbers for int, date and bigint elements,
a one-element list of the bytes for bytea, of the name-based UUID of the bytes for uuid,
of the placeholder itself for text-like elements. For the other element types its
placeholder fails the array's own schema and it writes null, which a table would store
over the kept value; those get forms by element kind here instead (the bytes as numbers
for integer and float elements, the bytes' bits for booleans, the bytes as a decimal's
unscaled value), so they stay recognisable.

Scalar numeric and bit-string columns fare the same in Debezium 3.6 (checked against the
real connector): its placeholder string fails the ``Decimal``, ``VariableScaleDecimal``,
``double`` (``decimal.handling.mode=double``) and ``Bits`` schemas, so it logs "Failed
to properly convert data value" and writes null, or, on a NOT NULL column, stops the
connector ("Invalid value: null used for required field"). Only
``decimal.handling.mode=string`` keeps the string. :func:`scalar_placeholder` gives these
columns the forms their array elements get here: the placeholder's bytes (as bytea has
them) for ``Decimal`` and ``Bits``, those bytes as the unscaled value of a scale-0
``VariableScaleDecimal``, and that number as a double.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import uuid
from typing import Any, Final

INTEGER_ITEMS: Final = frozenset({"int8", "int16", "int32", "int64"})
FLOAT_ITEMS: Final = frozenset({"float", "double", "float32", "float64"})
UUID_NAME: Final = "io.debezium.data.Uuid"
VARIABLE_DECIMAL_NAME: Final = "io.debezium.data.VariableScaleDecimal"
#: Logical names whose value is bytes: the placeholder's bytes are their form.
BYTES_NAMES: Final = frozenset({"org.apache.kafka.connect.data.Decimal", "io.debezium.data.Bits"})


def array_placeholder(kind: str | None, name: str | None, text: str) -> list[Any]:
    """The placeholder ``text`` as an array of elements of Connect type ``kind`` and
    logical ``name`` (see the module docstring)."""
    raw = text.encode()
    signed = [b - 256 if b > 127 else b for b in raw]
    if name == UUID_NAME:
        return [str(uuid.UUID(bytes=hashlib.md5(raw, usedforsecurity=False).digest(), version=3))]
    if kind in INTEGER_ITEMS:
        return signed
    if kind in FLOAT_ITEMS:
        return [float(b) for b in signed]
    if kind == "boolean":
        return [bool(b >> shift & 1) for b in raw for shift in range(7, -1, -1)]
    encoded = base64.b64encode(raw).decode("ascii")
    if kind == "bytes":
        return [encoded]
    if kind == "struct" and name == VARIABLE_DECIMAL_NAME:
        return [{"scale": 0, "value": encoded}]
    if kind == "map":
        return [{text: text}]
    return [text]


def scalar_placeholder(kind: str | None, name: str | None, text: str) -> Any:
    """The placeholder ``text`` as a value of Connect type ``kind`` and logical ``name``
    for the scalar columns whose schema the string fails (see the module docstring);
    None for every other column."""
    raw = text.encode()
    if kind == "bytes" and name in BYTES_NAMES:
        return base64.b64encode(raw).decode("ascii")
    if kind == "struct" and name == VARIABLE_DECIMAL_NAME:
        return {"scale": 0, "value": base64.b64encode(raw).decode("ascii")}
    if kind in ("double", "float64") and name is None:
        # The number the VariableScaleDecimal form stands for (the bytes as a big-endian
        # two's-complement integer, about 1e67 for the default text), as a double; a
        # text of over 127 bytes has no finite double (and keeps the string).
        with contextlib.suppress(OverflowError):
            return float(int.from_bytes(raw, "big", signed=True))
    return None
