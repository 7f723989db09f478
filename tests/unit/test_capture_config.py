"""Connector configurations duality refuses before connecting anywhere."""

from __future__ import annotations

import pytest

from duality.errors import ConfigError
from duality.sources.postgres.config import parse_config

SOURCE = "postgresql://u@127.0.0.1:5432/db"


def test_another_connectors_configuration_is_refused() -> None:
    mysql = {"connector.class": "io.debezium.connector.mysql.MySqlConnector",
             "topic.prefix": "p"}
    with pytest.raises(ConfigError, match=r"MySqlConnector.*not PostgreSQL's connector"):
        parse_config(mysql, source=SOURCE)
    for name in ("io.debezium.connector.postgresql.PostgresConnector", "PostgresConnector"):
        config = parse_config({"connector.class": name, "topic.prefix": "p"}, source=SOURCE)
        assert config.topic_prefix == "p"


@pytest.mark.parametrize("key", ["slot.max.retries", "slot.retry.delay.ms",
                                 "retriable.restart.connector.wait.ms", "heartbeat.interval.ms",
                                 "database.connectTimeoutMs"])
def test_negative_counts_and_durations_are_refused(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}='-1' is negative; give 0 or more$"):
        parse_config({"topic.prefix": "p", key: "-1"}, source=SOURCE)
    assert parse_config({"topic.prefix": "p", key: "0"}, source=SOURCE).topic_prefix == "p"


def test_a_replication_parameter_in_the_source_dsn_is_refused() -> None:
    for source in (SOURCE + "?replication=database", "host=h dbname=db replication=true"):
        with pytest.raises(ConfigError, match=r"--source sets replication=.*: remove it"):
            parse_config({"topic.prefix": "p"}, source=source)
