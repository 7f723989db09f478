"""A producer that tracks every record until its delivery report.

The producer is idempotent with ``acks=all`` and places keys with ``murmur2_random``
(the Java client's placement; librdkafka's default differs). :meth:`Delivery.wait`
returns only when every record produced so far has a delivery report, and raises when
any report is a failure: the caller acknowledges its source only after that, so the
source is never acknowledged for a record the brokers did not take.

Memory stays bounded when Kafka is down: librdkafka's queue is capped
(``queue.buffering.max.kbytes``, 64 MiB unless set), :meth:`Delivery.send` waits for room
instead of growing it, and the caller stops reading its source while it waits.
Records a broker does not acknowledge within ``delivery.timeout.ms`` fail, and the
wait raises :class:`~duality.errors.Unavailable`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, Producer

from duality.errors import DualityError, Unavailable
from duality.log.kafka_errors import delivery_error, kafka_error, map_error, mapped
from duality.log.kafka_settings import KafkaSettings

#: Producer settings duality picks unless the user set them (``kafka.KEY``).
PRODUCER_DEFAULTS = {
    "compression.type": "lz4",
    "linger.ms": "5",
    "queue.buffering.max.kbytes": "65536",
    "transaction.timeout.ms": "900000",
}
_POLL_EVERY = 1000

#: Record headers as librdkafka takes them.
WireHeaders = list[tuple[str, str | bytes | None]]
_MARGIN_S = 15.0


class Delivery:
    """One librdkafka producer and the count of its delivery reports."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        transactional_id: str | None = None,
        warn: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.settings = settings
        self.transactional = transactional_id is not None
        self._warn = warn
        self.produced = 0
        self.acknowledged = 0
        self._failures: list[tuple[Any, str]] = []
        self._failed = 0
        self._fatal: Any = None
        self.last_error: str | None = None
        conf = {k: v for k, v in PRODUCER_DEFAULTS.items() if k not in settings.producer}
        if not self.transactional:
            conf.pop("transaction.timeout.ms")
        extra: dict[str, Any] = {
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "message.timeout.ms": settings.delivery_timeout_ms,
            "on_delivery": self._report,
            "error_cb": self._error,
        }
        if transactional_id is not None:
            extra["transactional.id"] = transactional_id
        self._producer: Any = None
        with mapped(settings.bootstrap, "creating the producer"):
            self._producer = Producer(settings.client("producer", **conf, **extra))
        if transactional_id is not None:
            with mapped(settings.bootstrap, f"initialising transactions ({transactional_id})"):
                self._producer.init_transactions(self._timeout_s())

    # -- callbacks (run inside poll/flush, on this thread) -------------------------------

    def _report(self, err: Any, msg: Any) -> None:
        if err is None:
            self.acknowledged += 1
            return
        self._failed += 1
        if len(self._failures) < 8:
            self._failures.append((err, msg.topic()))

    def _error(self, err: Any) -> None:
        self.last_error = err.str()
        if err.fatal():
            self._fatal = err

    # -- producing -------------------------------------------------------------------------

    @property
    def outstanding(self) -> int:
        return self.produced - self.acknowledged - self._failed

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int,
        timestamp: int,
        headers: WireHeaders | None,
    ) -> None:
        """Hand one record to librdkafka, waiting for room in its queue."""
        producer = self._producer
        deadline = 0.0
        while True:
            try:
                producer.produce(
                    topic, value, key, partition, timestamp=timestamp, headers=headers
                )
                break
            except BufferError:
                now = time.monotonic()
                deadline = deadline or now + self._timeout_s()
                if now > deadline:
                    raise self._unavailable("waiting for room in the producer queue") from None
                producer.poll(0.1)
                self._check_fatal()
            except KafkaException as exc:
                raise map_error(
                    kafka_error(exc), self.settings.bootstrap, f"producing to topic {topic!r}"
                ) from exc
        self.produced += 1
        if self.produced % _POLL_EVERY == 0:
            producer.poll(0)

    def wait(self, action: str) -> None:
        """Block until every record produced so far has its delivery report; raise the
        first failure (and forget them, so the producer can be used again)."""
        deadline = time.monotonic() + self._timeout_s()
        producer = self._producer
        while self.outstanding > 0:
            producer.flush(1.0)
            self._check_fatal()
            if self.outstanding > 0 and time.monotonic() > deadline:
                raise self._unavailable(action)
        if self._failures:
            err, topic = self._failures[0]
            self._failures.clear()
            self._failed = 0
            self.produced = self.acknowledged
            raise delivery_error(err, topic, self.settings.bootstrap)

    def _check_fatal(self) -> None:
        if self._fatal is not None:
            raise map_error(self._fatal, self.settings.bootstrap, "producing")

    @property
    def broken(self) -> bool:
        """A fatal error happened: this producer must be replaced."""
        return self._fatal is not None

    def _timeout_s(self) -> float:
        return self.settings.delivery_timeout_ms / 1000 + _MARGIN_S

    def _unavailable(self, action: str) -> DualityError:
        last = f" (last error: {self.last_error})" if self.last_error else ""
        return Unavailable(
            f"Kafka at {self.settings.bootstrap} did not acknowledge {self.outstanding} "
            f"record(s) within delivery.timeout.ms={self.settings.delivery_timeout_ms} "
            f"while {action}{last}. The source was not acknowledged for them; check that "
            f"the brokers run and have enough in-sync replicas."
        )

    # -- transactions ----------------------------------------------------------------------

    def begin(self) -> None:
        with mapped(self.settings.bootstrap, "beginning a transaction"):
            self._producer.begin_transaction()

    def send_offsets(self, offsets: list[Any], group_metadata: Any) -> None:
        with mapped(self.settings.bootstrap, "adding reader offsets to a transaction"):
            self._producer.send_offsets_to_transaction(
                offsets, group_metadata, self._timeout_s()
            )

    def commit(self) -> None:
        with mapped(self.settings.bootstrap, "committing a transaction"):
            self._producer.commit_transaction(self._timeout_s())
        self.wait("committing a transaction")

    def abort(self) -> None:
        """Abort the open transaction, best effort (the broker aborts it anyway once
        ``transaction.timeout.ms`` passes or a new producer takes the id over)."""
        try:
            self._producer.abort_transaction(min(self._timeout_s(), 30.0))
        except KafkaException as exc:  # already failed; report what we know
            self._warn(f"could not abort the Kafka transaction: {exc}")
        # The purged records' reports arrive now; serve them before forgetting them.
        deadline = time.monotonic() + 5.0
        while self.outstanding > 0 and time.monotonic() < deadline:
            self._producer.poll(0.1)
        self._failures.clear()
        self._failed = 0
        self.produced = self.acknowledged

    def list_topic(self, topic: str, timeout: float) -> Any:
        """Metadata for one topic through the producer (which lets a broker with
        auto.create.topics.enable create it)."""
        with mapped(self.settings.bootstrap, f"asking for topic {topic!r}"):
            return self._producer.list_topics(topic, timeout=timeout)

    def close(self) -> None:
        """Let go of the producer (it refers back to this object through its callbacks,
        so dropping the reference here frees it now rather than at garbage collection)."""
        if self._producer is None:
            return
        if self.outstanding and not self.broken:
            self._producer.flush(5.0)
        self._producer = None
