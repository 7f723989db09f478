"""One member of a Kafka consumer group (see :mod:`duality.log.groups`).

The member subscribes to the topics with the cooperative-sticky assignor (unless
``kafka.partition.assignment.strategy`` says otherwise), so a rebalance moves only the
partitions that change hands. When partitions arrive, ``on_assign`` supplies the
offsets stored in the reader's own store; a partition without one starts at the
group's committed offset, or else at the beginning. ``on_revoke`` runs before
partitions leave (and ``on_lost`` when the group already gave them away, e.g. after a
long pause): the member must make its work for them durable there.

Rebalance callbacks run inside :meth:`KafkaGroupReader.poll`, on the caller's thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from duality.events.model import Record
from duality.log.base import OffsetMap, OnAssign, OnRevoke, Partition
from duality.log.kafka_errors import is_transient, kafka_error, map_error, mapped

if TYPE_CHECKING:
    from duality.log.kafka import KafkaLog

_BATCH = 2000


class KafkaGroupReader:
    """A consumer-group member reading through a :class:`~duality.log.kafka.KafkaLog`."""

    def __init__(
        self,
        log: KafkaLog,
        group: str,
        topics: Sequence[str],
        on_assign: OnAssign | None = None,
        on_revoke: OnRevoke | None = None,
    ) -> None:
        self.log = log
        self.group = group
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._assigned: set[Partition] = set()
        settings = log.settings
        extra: dict[str, Any] = {
            "group.id": group,
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "earliest",
            "isolation.level": settings.isolation_level,
        }
        if "partition.assignment.strategy" not in settings.consumer:
            extra["partition.assignment.strategy"] = "cooperative-sticky"
        self._consumer: Any = None
        with mapped(settings.bootstrap, f"joining consumer group {group!r}"):
            self._consumer = Consumer(settings.client("consumer", **extra))
            self._consumer.subscribe(
                list(topics), on_assign=self._assign, on_revoke=self._revoke,
                on_lost=self._revoke,
            )

    def _assign(self, consumer: Any, partitions: list[Any]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        stored = dict(self._on_assign(keys)) if self._on_assign and keys else {}
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition))
            if offset is not None:
                tp.offset = offset
        consumer.incremental_assign(partitions)
        self._assigned.update(keys)

    def _revoke(self, consumer: Any, partitions: list[Any]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        if self._on_revoke is not None and keys:
            self._on_revoke(keys)
        consumer.incremental_unassign(partitions)
        self._assigned.difference_update(keys)

    def assignment(self) -> list[Partition]:
        return sorted(self._assigned)

    def poll(self, timeout: float) -> list[Record]:
        with mapped(self.log.settings.bootstrap, f"reading as group {self.group!r}"):
            messages = self._consumer.consume(_BATCH, timeout)
        out = []
        for message in messages:
            err = message.error()
            if err is None:
                if (message.topic(), message.partition()) in self._assigned:
                    out.append(self.log.to_record(message))
            elif not is_transient(err):
                raise map_error(err, self.log.settings.bootstrap, f"reading as group "
                                f"{self.group!r}")
        return out

    def commit(self, offsets: OffsetMap) -> None:
        """Commit to the group (a hint); partitions no longer assigned are skipped."""
        mine = [TopicPartition(t, p, o) for (t, p), o in offsets.items()
                if (t, p) in self._assigned]
        if not mine:
            return
        try:
            self._consumer.commit(offsets=mine, asynchronous=False)
        except KafkaException as exc:
            err = kafka_error(exc)
            if not is_transient(err) and err.name() not in (
                "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "REBALANCE_IN_PROGRESS",
                "_NO_OFFSET",
            ):
                raise map_error(err, self.log.settings.bootstrap,
                                f"committing offsets of group {self.group!r}") from exc

    def close(self) -> None:
        """Leave the group: ``on_revoke`` runs for what this member holds."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
