"""The decoder's value parser (duality.tables.parsing) gives what ``orjson.loads`` gives
for any sequence of values: envelopes whose tails repeat or not, images holding the bytes
it cuts at (in strings, as nested keys, as a column name), other key orders, images that
are not objects, tails with their own ``before``/``after``, and broken JSON."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from duality.tables.parsing import ValueParser

HEAD = b'{"before":null,"after":'
TRICKY = st.sampled_from([',"source":', '},"source":{', '"', "\\", "}", "{", "source", "a"])
TEXT = st.lists(TRICKY | st.text(max_size=3), max_size=4).map("".join)
KEYS = st.sampled_from(["source", "id", "after", "before", "op"]) | TEXT
SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | TEXT
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
IMAGES = st.dictionaries(KEYS, JSON, max_size=4) | JSON


@st.composite
def tails(draw: st.DrawFn) -> dict[str, Any]:
    """The envelope after its image: ``source`` first (the split's case) or not."""
    fields: dict[str, Any] = {}
    if draw(st.integers(0, 5)):
        fields["source"] = draw(st.dictionaries(KEYS, JSON, max_size=3))
    fields.update(draw(st.dictionaries(st.sampled_from(["op", "ts_ms", "before", "after",
                                                        "source", "transaction"]),
                                       JSON, max_size=3)))
    return fields


def envelope(image: Any, tail: dict[str, Any], broken: int) -> bytes:
    rest = orjson.dumps(tail)
    value = HEAD + orjson.dumps(image) + (b"," + rest[1:] if tail else b"}")
    return value[:-broken] if broken else value


@st.composite
def runs(draw: st.DrawFn) -> list[bytes]:
    pool = draw(st.lists(tails(), min_size=1, max_size=3))
    values = []
    for _ in range(draw(st.integers(1, 40))):
        image = draw(IMAGES)
        tail = pool[draw(st.integers(0, len(pool) - 1))]
        broken = draw(st.sampled_from([0] * 8 + [1, 2]))
        values.append(envelope(image, tail, broken) if draw(st.integers(0, 9))
                      else orjson.dumps(draw(JSON)))
    return values


def loaded(value: bytes, parse: Any) -> Any:
    try:
        return parse(value)
    except orjson.JSONDecodeError:
        return orjson.JSONDecodeError


@given(runs())
def test_the_parser_reads_every_value_as_orjson_does(values: list[bytes]) -> None:
    parser = ValueParser()
    for value in values:
        assert loaded(value, parser.parse) == loaded(value, orjson.loads), value


def test_a_run_of_equal_tails_is_parsed_once() -> None:
    """The tail of a run is parsed once: the events share its parsed ``source``."""
    parser = ValueParser()
    tail = {"source": {"lsn": 16, "snapshot": "true"}, "op": "r", "ts_ms": 1}
    first, second = (parser.parse(envelope({"id": n, "v": ',"source":'}, tail, 0))
                     for n in (1, 2))
    assert first == {"before": None, "after": {"id": 1, "v": ',"source":'}, **tail}
    assert second["after"] == {"id": 2, "v": ',"source":'}
    assert first["source"] is second["source"]


@pytest.mark.parametrize("image", [{"a": {"source": {"x": 1}}}, {"source": {"x": 1}}])
def test_a_key_named_source_inside_the_image_is_not_a_cut(image: dict[str, Any]) -> None:
    tail = {"source": {"lsn": 8}, "op": "c"}
    parser = ValueParser()
    for _ in range(3):
        assert parser.parse(envelope(image, tail, 0)) == {"before": None, "after": image, **tail}
