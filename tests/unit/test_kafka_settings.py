"""Kafka log settings: URL, duality's keys, librdkafka's keys and their scope."""

from __future__ import annotations

import logging

import pytest

from duality.errors import ConfigError
from duality.log.kafka_errors import _Throttle
from duality.log.kafka_settings import load_settings, parse_url, split_properties


def test_url_forms() -> None:
    assert parse_url("kafka://a:9092") == ("a:9092", {})
    assert parse_url("kafka://a:9092,b:9093/?exactly.once.source.support=enabled") == (
        "a:9092,b:9093", {"exactly.once.source.support": "enabled"})
    for bad in ("kafka://", "kafka://host", "kafka://host:port", "kafka://:9092"):
        with pytest.raises(ConfigError, match="kafka://host:9092"):
            parse_url(bad)


def test_defaults_follow_kafka_connect() -> None:
    settings = load_settings("kafka://a:9092")
    assert settings.offsets_topic == "connect-offsets"
    assert settings.offsets_partitions == 25
    assert settings.schemas_topic == "__duality_schemas"
    assert not settings.exactly_once and settings.schemas_enable
    assert settings.partitions is None and settings.replication_factor == -1
    assert settings.delivery_timeout_ms == 120_000
    assert settings.isolation_level == "read_committed"
    assert settings.client("producer")["bootstrap.servers"] == "a:9092"


def test_keys_go_to_the_clients_that_understand_them() -> None:
    settings = load_settings(
        "kafka://a:9092?client.id=q",
        {"security.protocol": "SASL_SSL", "compression.type": "zstd",
         "isolation.level": "read_uncommitted", "producer.linger.ms": "20",
         "consumer.fetch.min.bytes": "10", "client.id": "duality-1"},
    )
    producer, consumer, admin = (settings.client(k) for k in ("producer", "consumer", "admin"))
    assert producer["security.protocol"] == consumer["security.protocol"] == "SASL_SSL"
    assert admin["client.id"] == "duality-1"  # properties win over the URL
    assert producer["compression.type"] == "zstd" and "compression.type" not in consumer
    assert producer["linger.ms"] == "20" and "linger.ms" not in consumer
    assert consumer["fetch.min.bytes"] == "10" and "fetch.min.bytes" not in producer
    assert settings.isolation_level == "read_uncommitted"


def test_duality_keys_and_topic_creation_defaults() -> None:
    settings = load_settings("kafka://a:9092", {
        "topic.creation.default.partitions": "6",
        "topic.creation.default.replication.factor": "3",
        "topic.creation.default.min.compaction.lag.ms": "0",
        "offset.storage.topic": "my-offsets",
        "schemas.enable": "false",
        "exactly.once.source.support": "enabled",
        "delivery.timeout.ms": "30000",
    })
    assert settings.partitions == 6 and settings.replication_factor == 3
    assert settings.topic_configs == {"min.compaction.lag.ms": "0"}
    assert settings.offsets_topic == "my-offsets"
    assert not settings.schemas_enable and settings.exactly_once
    assert settings.delivery_timeout_ms == 30_000
    assert "topic.creation.default.partitions" not in settings.client("producer")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("acks", "1", "acks=all"),
        ("enable.idempotence", "false", "enable.idempotence=true"),
        ("partitioner", "consistent_random", "murmur2_random"),
        ("bootstrap.servers", "x:1", "log URL"),
        ("message.timeout.ms", "5", "delivery.timeout.ms"),
        ("exactly.once.source.support", "maybe", "enabled, disabled"),
        ("offset.storage.partitions", "many", "whole number"),
        ("offset.storage.topic", "a b", "not a valid topic name"),
        ("isolation.level", "dirty", "read_committed"),
    ],
)
def test_settings_that_would_break_a_guarantee_are_refused(
    key: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings("kafka://a:9092", {key: value})


def test_acks_minus_one_is_all() -> None:
    assert load_settings("kafka://a:9092", {"acks": "-1"}).producer["acks"] == "-1"


def test_split_properties_takes_prefixed_keys_and_a_section() -> None:
    kafka, rest = split_properties({
        "kafka.security.protocol": "SSL", "kafka": {"client.id": "x", "linger.ms": 5},
        "topic.prefix": "shop", "tombstones.on.delete": True,
    })
    assert kafka == {"security.protocol": "SSL", "client.id": "x", "linger.ms": "5"}
    assert rest == {"topic.prefix": "shop", "tombstones.on.delete": "true"}


def test_repeated_client_log_lines_are_throttled() -> None:
    throttle = _Throttle()

    def line(text: str) -> logging.LogRecord:
        return logging.LogRecord("duality.kafka", logging.ERROR, __file__, 1, text, None, None)

    assert throttle.filter(line("Connect to 127.0.0.1:9092 failed (after 3ms)"))
    assert not throttle.filter(line("Connect to 127.0.0.1:9092 failed (after 17ms)"))
    assert throttle.filter(line("Disconnected"))
