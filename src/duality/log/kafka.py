"""The Kafka log (``kafka://host:9092,…``): the Log seam on Apache Kafka, through
confluent-kafka (librdkafka). Install with ``pip install 'duality[kafka]'``.

What lives where (see :mod:`duality.log.kafka_codec` for the formats):

* change records in their topics: key compact JSON, value ``{"schema", "payload"}`` as
  Kafka Connect's JSON converter writes it (payload only with
  ``value.converter.schemas.enable=false``), a ``duality.schema`` header;
* schemas (Connect schemas plus duality's table metadata) in the compacted
  ``__duality_schemas`` topic;
* source positions in Kafka Connect's compacted offsets topic (``connect-offsets``),
  so a deployment can move between duality and Debezium;
* reader offsets as the consumer group's committed offsets.

**Flush.** Without exactly-once (the default), :meth:`KafkaLog.flush` produces the
buffered records, waits until every one has a successful delivery report (idempotent
producer, ``acks=all``), then writes the positions and waits for them, then commits
reader offsets. A crash in between leaves records without their position: on restart,
duplicates are possible only for records delivered after the last stored position.
With ``exactly.once.source.support=enabled``, every flush is one Kafka transaction
holding the records, the positions and the reader offsets (readers use
``read_committed``, librdkafka's default), and :meth:`KafkaLog.transaction` spans
several flushes (capture's snapshot): a half snapshot is never visible.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition

from duality.errors import ConfigError
from duality.events.model import NewRecord, Record
from duality.events.partitioner import partition_for
from duality.events.schema import RecordSchema
from duality.log.base import (
    CompactionReport,
    GroupReader,
    OffsetMap,
    OnAssign,
    OnRevoke,
    TopicInfo,
)
from duality.log.kafka_admin import ADMIN_TIMEOUT_S, INTERNAL, KafkaTopics
from duality.log.kafka_codec import SCHEMALESS, position_key, wrap
from duality.log.kafka_errors import mapped, null_key_message
from duality.log.kafka_producer import Delivery, WireHeaders
from duality.log.kafka_reading import PartitionReader, read_range
from duality.log.kafka_schemas import SchemaBook
from duality.log.kafka_settings import KafkaSettings, load_settings
from duality.testing import crash_point

Warn = Callable[[str], None]
Headers = WireHeaders

COMPACTED = {"cleanup.policy": "compact"}
NOT_ATOMIC = (
    "the Kafka log runs without exactly-once: records written inside a log transaction "
    "(capture's snapshot) become visible as they are delivered, so a capture stopped "
    "mid-snapshot leaves part of it in the topics and the next start writes it again. "
    "Set -p kafka.exactly.once.source.support=enabled for an atomic snapshot."
)


@dataclass(frozen=True, slots=True)
class _Placement:
    partitions: int
    #: None when the topic's config could not be read.
    compacted: bool | None


class KafkaLog:
    """The Log seam on Kafka. See the module docstring."""

    def __init__(
        self,
        url: str,
        settings: Mapping[str, str] | None = None,
        *,
        warn: Warn | None = None,
    ) -> None:
        self.url = url
        self.settings: KafkaSettings = load_settings(url, settings)
        self._warn = warn or _stderr_warning
        self._warned: set[str] = set()
        self._topics = KafkaTopics(self.settings, self._warn, self._auto_create)
        self._reader = PartitionReader(self.settings, self._end_offset)
        self._main_delivery: Delivery | None = None
        self._plain_delivery: Delivery | None = None
        self._placements: dict[str, _Placement] = {}
        self._pending: list[NewRecord] = []
        self._schemas = SchemaBook(self.settings, self._topics, self._reader, self._warn_once)
        self._groups: dict[str, Any] = {}
        self._writer: str | None = None
        self._outer = False

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        for delivery in (self._main_delivery, self._plain_delivery):
            if delivery is not None:
                delivery.close()
        self._main_delivery = self._plain_delivery = None
        for consumer in self._groups.values():
            consumer.close()
        self._groups.clear()
        self._reader.close()
        self._topics.close()

    def __enter__(self) -> KafkaLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self._warn(message)

    def _main(self) -> Delivery:
        """The producer records go through (transactional in exactly-once mode)."""
        if self._main_delivery is not None and self._main_delivery.broken:
            self._main_delivery = None
        if self._main_delivery is None:
            tid = None
            if self.settings.exactly_once:
                tid = self.settings.producer.get("transactional.id") or _transactional_id(
                    self._writer
                )
            self._main_delivery = Delivery(self.settings, transactional_id=tid, warn=self._warn)
        return self._main_delivery

    def _plain(self) -> Delivery:
        """A non-transactional producer for schemas (and storage-topic creation)."""
        if not self.settings.exactly_once:
            return self._main()
        if self._plain_delivery is not None and self._plain_delivery.broken:
            self._plain_delivery = None
        if self._plain_delivery is None:
            self._plain_delivery = Delivery(self.settings, warn=self._warn)
        return self._plain_delivery

    def _auto_create(self, topic: str) -> None:
        self._plain().list_topic(topic, ADMIN_TIMEOUT_S)

    # -- topics -----------------------------------------------------------------------------

    def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, Any] | None = None
    ) -> TopicInfo:
        self._placements.pop(name, None)
        return self._topics.create(name, partitions, config)

    def describe(self, name: str) -> TopicInfo | None:
        return self._topics.describe(name)

    def list_topics(self) -> list[TopicInfo]:
        return self._topics.describe_many(self._topics.names())

    def delete_topic(self, name: str) -> None:
        self._topics.delete(name)
        self._placements.pop(name, None)

    def _placement(self, topic: str) -> _Placement:
        found = self._placements.get(topic)
        if found is not None:
            return found
        metadata = self._topics.cluster()
        count = self._topics.partitions(topic, metadata)
        if count is None:
            raise ConfigError(
                f"topic {topic!r} does not exist at {self.settings.bootstrap}; create it with "
                f"`duality topics --create {topic} --log {self.url}`"
            )
        config, _, unchecked = self._topics.configs([topic], metadata)[topic]
        found = _Placement(count, None if unchecked else config.compacted)
        self._placements[topic] = found
        return found

    def _storage(self, topic: str, partitions: int, replication: int) -> int:
        """Make sure a compacted storage topic exists; its partition count."""
        placement = self._placements.get(topic)
        if placement is not None:
            return placement.partitions
        count = self._topics.partitions(topic)
        if count is None:
            self._topics.create(
                topic, partitions, COMPACTED, replication_factor=replication, storage=True
            )
            count = self._topics.partitions(topic)
            if count is None:
                raise ConfigError(f"topic {topic!r} could not be created at "
                                  f"{self.settings.bootstrap}")
        self._placements[topic] = _Placement(count, True)
        return count

    # -- schemas ----------------------------------------------------------------------------

    def register_schema(self, schema: RecordSchema) -> int:
        return self._schemas.register(schema, self._plain, self._ensure_schemas_topic)

    def _ensure_schemas_topic(self) -> None:
        self._storage(self.settings.schemas_topic, 1, self.settings.schemas_replication_factor)

    def schema(self, schema_id: int) -> RecordSchema:
        return self._schemas.schema(schema_id)

    # -- writing ----------------------------------------------------------------------------

    def append(self, records: Iterable[NewRecord]) -> None:
        pending = self._pending
        placement: _Placement | None = None
        current = ""
        for record in records:
            if placement is None or record.topic != current:
                placement = self._placement(record.topic)
                current = record.topic
            partition = record.partition
            if partition is not None and not 0 <= partition < placement.partitions:
                raise ConfigError(
                    f"topic {record.topic!r} has {placement.partitions} partition(s); "
                    f"partition {partition} does not exist"
                )
            if record.key is None and placement.compacted:
                raise ConfigError(null_key_message(record.topic))
            pending.append(record)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def discard(self) -> None:
        self._pending = []

    def flush(
        self,
        positions: Mapping[str, Mapping[str, Any]] | None = None,
        reader_offsets: Mapping[str, OffsetMap] | None = None,
    ) -> None:
        """See :class:`~duality.log.base.LogWriter` and the module docstring."""
        if not (self._pending or positions or reader_offsets):
            return
        if positions and self._writer is None:
            self._writer = next(iter(positions))
        try:
            if self.settings.exactly_once:
                self._flush_transactional(positions, reader_offsets)
            else:
                self._flush_plain(positions, reader_offsets)
        finally:
            self.discard()

    def _flush_plain(
        self,
        positions: Mapping[str, Mapping[str, Any]] | None,
        reader_offsets: Mapping[str, OffsetMap] | None,
    ) -> None:
        delivery = self._main()
        if self._pending:
            self._produce(delivery)
            delivery.wait("delivering records")  # 1. every record acknowledged
            crash_point("kafka.records-delivered")
        if positions:
            self._produce_positions(delivery, positions)
            delivery.wait("storing source positions")  # 2. then their positions
        for group, offsets in (reader_offsets or {}).items():
            self._commit_group(group, offsets)  # 3. then reader offsets

    def _flush_transactional(
        self,
        positions: Mapping[str, Mapping[str, Any]] | None,
        reader_offsets: Mapping[str, OffsetMap] | None,
    ) -> None:
        delivery = self._main()
        own = not self._outer
        if own:
            delivery.begin()
        try:
            self._produce(delivery)
            if positions:
                self._produce_positions(delivery, positions)
            for group, offsets in (reader_offsets or {}).items():
                delivery.send_offsets(_partitions(offsets), self._group(group)
                                      .consumer_group_metadata())
            if own:
                delivery.commit()
            else:
                delivery.wait("delivering records inside a transaction")
        except BaseException:
            if own:
                delivery.abort()
            raise

    def _produce(self, delivery: Delivery) -> None:
        wire_of = self._schemas.wire
        send = delivery.send
        for record in self._pending:
            value = record.value
            headers: Headers | None = list(record.headers) if record.headers else None
            if record.schema_id is not None:
                wire = wire_of(record.schema_id)
                if value is not None and wire.prefix is not None:
                    value = wrap(wire.prefix, value)
                headers = wire.headers + headers if headers else wire.headers
            else:
                headers = [SCHEMALESS, *headers] if headers else [SCHEMALESS]
            partition = -1 if record.partition is None else record.partition
            send(record.topic, value, record.key, partition, record.timestamp or 0, headers)

    def _produce_positions(
        self, delivery: Delivery, positions: Mapping[str, Mapping[str, Any]]
    ) -> None:
        topic = self.settings.offsets_topic
        count = self._storage(
            topic, self.settings.offsets_partitions, self.settings.offsets_replication_factor
        )
        for name, position in positions.items():
            key = position_key(name)
            delivery.send(topic, orjson.dumps(dict(position)), key,
                          partition_for(key, count), 0, None)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """See :class:`~duality.log.base.LogWriter`: atomic in exactly-once mode only."""
        if self._outer:
            raise ConfigError("log transactions do not nest")
        self._outer = True
        try:
            if not self.settings.exactly_once:
                self._warn_once(NOT_ATOMIC)
                yield
                return
            delivery = self._main()
            delivery.begin()
            try:
                yield
                delivery.commit()
            except BaseException:
                self.discard()
                delivery.abort()
                raise
        finally:
            self._outer = False

    # -- reader offsets ---------------------------------------------------------------------

    def _group(self, group: str) -> Any:
        consumer = self._groups.get(group)
        if consumer is None:
            conf = self.settings.client(
                "consumer", **{"group.id": group, "enable.auto.commit": False}
            )
            with mapped(self.settings.bootstrap, f"joining consumer group {group!r}"):
                consumer = Consumer(conf)
            self._groups[group] = consumer
        return consumer

    def _commit_group(self, group: str, offsets: OffsetMap) -> None:
        if not offsets:
            return
        with mapped(self.settings.bootstrap, f"committing offsets of group {group!r}"):
            self._group(group).commit(offsets=_partitions(offsets), asynchronous=False)

    def commit_offsets(self, group: str, offsets: OffsetMap) -> None:
        self.flush(reader_offsets={group: offsets})

    def join_group(
        self,
        group: str,
        topics: Sequence[str],
        on_assign: OnAssign | None = None,
        on_revoke: OnRevoke | None = None,
    ) -> GroupReader:
        """A consumer-group member (see :mod:`duality.log.kafka_group`)."""
        from duality.log.kafka_group import KafkaGroupReader

        return KafkaGroupReader(self, group, topics, on_assign, on_revoke)

    def reader_offsets(self, group: str) -> dict[tuple[str, int], int]:
        """The group's committed offsets. A broker answers "all of the group's
        offsets"; librdkafka's mock cluster does not, so an empty answer is checked
        against every partition of every topic."""
        admin = self._topics.admin
        with mapped(self.settings.bootstrap, f"reading offsets of group {group!r}"):
            futures = admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)], request_timeout=ADMIN_TIMEOUT_S
            )
            found = futures[group].result().topic_partitions or []
            if not found:
                metadata = self._topics.cluster()
                every = [
                    TopicPartition(name, p)
                    for name, topic in metadata.topics.items()
                    if name not in INTERNAL
                    for p in topic.partitions
                ]
                found = self._group(group).committed(every, timeout=ADMIN_TIMEOUT_S)
        return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}

    # -- source positions -------------------------------------------------------------------

    def source_position(self, name: str) -> dict[str, Any] | None:
        """The latest value stored under ``name`` in the offsets topic (reads the key's
        partition to its end, as Kafka Connect does at start)."""
        if self._writer is None:
            self._writer = name
        if not self.settings.exactly_once:
            # The writer reads its position first: start the producer now, so that its
            # start-up (an idempotent producer fetches a producer id first, ~0.5 s) runs
            # while the source starts. In exactly-once mode the producer's start fences
            # other writers, which must wait for the first write.
            self._main()
        topic = self.settings.offsets_topic
        count = self._topics.partitions(topic)
        if count is None:
            return None
        key = position_key(name)
        messages, _ = read_range(self._reader, topic, partition_for(key, count), 0)
        latest: bytes | None = None
        for message in messages:
            if message.key() == key:
                latest = message.value()
        return None if latest is None else dict(orjson.loads(latest))

    # -- reading ----------------------------------------------------------------------------

    def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[Record]:
        placement = self._placement(topic)
        if not 0 <= partition < placement.partitions:
            raise ConfigError(f"topic {topic!r} has no partition {partition}")
        return [self.to_record(m) for m in self._reader.read(topic, partition, offset, max_records)]

    def end_offsets(self, topic: str) -> dict[int, int]:
        placement = self._placement(topic)
        details = self._topics.offsets({topic: placement.partitions})[topic]
        return {p.partition: p.next_offset for p in details}

    def topic_origin(self, topic: str) -> str | None:
        """None: Kafka's topic ids are not read (librdkafka's mock cluster has none to
        test them with); readers rely on end offsets alone (see ``check_not_ahead``)."""
        return None

    def data_version(self) -> int:
        return self._reader.data_version()

    def _end_offset(self, topic: str, partition: int) -> int:
        return self._topics.end_offset(topic, partition)

    def to_record(self, message: Any) -> Record:
        """A consumed message as a Record: payload unwrapped, schema id resolved."""
        return self._schemas.to_record(message)

    # -- compaction -------------------------------------------------------------------------

    def compact(self, topic: str | None = None) -> list[CompactionReport]:
        """Kafka's brokers compact and expire on their own schedule; nothing to do."""
        self._warn_once(
            f"Kafka at {self.settings.bootstrap} compacts and expires records itself (the "
            f"log cleaner, per topic cleanup.policy, min.compaction.lag.ms and segment.ms); "
            f"duality compact has nothing to do on Kafka"
        )
        if topic is not None:
            self._placement(topic)
        return []


def _partitions(offsets: OffsetMap) -> list[Any]:
    return [TopicPartition(t, p, o) for (t, p), o in offsets.items()]


def _transactional_id(writer: str | None) -> str:
    """``duality-<connector>-<server>`` for a capture (one writer per source, so a
    restarted capture fences the old one), else a one-off id."""
    if writer is None:
        return f"duality-{uuid.uuid4().hex[:12]}"
    try:
        parsed = orjson.loads(writer)
    except orjson.JSONDecodeError:
        return f"duality-{writer}"
    if (isinstance(parsed, list) and len(parsed) == 2 and isinstance(parsed[1], dict)
            and "server" in parsed[1]):
        return f"duality-{parsed[0]}-{parsed[1]['server']}"
    return f"duality-{writer}"


def _stderr_warning(message: str) -> None:
    import sys

    sys.stderr.write(f"warning: {message}\n")


__all__ = ["KafkaLog"]
