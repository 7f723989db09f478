"""Debezium JSON to and from change events."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from duality.errors import ConfigError
from duality.events.envelope import (
    decode_event,
    decode_json,
    encode_key,
    encode_value,
    event_to_payload,
    payload_to_event,
)
from duality.events.model import ChangeEvent, Op, SourceInfo, TransactionBlock

# A Debezium 3.x PostgreSQL update event, as its JSON converter writes it
# (schemas.enable=false).
DEBEZIUM_UPDATE: dict[str, Any] = {
    "before": {"id": 1, "name": "old", "price": "AfQ="},
    "after": {"id": 1, "name": "new", "price": "Aic="},
    "source": {
        "version": "3.6.0.Final",
        "connector": "postgresql",
        "name": "shop",
        "ts_ms": 1700000000123,
        "snapshot": "false",
        "db": "shop",
        "sequence": '["24023928","24023984"]',
        "ts_us": 1700000000123456,
        "ts_ns": 1700000000123456000,
        "schema": "public",
        "table": "items",
        "txId": 744,
        "lsn": 24023984,
        "xmin": None,
    },
    "transaction": {"id": "744:24023984", "total_order": 1, "data_collection_order": 1},
    "op": "u",
    "ts_ms": 1700000000200,
    "ts_us": 1700000000200111,
    "ts_ns": 1700000000200111000,
}


def test_debezium_event_round_trips_value_equal() -> None:
    value = orjson.dumps(DEBEZIUM_UPDATE)
    event = decode_event(b'{"id":1}', value)
    assert event.op is Op.UPDATE
    assert event.key == {"id": 1}
    assert event.source.get("txId") == 744
    assert event.source.snapshot == "false"
    assert event.transaction == TransactionBlock("744:24023984", 1, 1)
    assert orjson.loads(encode_value(event)) == DEBEZIUM_UPDATE


def test_key_bytes_are_compact_json() -> None:
    assert encode_key({"id": 1}) == b'{"id":1}'
    assert encode_key({"a": "x", "b": 2}) == b'{"a":"x","b":2}'
    assert encode_key(None) is None


def test_schema_and_payload_wrapper_is_unwrapped() -> None:
    wrapped = {"schema": {"type": "struct"}, "payload": DEBEZIUM_UPDATE}
    assert decode_json(orjson.dumps(wrapped)) == DEBEZIUM_UPDATE
    key = orjson.dumps({"schema": {"type": "struct"}, "payload": {"id": 1}})
    assert decode_event(key, orjson.dumps(wrapped)).key == {"id": 1}


def test_boolean_snapshot_of_old_debezium_is_read_as_string() -> None:
    payload = dict(DEBEZIUM_UPDATE, source=dict(DEBEZIUM_UPDATE["source"], snapshot=True))
    assert payload_to_event(payload).source.snapshot == "true"


def test_message_event_content_is_base64() -> None:
    event = ChangeEvent(
        op=Op.MESSAGE,
        source=SourceInfo(connector="postgresql", name="shop", ts_ms=1, db="shop"),
        key=None,
        before=None,
        after=None,
        ts_ms=2,
        message={"prefix": "audit", "content": b"\x00hello"},
    )
    payload = event_to_payload(event)
    assert payload["message"] == {
        "prefix": "audit",
        "content": base64.b64encode(b"\x00hello").decode(),
    }
    assert "before" not in payload
    back = payload_to_event(orjson.loads(orjson.dumps(payload)))
    assert back.message == {"prefix": "audit", "content": b"\x00hello"}


@pytest.mark.parametrize(
    "value",
    [b"not json", b"[1,2]", orjson.dumps({"op": "x"}), orjson.dumps({"after": {}})],
)
def test_not_an_envelope_is_a_clear_error(value: bytes) -> None:
    with pytest.raises(ConfigError) as info:
        decode_event(None, value)
    assert "Debezium" in str(info.value) or "JSON" in str(info.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
rows = st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=6)


@given(
    op=st.sampled_from([Op.CREATE, Op.UPDATE, Op.DELETE, Op.READ, Op.TRUNCATE]),
    before=st.none() | rows,
    after=st.none() | rows,
    key=st.none() | rows,
    extra=st.dictionaries(st.sampled_from(["schema", "table", "txId", "lsn", "xmin"]), json_values),
    ts=st.integers(0, 2**42),
)
def test_any_event_round_trips(
    op: Op, before: Any, after: Any, key: Any, extra: Any, ts: int
) -> None:
    source = SourceInfo(connector="postgresql", name="p", ts_ms=ts, db="d", extra=extra)
    event = ChangeEvent(
        op=op,
        source=source,
        key=key,
        before=before,
        after=after,
        ts_ms=ts,
        ts_us=ts * 1000,
        ts_ns=ts * 1_000_000,
    )
    back = decode_event(encode_key(key), encode_value(event))
    assert back == event
