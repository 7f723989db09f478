"""Reading Kafka partitions by offset, as the Log seam's ``read`` does.

One consumer (no consumer group membership, no commits) is assigned every partition
that has been read, at the offset the caller asked for; librdkafka keeps fetching them
in the background and this module keeps what arrives in one small buffer per
partition, so reading partition after partition (as :class:`~duality.log.reading.
TopicReader` does) costs no extra round trips. Reading at an offset other than where a
partition's buffer continues seeks. A partition whose buffer holds more than
:data:`PAUSE_AT` messages is paused until it is read, so memory stays bounded.

The end of a partition is the high watermark, or the last stable offset with
``isolation.level=read_committed`` (the default), where readers stop before records of
transactions still open. An offset before the first record still there (retention,
compaction) reads from the first one: "at ``offset`` or later".
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from duality.errors import ConfigError, Unavailable
from duality.log.kafka_errors import is_transient, map_error, mapped
from duality.log.kafka_settings import KafkaSettings

PAUSE_AT = 20_000
RESUME_AT = 2_000
#: How long a read waits for records it knows exist (below the end offset).
WAIT_FOR_KNOWN_S = 10.0
_BATCH = 5_000
#: A fetch waits at most this long on the broker for new data. Requests to one broker
#: are answered in order, so a long wait would delay a newly assigned partition's
#: first fetch and the offset queries behind it.
READER_DEFAULTS = {"fetch.wait.max.ms": "100"}

Key = tuple[str, int]


class PartitionReader:
    """Random-access reads over one background-fetching consumer."""

    def __init__(
        self, settings: KafkaSettings, end_offset: Callable[[str, int], int] | None = None
    ) -> None:
        self.settings = settings
        self._end_offset = end_offset
        self._consumer: Any = None
        self._expected: dict[Key, int] = {}
        self._buffers: dict[Key, deque[Any]] = {}
        self._eof: dict[Key, int] = {}
        self._paused: set[Key] = set()

    def _client(self) -> Any:
        if self._consumer is None:
            conf = {k: v for k, v in READER_DEFAULTS.items() if k not in self.settings.consumer}
            conf = self.settings.client(
                "consumer",
                **conf,
                **{
                    "group.id": f"duality-reader-{uuid.uuid4().hex[:12]}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "auto.offset.reset": "earliest",
                    "isolation.level": self.settings.isolation_level,
                },
            )
            with mapped(self.settings.bootstrap, "creating a consumer"):
                self._consumer = Consumer(conf)
        return self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self._expected.clear()
        self._buffers.clear()
        self._eof.clear()
        self._paused.clear()

    # -- positioning ---------------------------------------------------------------------

    def _position(self, key: Key, offset: int) -> None:
        """Make sure the partition is assigned and continues at ``offset``."""
        consumer = self._client()
        expected = self._expected.get(key)
        if expected == offset:
            return
        tp = TopicPartition(key[0], key[1], max(offset, 0))
        with mapped(self.settings.bootstrap, f"reading {key[0]!r} partition {key[1]}"):
            if expected is None:
                consumer.incremental_assign([tp])
            else:
                consumer.incremental_unassign([TopicPartition(key[0], key[1])])
                consumer.incremental_assign([tp])
        self._expected[key] = offset
        self._buffers[key] = deque()
        self._eof.pop(key, None)
        self._paused.discard(key)

    def release(self, topic: str, partition: int) -> None:
        """Stop fetching a partition (reading it again reassigns it)."""
        key = (topic, partition)
        if key in self._expected and self._consumer is not None:
            self._consumer.incremental_unassign([TopicPartition(topic, partition)])
        self._expected.pop(key, None)
        self._buffers.pop(key, None)
        self._eof.pop(key, None)
        self._paused.discard(key)

    # -- reading ---------------------------------------------------------------------------

    def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[Any]:
        """Messages at ``offset`` or later, at most ``max_records``; empty at the end."""
        key = (topic, partition)
        offset = max(offset, 0)
        self._position(key, offset)
        out = self._take(key, max_records)
        if len(out) < max_records:
            self._pump(0)
            out += self._take(key, max_records - len(out))
        if out or max_records <= 0:
            return out
        end = self.end(topic, partition)
        if offset >= end:
            return []
        # Records exist below ``end``: wait for the fetcher (an end-of-partition event
        # from before ``end`` moved says nothing).
        deadline = time.monotonic() + WAIT_FOR_KNOWN_S
        while not self._buffers[key] and time.monotonic() < deadline:
            self._pump(0.05)
            if self._eof.get(key, -1) >= end and not self._buffers[key]:
                return []
        if not self._buffers[key]:
            # Not "nothing there": a reader would take it for the end of the partition
            # (a table store would move past records it never applied).
            raise Unavailable(
                f"Kafka at {self.settings.bootstrap} did not deliver the records of topic "
                f"{topic!r} partition {partition} from offset {offset} (it ends at {end}) "
                f"within {WAIT_FOR_KNOWN_S:.0f} s"
            )
        return self._take(key, max_records)

    def _take(self, key: Key, count: int) -> list[Any]:
        buffer = self._buffers[key]
        out: list[Any] = []
        while buffer and len(out) < count:
            out.append(buffer.popleft())
        if out:
            self._expected[key] = out[-1].offset() + 1
        if key in self._paused and len(buffer) < RESUME_AT and self._consumer is not None:
            self._consumer.resume([TopicPartition(*key)])
            self._paused.discard(key)
        return out

    def end(self, topic: str, partition: int) -> int:
        """The partition's end offset now, asked on another connection when possible:
        a broker answers one connection's requests in order, so behind a waiting fetch."""
        if self._end_offset is not None:
            return self._end_offset(topic, partition)
        return self.watermarks(topic, partition)[1]

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        with mapped(self.settings.bootstrap, f"reading the offsets of {topic!r}"):
            low, high = self._client().get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10, cached=False
            )
        return int(low), int(high)

    def _pump(self, timeout: float) -> None:
        """Move what the consumer has fetched into the partition buffers."""
        consumer = self._client()
        with mapped(self.settings.bootstrap, "reading"):
            messages = consumer.consume(_BATCH, timeout)
        for message in messages:
            key = (message.topic(), message.partition())
            err = message.error()
            if err is not None:
                self._handle(key, message, err)
                continue
            buffer = self._buffers.get(key)
            if buffer is None:
                continue  # a partition released since it was fetched
            buffer.append(message)
            if len(buffer) >= PAUSE_AT and key not in self._paused:
                consumer.pause([TopicPartition(*key)])
                self._paused.add(key)

    def _handle(self, key: Key, message: Any, err: Any) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            self._eof[key] = message.offset()
            return
        if is_transient(err):
            return  # librdkafka retries by itself
        if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise ConfigError(
                f"topic {key[0]!r} (partition {key[1]}) does not exist at "
                f"{self.settings.bootstrap}"
            )
        raise map_error(err, self.settings.bootstrap, f"reading topic {key[0]!r}")

    def data_version(self) -> int:
        """Changes when the cached high watermark of an assigned partition moves (the
        background fetcher updates them; no request is sent)."""
        if self._consumer is None:
            return 0
        total = sum(len(b) for b in self._buffers.values())
        for topic, partition in self._expected:
            try:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            if high not in (OFFSET_INVALID, None):
                total += int(high)
        return total


def read_range(
    reader: PartitionReader, topic: str, partition: int, start: int
) -> tuple[list[Any], int]:
    """Every message of a partition from ``start`` up to its current end, and the
    offset to continue from; the partition is released afterwards. Used for the small
    compacted topics duality keeps its schemas and positions in."""
    out: list[Any] = []
    offset = start
    end = reader.end(topic, partition)
    while offset < end:
        batch = reader.read(topic, partition, offset, _BATCH)
        if not batch:
            break
        out += batch
        offset = batch[-1].offset() + 1
    reader.release(topic, partition)
    return out, max(offset, start)
