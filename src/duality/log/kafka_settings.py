"""Settings of the Kafka log: the URL, duality's own keys, and librdkafka's.

A Kafka log is ``kafka://host:9092[,host:9092…][?key=value&…]``. Settings come from the
URL's query string and from ``kafka.``-prefixed properties (``-p kafka.KEY=VALUE`` on
the command line, a ``kafka.KEY`` entry or a ``"kafka": {…}`` object in a config file).
duality's own keys use Kafka Connect's names; every other key goes to librdkafka as it
is (``security.protocol``, ``sasl.*``, ``ssl.*``, ``client.id``, ``compression.type``
…), to the producer, the consumers and the admin client alike, except the keys that
only make sense for one kind of client (tables :data:`PRODUCER_ONLY`,
:data:`CONSUMER_ONLY`). ``producer.KEY`` / ``consumer.KEY`` target one kind explicitly.
librdkafka itself refuses an unknown key when the client is created.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from duality.errors import ConfigError
from duality.log.config import unknown_key_message

PREFIX = "kafka."

#: duality's keys (Kafka Connect's names where Connect has one) and their defaults.
DEFAULTS: dict[str, str] = {
    # Topics duality creates (Connect's source-connector topic creation properties):
    # partitions and replication factor; -1 means "the broker's default".
    "topic.creation.default.partitions": "",
    "topic.creation.default.replication.factor": "-1",
    # Source positions, in Kafka Connect's offsets topic layout.
    "offset.storage.topic": "connect-offsets",
    "offset.storage.partitions": "25",
    "offset.storage.replication.factor": "-1",
    # duality's schemas (Connect schemas plus TableMeta), keyed by fingerprint.
    "schema.storage.topic": "__duality_schemas",
    "schema.storage.replication.factor": "-1",
    # Records and positions in one Kafka transaction per flush (Connect's worker key).
    "exactly.once.source.support": "disabled",
    # The JSON converter's option: values as {"schema", "payload"} (true) or payload only.
    "value.converter.schemas.enable": "true",
    # How long a flush waits for delivery reports before the log counts as unavailable
    # (librdkafka's message.timeout.ms; the Java producer's default).
    "delivery.timeout.ms": "120000",
}

ALIASES = {"schemas.enable": "value.converter.schemas.enable"}

#: Topic configs of topics duality creates: ``topic.creation.default.<config>``.
TOPIC_CONFIG_PREFIX = "topic.creation.default."

#: librdkafka keys that only a producer understands (others would log a warning).
PRODUCER_ONLY = frozenset({
    "acks", "request.required.acks", "enable.idempotence", "transactional.id",
    "transaction.timeout.ms", "compression.type", "compression.codec", "compression.level",
    "linger.ms", "queue.buffering.max.ms", "queue.buffering.max.messages",
    "queue.buffering.max.kbytes", "batch.num.messages", "batch.size", "partitioner",
    "message.timeout.ms", "retries", "message.send.max.retries", "sticky.partitioning.linger.ms",
    "enable.gapless.guarantee", "queuing.strategy", "message.max.bytes.producer",
})
#: librdkafka keys that only a consumer understands.
CONSUMER_ONLY = frozenset({
    "isolation.level", "group.id", "group.instance.id", "session.timeout.ms",
    "heartbeat.interval.ms", "partition.assignment.strategy", "max.poll.interval.ms",
    "auto.offset.reset", "enable.auto.commit", "auto.commit.interval.ms",
    "enable.auto.offset.store", "enable.partition.eof", "fetch.wait.max.ms", "fetch.min.bytes",
    "fetch.max.bytes", "fetch.message.max.bytes", "max.partition.fetch.bytes",
    "queued.min.messages", "queued.max.messages.kbytes", "check.crcs", "group.protocol",
    "group.remote.assignor", "fetch.error.backoff.ms", "fetch.queue.backoff.ms",
    "client.rack",
})
#: Keys duality sets itself (the values it accepts); a user value would break a
#: guarantee. ``()``: never settable.
FIXED: dict[str, tuple[str, ...]] = {
    "enable.idempotence": ("true",),
    "acks": ("all", "-1"),
    "request.required.acks": ("all", "-1"),
    "partitioner": ("murmur2_random",),
    "enable.auto.commit": ("false",),
    "enable.partition.eof": ("true",),
    "bootstrap.servers": (),
    "metadata.broker.list": (),
}


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Everything the Kafka log is configured with (see the module docstring)."""

    bootstrap: str
    #: librdkafka properties for every client, the producer only, the consumers only.
    common: Mapping[str, str] = field(default_factory=dict)
    producer: Mapping[str, str] = field(default_factory=dict)
    consumer: Mapping[str, str] = field(default_factory=dict)
    partitions: int | None = None
    replication_factor: int = -1
    topic_configs: Mapping[str, str] = field(default_factory=dict)
    offsets_topic: str = "connect-offsets"
    offsets_partitions: int = 25
    offsets_replication_factor: int = -1
    schemas_topic: str = "__duality_schemas"
    schemas_replication_factor: int = -1
    exactly_once: bool = False
    schemas_enable: bool = True
    delivery_timeout_ms: int = 120_000

    @property
    def isolation_level(self) -> str:
        """read_committed unless the user asked otherwise (librdkafka's default too)."""
        return self.consumer.get("isolation.level", "read_committed")

    def client(self, kind: str, **extra: Any) -> dict[str, Any]:
        """The librdkafka configuration of a ``producer``, ``consumer`` or ``admin``."""
        from duality.log.kafka_errors import CLIENT_LOG

        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "logger": CLIENT_LOG}
        conf.update(self.common)
        if kind == "producer":
            conf.update(self.producer)
        elif kind == "consumer":
            conf.update(self.consumer)
        conf.update(extra)
        return conf


