"""Schemas on Kafka: registering them in the schemas topic, finding them again, and
turning consumed messages into Records (see :mod:`duality.log.kafka_codec` for the
formats).

A schema is registered once per process: its record goes to the compacted schemas
topic and the registration returns only when the brokers acknowledged it, so a record
that names it can never be read before it. Reading, a record's ``duality.schema``
header names its schema; a schema this process has not seen is looked up by reading
what the schemas topic gained since it was last read. Records other writers made
carry their Connect schema in the value (registered locally, without duality's table
metadata), or none (the reader is told which types cannot be recovered, once per
topic).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from duality.errors import ConfigError
from duality.events.model import Headers, Record
from duality.events.schema import RecordSchema
from duality.log.kafka_admin import KafkaTopics
from duality.log.kafka_codec import (
    SCHEMA_HEADER,
    foreign_schema,
    parse_schema_record,
    schema_id,
    schema_record,
    schemaless_note,
    unwrap,
    value_prefix,
)
from duality.log.kafka_producer import Delivery, WireHeaders
from duality.log.kafka_reading import PartitionReader, read_range
from duality.log.kafka_settings import KafkaSettings


@dataclass(frozen=True, slots=True)
class Wire:
    """How records of one schema go on the wire: headers and the value prefix (None:
    payload only)."""

    headers: WireHeaders
    prefix: bytes | None


class SchemaBook:
    """The schemas one Kafka log knows, by id and by fingerprint."""

    def __init__(
        self,
        settings: KafkaSettings,
        topics: KafkaTopics,
        reader: PartitionReader,
        warn_once: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self._topics = topics
        self._reader = reader
        self._warn_once = warn_once
        self._schemas: dict[int, RecordSchema] = {}
        self._ids: dict[str, int] = {}
        self._wire: dict[int, Wire] = {}
        self._read_to: dict[int, int] = {}

    def register(
        self, schema: RecordSchema, delivery: Callable[[], Delivery],
        ensure_topic: Callable[[], None],
    ) -> int:
        """Durably register ``schema``; an equal schema returns the same id."""
        key, value, fingerprint = schema_record(schema)
        known = self._ids.get(fingerprint)
        if known is not None:
            return known
        ensure_topic()
        producer = delivery()
        topic = self.settings.schemas_topic
        producer.send(topic, value, key, -1, 0, None)
        producer.wait(f"registering a schema in topic {topic!r}")
        return self._remember(fingerprint, schema)

    def _remember(self, fingerprint: str, schema: RecordSchema) -> int:
        sid = schema_id(fingerprint)
        self._ids[fingerprint] = sid
        self._schemas[sid] = schema
        prefix = None
        if self.settings.schemas_enable and schema.value is not None:
            prefix = value_prefix(schema.value)
        self._wire[sid] = Wire([(SCHEMA_HEADER, fingerprint.encode("ascii"))], prefix)
        return sid

    def schema(self, sid: int) -> RecordSchema:
        found = self._schemas.get(sid)
        if found is None:
            self._load()
            found = self._schemas.get(sid)
        if found is None:
            raise ConfigError(
                f"schema id {sid} is not registered in topic "
                f"{self.settings.schemas_topic!r} at {self.settings.bootstrap}"
            )
        return found

    def wire(self, sid: int) -> Wire:
        found = self._wire.get(sid)
        if found is None:
            self.schema(sid)
            found = self._wire[sid]
        return found

    def _load(self) -> None:
        """Read what the schemas topic gained since it was last read."""
        topic = self.settings.schemas_topic
        for partition in range(self._topics.partitions(topic) or 0):
            start = self._read_to.get(partition, 0)
            messages, self._read_to[partition] = read_range(self._reader, topic, partition,
                                                            start)
            for message in messages:
                parsed = parse_schema_record(message.key(), message.value())
                if parsed is not None and parsed[0] not in self._ids:
                    self._remember(*parsed)

    def _id_for(self, fingerprint: str) -> int | None:
        sid = self._ids.get(fingerprint)
        if sid is None:
            self._load()
            sid = self._ids.get(fingerprint)
        return sid

    def to_record(self, message: Any) -> Record:
        """A consumed message as a Record: payload unwrapped, schema id resolved, the
        schema header taken out of the headers."""
        topic = message.topic()
        fingerprint, headers = _split_headers(message.headers())
        key = message.key()
        value = message.value()
        sid = self._id_for(fingerprint) if fingerprint else None
        if sid is not None:
            payload = unwrap(value, self._wire[sid].prefix).payload
        elif fingerprint == "":
            payload = value  # written by duality without a schema: the bytes as given
        else:
            unwrapped = unwrap(value)
            payload = unwrapped.payload
            key_parts = unwrap(key)
            if unwrapped.schema is not None or key_parts.schema is not None:
                key = key_parts.payload
                sid = self._foreign(key_parts.schema, unwrapped.schema)
            elif value is not None and fingerprint is None:
                self._warn_once(schemaless_note(topic))
        return Record(topic, message.partition(), message.offset(), message.timestamp()[1],
                      key, payload, headers, sid)

    def _foreign(self, key_schema: Any, value_schema: Any) -> int:
        """Register (in this process only) the schema a record of another writer
        carried."""
        schema = foreign_schema(key_schema, value_schema)
        fingerprint = schema.fingerprint()
        return self._ids.get(fingerprint) or self._remember(fingerprint, schema)


def _split_headers(raw: list[tuple[str, bytes | None]] | None) -> tuple[str | None, Headers]:
    """(the schema fingerprint, "" for a record duality wrote without a schema, None
    without the header; the other headers in order)."""
    if not raw:
        return None, ()
    fingerprint = None
    kept = []
    for name, value in raw:
        if name == SCHEMA_HEADER and fingerprint is None:
            fingerprint = (value or b"").decode("ascii", "replace")
        else:
            kept.append((name, value))
    return fingerprint, tuple(kept)
