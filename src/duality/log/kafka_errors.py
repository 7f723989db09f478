"""librdkafka's errors mapped to duality's, once, at the boundary.

Transient conditions (brokers unreachable, timeouts, leaders moving, too few in-sync
replicas) are :class:`~duality.errors.Unavailable`: capture retries them and, with
``--once``, exits 3 after a bounded wait. Credentials, permissions and settings are
:class:`~duality.errors.ConfigError` (exit 2) and name the setting that fixes them.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from confluent_kafka import KafkaException

from duality.errors import ConfigError, DualityError, LogError, Unavailable

_TRANSIENT = frozenset({
    "_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_MSG_TIMED_OUT", "_TIMED_OUT_QUEUE",
    "_RESOLVE", "_WAIT_COORD", "_UNKNOWN_PARTITION", "_NOENT", "_PREV_IN_PROGRESS",
    "_RETRY", "_OUTDATED", "_DESTROY", "_PURGE_INFLIGHT", "_PURGE_QUEUE", "_IN_PROGRESS",
    "LEADER_NOT_AVAILABLE", "NOT_LEADER_FOR_PARTITION",
    "NOT_LEADER_OR_FOLLOWER", "NETWORK_EXCEPTION", "NOT_ENOUGH_REPLICAS",
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND", "COORDINATOR_NOT_AVAILABLE", "NOT_COORDINATOR",
    "COORDINATOR_LOAD_IN_PROGRESS", "BROKER_NOT_AVAILABLE", "REPLICA_NOT_AVAILABLE",
    "KAFKA_STORAGE_ERROR", "CONCURRENT_TRANSACTIONS", "REBALANCE_IN_PROGRESS",
    "FENCED_LEADER_EPOCH", "UNKNOWN_LEADER_EPOCH", "OFFSET_NOT_AVAILABLE",
    "THROTTLING_QUOTA_EXCEEDED", "REQUEST_TIMED_OUT",
})
_CREDENTIALS = frozenset({
    "_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "_SSL", "ILLEGAL_SASL_STATE",
    "UNSUPPORTED_SASL_MECHANISM",
})
_PERMISSIONS = frozenset({
    "TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED",
    "CLUSTER_AUTHORIZATION_FAILED", "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
})
_FENCED = frozenset({"_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"})
_TOO_LARGE = frozenset({"MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE"})
_NULL_KEY = frozenset({"INVALID_RECORD", "CORRUPT_MESSAGE"})


def error_name(err: Any) -> str:
    """The symbolic name of a KafkaError (``_TRANSPORT``, ``TOPIC_AUTHORIZATION_FAILED``)."""
    try:
        return str(err.name())
    except AttributeError:
        return type(err).__name__


def kafka_error(exc: BaseException) -> Any:
    """The KafkaError inside a KafkaException (or the exception itself)."""
    return exc.args[0] if exc.args and hasattr(exc.args[0], "code") else exc


def is_transient(err: Any) -> bool:
    if error_name(err) in _TRANSIENT:
        return True
    retriable = getattr(err, "retriable", None)
    return bool(retriable and retriable())


def map_error(err: Any, bootstrap: str, action: str) -> DualityError:
    """A librdkafka error → the DualityError that says what to do."""
    name = error_name(err)
    text = err.str() if hasattr(err, "str") else str(err)
    where = f"Kafka at {bootstrap}"
    if name in _CREDENTIALS:
        return ConfigError(
            f"{where} refused the connection while {action}: {text}. Check "
            f"kafka.security.protocol, kafka.sasl.mechanism, kafka.sasl.username / "
            f"kafka.sasl.password and kafka.ssl.* (pass them with -p kafka.KEY=VALUE)."
        )
    if name in _PERMISSIONS:
        return ConfigError(
            f"{where} denied {action}: {text}. Grant the principal the ACL it needs "
            f"(see the README's Kafka section for the list), or use another principal."
        )
    if name in _FENCED:
        return LogError(
            f"{where}: another writer with the same transactional.id took over while "
            f"{action} ({text}); only one capture may write for a source. Stop the other "
            f"one (or give each its own kafka.transactional.id)."
        )
    if name in _TOO_LARGE:
        return ConfigError(
            f"{where} refused a record as too large while {action}: {text}. Raise the "
            f"topic's max.message.bytes and kafka.message.max.bytes, or enable "
            f"compression (kafka.compression.type=zstd)."
        )
    if name == "_INVALID_ARG" or "configuration property" in text:
        return ConfigError(f"Kafka setting refused: {text}")
    if is_transient(err):
        return Unavailable(
            f"{where} is unavailable while {action}: {text}. Check that the brokers run "
            f"and are reachable; duality retries (capture with --once gives up with exit "
            f"code 3)."
        )
    return LogError(f"{where}: {text} ({name}) while {action}")


@contextlib.contextmanager
def mapped(bootstrap: str, action: str) -> Iterator[None]:
    """Map confluent-kafka's exceptions raised inside to DualityErrors."""
    try:
        yield
    except DualityError:
        raise
    except KafkaException as exc:
        raise map_error(kafka_error(exc), bootstrap, action) from exc
    except BufferError as exc:
        raise Unavailable(
            f"Kafka at {bootstrap}: the producer's queue stayed full while {action}; "
            f"the brokers do not take records fast enough"
        ) from exc


def null_key_message(topic: str) -> str:
    return (
        f"topic {topic!r} is compacted (cleanup.policy=compact) and refuses records with a "
        f"null key, as Kafka does; give the record a key, or write it to a topic created "
        f"with --config cleanup.policy=delete"
    )


def delivery_error(err: Any, topic: str, bootstrap: str) -> DualityError:
    """A failed delivery report → an error naming the topic."""
    if error_name(err) in _NULL_KEY:
        return ConfigError(null_key_message(topic) + f" (the broker said: {err.str()})")
    return map_error(err, bootstrap, f"delivering records to topic {topic!r}")


class _Throttle(logging.Filter):
    """librdkafka repeats a failing connection's message every few seconds: let each
    (digits aside) through once per :attr:`PERIOD_S`."""

    PERIOD_S = 30.0

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = re.sub(r"\d+", "#", record.getMessage())
        now = time.monotonic()
        if now - self._seen.get(key, -self.PERIOD_S) < self.PERIOD_S:
            return False
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[key] = now
        return True


#: librdkafka's log lines go here (``logger`` of every client), throttled.
CLIENT_LOG = logging.getLogger("duality.kafka")
CLIENT_LOG.addFilter(_Throttle())