def split_properties(props: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Separate ``kafka.``-prefixed properties (and a ``"kafka"`` object) from the rest:
    returns (kafka settings without the prefix, everything else)."""
    kafka: dict[str, str] = {}
    rest: dict[str, str] = {}
    for key, value in props.items():
        if key == "kafka" and isinstance(value, Mapping):
            kafka.update({str(k): _text(v) for k, v in value.items()})
        elif key.startswith(PREFIX):
            kafka[key[len(PREFIX) :]] = _text(value)
        else:
            rest[key] = value if isinstance(value, str) else _text(value)
    return kafka, rest


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """``kafka://h1:9092,h2:9092?k=v`` → (bootstrap servers, query settings)."""
    rest = url[len("kafka://") :] if url.startswith("kafka://") else url
    hosts, _, query = rest.partition("?")
    hosts = hosts.rstrip("/")
    if not hosts:
        raise ConfigError(
            f"log URL {url!r} names no broker; use kafka://host:9092 (several: "
            f"kafka://host1:9092,host2:9092)"
        )
    for host in hosts.split(","):
        name, sep, port = host.rpartition(":")
        if not sep or not name or not port.isdigit():
            raise ConfigError(
                f"log URL {url!r}: {host!r} is not host:port; use kafka://host:9092"
            )
    return unquote(hosts), dict(parse_qsl(query, keep_blank_values=True))


def load_settings(url: str, properties: Mapping[str, str] | None = None) -> KafkaSettings:
    """Build the settings from the URL and ``kafka.``-less properties (later wins)."""
    bootstrap, query = parse_url(url)
    merged = {**query, **(properties or {})}
    merged = {ALIASES.get(k, k): v for k, v in merged.items()}
    ours = dict(DEFAULTS)
    common: dict[str, str] = {}
    producer: dict[str, str] = {}
    consumer: dict[str, str] = {}
    topic_configs: dict[str, str] = {}
    for key, value in merged.items():
        if key in DEFAULTS:
            ours[key] = value
        elif key.startswith(TOPIC_CONFIG_PREFIX):
            topic_configs[key[len(TOPIC_CONFIG_PREFIX) :]] = value
        elif key.startswith("producer."):
            producer[_client_key(key[len("producer.") :], value)] = value
        elif key.startswith("consumer."):
            consumer[_client_key(key[len("consumer.") :], value)] = value
        elif key in PRODUCER_ONLY:
            producer[_client_key(key, value)] = value
        elif key in CONSUMER_ONLY:
            consumer[_client_key(key, value)] = value
        else:
            common[_client_key(key, value)] = value
    return KafkaSettings(
        bootstrap=bootstrap,
        common=common,
        producer=producer,
        consumer=consumer,
        partitions=_optional_int(ours, "topic.creation.default.partitions", 1),
        replication_factor=_int(ours, "topic.creation.default.replication.factor", -1),
        topic_configs=topic_configs,
        offsets_topic=_topic(ours, "offset.storage.topic"),
        offsets_partitions=_int(ours, "offset.storage.partitions", 1),
        offsets_replication_factor=_int(ours, "offset.storage.replication.factor", -1),
        schemas_topic=_topic(ours, "schema.storage.topic"),
        schemas_replication_factor=_int(ours, "schema.storage.replication.factor", -1),
        exactly_once=_choice(ours, "exactly.once.source.support", ("enabled", "disabled"))
        == "enabled",
        schemas_enable=_choice(ours, "value.converter.schemas.enable", ("true", "false"))
        == "true",
        delivery_timeout_ms=_int(ours, "delivery.timeout.ms", 1000),
    )


def _client_key(key: str, value: str) -> str:
    if key in FIXED:
        fixed = FIXED[key]
        if not fixed:
            raise ConfigError(
                f"kafka.{key} cannot be set as a property: the brokers come from the log "
                f"URL (kafka://host:9092,host:9092)"
            )
        if value.strip().lower() not in fixed:
            raise ConfigError(
                f"kafka.{key}={value!r} is not allowed: duality sets {key}={fixed[0]} so that "
                f"the source is acknowledged only for records every in-sync replica has, "
                f"keys land where the Java client puts them and offsets live beside the data"
            )
    if key == "message.timeout.ms":
        raise ConfigError(
            f"set kafka.delivery.timeout.ms instead of kafka.{key} (the same librdkafka "
            f"setting; duality also waits for delivery reports that long)"
        )
    if key == "isolation.level" and value not in ("read_committed", "read_uncommitted"):
        raise ConfigError(
            f"kafka.isolation.level={value!r}: use read_committed or read_uncommitted"
        )
    return key


def _int(values: Mapping[str, str], key: str, minimum: int) -> int:
    raw = values[key]
    try:
        number = int(raw)
    except ValueError:
        raise ConfigError(f"kafka.{key}={raw!r} is not a whole number") from None
    if number < minimum and number != -1:
        raise ConfigError(f"kafka.{key}={number} must be at least {minimum} (or -1)")
    return number


def _optional_int(values: Mapping[str, str], key: str, minimum: int) -> int | None:
    if not values[key]:
        return None
    return _int(values, key, minimum)


def _choice(values: Mapping[str, str], key: str, allowed: tuple[str, ...]) -> str:
    value = values[key].strip().lower()
    if value not in allowed:
        raise ConfigError(f"kafka.{key}={values[key]!r}: use one of {', '.join(allowed)}")
    return value


def _topic(values: Mapping[str, str], key: str) -> str:
    name = values[key]
    if not name or any(not (c.isascii() and (c.isalnum() or c in "._-")) for c in name):
        raise ConfigError(f"kafka.{key}={name!r} is not a valid topic name")
    return name


def describe_unknown(key: str) -> str:
    """A hint for a key librdkafka refused."""
    return unknown_key_message("Kafka setting", key, DEFAULTS)
