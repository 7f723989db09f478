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
#: Commit errors that only mean the member's view of the group is out of date.
_STALE = frozenset({"ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "REBALANCE_IN_PROGRESS",
                    "_NO_OFFSET", "_STATE"})


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
        extra["on_commit"] = self._committed
        self._commit_error: Any = None
        self._to_commit: dict[Partition, int] = {}
        self._in_flight: dict[Partition, int] = {}
        self._consumer: Any = None
        with mapped(settings.bootstrap, f"joining consumer group {group!r}"):
            self._consumer = Consumer(settings.client("consumer", **extra))
            self._consumer.subscribe(
                list(topics), on_assign=self._assign, on_revoke=self._revoke,
                on_lost=self._lost,
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
        """Partitions leave (a rebalance, or :meth:`close`): what the reader commits in
        ``on_revoke``, and what it committed before that is still waiting behind an
        earlier request, is committed synchronously while the member still owns them."""
        self._leave(consumer, partitions, commit=True)

    def _lost(self, consumer: Any, partitions: list[Any]) -> None:
        """The group already gave the partitions away: a commit would be refused."""
        self._leave(consumer, partitions, commit=False)

    def _leave(self, consumer: Any, partitions: list[Any], *, commit: bool) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        if self._on_revoke is not None and keys:
            self._on_revoke(keys)
        pending = {key: self._to_commit[key] for key in keys if key in self._to_commit}
        if commit and pending:
            self._commit(consumer, pending, asynchronous=False)
        consumer.incremental_unassign(partitions)
        self._assigned.difference_update(keys)
        for key in keys:
            self._to_commit.pop(key, None)

    def assignment(self) -> list[Partition]:
        return sorted(self._assigned)

    def poll(self, timeout: float) -> list[Record]:
        if self._commit_error is not None:
            err, self._commit_error = self._commit_error, None
            raise map_error(err, self.log.settings.bootstrap,
                            f"committing offsets of group {self.group!r}")
        with mapped(self.log.settings.bootstrap, f"reading as group {self.group!r}"):
            messages = self._consumer.consume(_BATCH, timeout)
        self._send_commits()
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
        """Commit to the group (a hint; partitions no longer assigned are skipped).
        Commits are asynchronous — during a rebalance a synchronous one would block until
        the group settles — and one the group refused as stale is sent again on the
        next poll."""
        self._to_commit.update(
            {tp: o for tp, o in offsets.items() if tp in self._assigned}
        )
        self._send_commits()

    def _send_commits(self) -> None:
        if not self._to_commit or self._in_flight:
            return
        self._in_flight = dict(self._to_commit)
        sent = False
        try:
            sent = self._commit(self._consumer, self._in_flight, asynchronous=True)
        finally:
            if not sent:
                self._in_flight = {}

    def _commit(self, consumer: Any, offsets: dict[Partition, int], *,
                asynchronous: bool) -> bool:
        """Send a commit; False when it was refused as stale or transient (the offsets
        stay a hint for the next one), a ``LogError`` for anything else."""
        try:
            consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                asynchronous=asynchronous,
            )
        except KafkaException as exc:
            err = kafka_error(exc)
            if not is_transient(err) and err.name() not in _STALE:
                raise map_error(err, self.log.settings.bootstrap,
                                f"committing offsets of group {self.group!r}") from exc
            return False
        return True

    def _committed(self, err: Any, _partitions: list[Any]) -> None:
        sent, self._in_flight = self._in_flight, {}
        if err is None:
            for tp, offset in sent.items():
                if self._to_commit.get(tp) == offset:
                    del self._to_commit[tp]
        elif not is_transient(err) and err.name() not in _STALE:
            self._commit_error = err

    def close(self) -> None:
        """Leave the group: ``on_revoke`` runs for what this member holds."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
