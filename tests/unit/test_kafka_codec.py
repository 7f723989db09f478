"""Records, schemas and positions as they look on Kafka (pure functions)."""

from __future__ import annotations

import hashlib

import orjson
from hypothesis import given
from hypothesis import strategies as st

from duality.events.schema import ConnectField, ConnectSchema, RecordSchema, TableMeta
from duality.log.kafka_codec import (
    foreign_schema,
    parse_schema_record,
    position_key,
    schema_id,
    schema_record,
    schemaless_note,
    unwrap,
    value_prefix,
    wrap,
)

VALUE = ConnectSchema("struct", name="shop.public.t.Envelope", fields=(
    ConnectField("id", ConnectSchema("int32")),
    ConnectField("amount", ConnectSchema("bytes", optional=True,
                                         name="org.apache.kafka.connect.data.Decimal",
                                         parameters={"scale": "2"})),
))
SCHEMA = RecordSchema(ConnectSchema("struct", fields=VALUE.fields[:1]), VALUE,
                      TableMeta(table="public.t", primary_key=("id",)))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)


def test_values_are_what_the_json_converter_writes() -> None:
    payload = orjson.dumps({"id": 1, "amount": "Jw=="})
    value = wrap(value_prefix(VALUE), payload)
    assert orjson.loads(value) == {"schema": VALUE.to_json(),
                                   "payload": {"id": 1, "amount": "Jw=="}}
    assert unwrap(value, value_prefix(VALUE)).payload == payload


@given(json_values)
def test_unwrap_recovers_the_payload_of_any_connect_value(payload: object) -> None:
    body = orjson.dumps({"schema": {"type": "struct"}, "payload": payload})
    unwrapped = unwrap(body)
    assert unwrapped.schema == {"type": "struct"}
    expected = None if payload is None else payload
    assert (None if unwrapped.payload is None else orjson.loads(unwrapped.payload)) == expected


def test_unwrap_leaves_other_bytes_alone() -> None:
    for raw in (b'{"before":null,"after":{"id":1}}', b"not json", b"[1,2]", b'"text"'):
        assert unwrap(raw).payload == raw and unwrap(raw).schema is None
    assert unwrap(None).payload is None


def test_schema_ids_come_from_the_fingerprint() -> None:
    key, value, fingerprint = schema_record(SCHEMA)
    assert fingerprint == hashlib.sha256(SCHEMA.canonical()).hexdigest()
    assert orjson.loads(key) == fingerprint and value == SCHEMA.canonical()
    assert schema_id(fingerprint) == int(fingerprint[:15], 16) < 2**60
    assert parse_schema_record(key, value) == (fingerprint, SCHEMA)
    assert parse_schema_record(key, value.replace(b"public.t", b"public.u")) is None
    assert parse_schema_record(key, None) is None


def test_foreign_records_get_a_schema_without_metadata() -> None:
    schema = foreign_schema(None, VALUE.to_json())
    assert schema.value == VALUE and schema.key is None and schema.meta == TableMeta()


def test_position_keys_are_kafka_connects() -> None:
    name = orjson.dumps(["inventory", {"server": "shop"}]).decode()
    assert position_key(name) == b'["inventory",{"server":"shop"}]'
    assert position_key('[ "inventory" , {"server": "shop"} ]') == position_key(name)
    assert position_key("bench") == b'"bench"'


def test_the_schemaless_note_says_what_is_lost() -> None:
    note = schemaless_note("shop.public.t")
    assert "shop.public.t" in note and "decimals" in note and "timestamps" in note
