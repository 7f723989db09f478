"""Row codecs: a row image (a parsed JSON object) → the key and values a table stores.

A :class:`RowCodec` is built once per table shape and record schema and then called for
every record, so it precomputes everything: which fields to read, in table order, which
of them need decoding, which payload values are unchanged-TOAST placeholders. A column
the record's schema lacks reads as None.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from duality.tables.fold import Key, Values
from duality.tables.shape import FieldCodec, Shape
from duality.tables.types import Decode, Kind, infer_codec, placeholder_values

Decoders = tuple[tuple[int, Decode], ...]


@dataclass(frozen=True, slots=True)
class RowCodec:
    """Reads keys and values of one table shape (see the module docstring)."""

    key_fields: tuple[str, ...]
    key_decoders: Decoders
    fields: tuple[str, ...]
    decoders: Decoders
    #: value-column index → the payload values that mean "unchanged TOAST value"
    placeholders: Mapping[int, tuple[Any, ...]]
    #: every placeholder value, for one quick membership test per row
    quick: tuple[Any, ...]
    key_scalar: bool = False
    value_scalar: bool = False
    #: reads every field of ``fields`` at once (raises KeyError if one is missing)
    getter: Callable[[dict[str, Any]], tuple[Any, ...]] = tuple
    #: the key's only field, when it needs no decoding (the common fast case)
    single: str | None = None

    def key(self, parsed: Any) -> Key | None:
        """The decoded key of a parsed record key, or None if it is null or has a null
        component (such records are skipped)."""
        single = self.single
        if single is not None and type(parsed) is dict:
            value = parsed.get(single)
            return None if value is None else (value,)
        if self.key_scalar:
            raw = [parsed]
        elif type(parsed) is dict:
            raw = [parsed.get(f) for f in self.key_fields]
        else:
            return None
        if None in raw or not raw:
            return None
        for index, decode in self.key_decoders:
            raw[index] = decode(raw[index])
        return tuple(raw)

    def row_key(self, row: dict[str, Any]) -> Key | None:
        """The key a row image holds in its key columns (for key changes)."""
        if self.key_scalar:
            return None
        return self.key(row)

    def moved(self, row: dict[str, Any], parsed_key: Any) -> bool:
        """Whether the row's key columns differ from the record key (a key change that
        the source did not split into a delete and a create)."""
        if self.key_scalar or type(parsed_key) is not dict:
            return False
        for field in self.key_fields:
            if field in row and row[field] != parsed_key.get(field):
                return True
        return False

    def values(self, row: Any) -> Values:
        """The value columns of a row image, decoded (fields it lacks read as None)."""
        if self.value_scalar:
            row = {self.fields[0]: row} if self.fields else {}
        try:
            found = self.getter(row)
        except KeyError:
            found = tuple(row.get(f) for f in self.fields)
        if not self.decoders:
            return found
        raw = list(found)
        for index, decode in self.decoders:
            x = raw[index]
            if x is not None:
                raw[index] = decode(x)
        return tuple(raw)

    def unavailable(self, row: dict[str, Any]) -> frozenset[int]:
        """Indexes of value columns holding the unchanged-TOAST placeholder."""
        if not self.quick:
            return frozenset()
        present = row.values()
        if not any(p in present for p in self.quick):
            return frozenset()
        return frozenset(
            i for i, alts in self.placeholders.items() if row.get(self.fields[i]) in alts
        )

    def without(self, row: dict[str, Any], unavailable: frozenset[int]) -> dict[str, Any]:
        """The row with its placeholder fields nulled (so they are not decoded as data)."""
        gone = {self.fields[i] for i in unavailable}
        return {k: (None if k in gone else x) for k, x in row.items()}


def typed_codec(
    shape: Shape, codecs: Mapping[str, FieldCodec], placeholder: str | None
) -> RowCodec:
    """The codec of ``shape`` for records whose schema has the field ``codecs``."""
    value_columns = shape.value_columns
    placeholders: dict[int, tuple[Any, ...]] = {}
    if placeholder:
        for i, column in enumerate(value_columns):
            field = codecs.get(column.field)
            schema = field.schema if field is not None else None
            source_type = field.source_type if field is not None else None
            placeholders[i] = placeholder_values(schema, source_type, placeholder)
    quick: list[Any] = []
    for alts in placeholders.values():
        quick += [a for a in alts if a not in quick]
    key_decoders = _decoders(shape.key, codecs)
    fields = tuple(c.field for c in value_columns)
    return RowCodec(
        key_fields=shape.key,
        key_decoders=key_decoders,
        fields=fields,
        decoders=_decoders(fields, codecs),
        placeholders=placeholders,
        quick=tuple(quick),
        key_scalar=shape.key_scalar,
        value_scalar=shape.value_scalar,
        getter=_getter(fields),
        single=_single(shape, key_decoders),
    )


def _getter(fields: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    if len(fields) > 1:
        return operator.itemgetter(*fields)
    if fields:
        only = fields[0]
        return lambda row: (row[only],)
    return lambda row: ()


def _single(shape: Shape, key_decoders: Decoders) -> str | None:
    if len(shape.key) == 1 and not shape.key_scalar and not key_decoders:
        return shape.key[0]
    return None


def _decoders(fields: tuple[str, ...], codecs: Mapping[str, FieldCodec]) -> Decoders:
    out = []
    for i, field in enumerate(fields):
        codec = codecs.get(field)
        if codec is not None and codec.decode is not None:
            out.append((i, codec.decode))
    return tuple(out)


def inferred_codec(shape: Shape) -> RowCodec:
    """The codec of a shape inferred from records without schemas."""
    value_columns = shape.value_columns

    def decoders(kinds: list[Kind]) -> Decoders:
        return tuple((i, _inferred_decoder(kind)) for i, kind in enumerate(kinds))

    fields = tuple(c.field for c in value_columns)
    return RowCodec(
        key_fields=shape.key,
        key_decoders=decoders([c.kind for c in shape.key_columns]),
        fields=fields,
        decoders=decoders([c.kind for c in value_columns]),
        placeholders={},
        quick=(),
        key_scalar=shape.key_scalar,
        value_scalar=shape.value_scalar,
        getter=_getter(fields),
    )


def _inferred_decoder(kind: Kind) -> Decode:
    sample = True if kind.base == "bool" else None
    return infer_codec(sample)[1]
