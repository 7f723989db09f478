"""Topic configuration validation."""

from __future__ import annotations

import pytest

from duality.errors import ConfigError
from duality.log.config import TopicConfig, parse_assignments


def test_defaults_are_kafkas() -> None:
    config = TopicConfig.from_properties({})
    assert config.cleanup_policy == "delete"
    assert config.retention_ms == 7 * 86_400_000
    assert config.retention_bytes == -1
    assert not config.compacted


@pytest.mark.parametrize("policy", ["compact", "delete", "compact,delete", "delete, compact"])
def test_cleanup_policies(policy: str) -> None:
    config = TopicConfig.from_properties({"cleanup.policy": policy})
    assert config.compacted == ("compact" in policy)


@pytest.mark.parametrize(
    ("props", "fragment"),
    [
        ({"cleanup.policy": "compacted"}, "cleanup.policy='compacted'"),
        ({"retention.ms": "7d"}, "retention.ms='7d' is not a whole number"),
        ({"delete.retention.ms": "-5"}, "must be at least 0"),
        ({"retension.ms": "1"}, "did you mean 'retention.ms'"),
        ({"segment.bytes": "1"}, "unknown topic config 'segment.bytes'"),
    ],
)
def test_bad_config_names_key_and_fix(props: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        TopicConfig.from_properties(props)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("1_000", "retention.bytes='1_000' is not a whole number"),
        ("\u0663\u0660\u0660\u0660", "is not a whole number"),  # Arabic-Indic 3000
        ("\uff11\uff10", "is not a whole number"),  # fullwidth 10
        ("+5", "is not a whole number"),
        ("0x10", "is not a whole number"),
        ("1e3", "is not a whole number"),
        ("--1", "is not a whole number"),
        ("9223372036854775808", "retention.bytes=9223372036854775808 is out of range"),
        ("99999999999999999999999", "from -9223372036854775808 to 9223372036854775807"),
        ("-9223372036854775809", "is out of range"),
        ("1" * 5000, "is out of range"),  # (int() refuses 4,300 digits or more)
    ],
)
def test_numbers_are_kafkas_longs(value: str, fragment: str) -> None:
    """ASCII digits with an optional minus, within a Java long, as Kafka parses them."""
    with pytest.raises(ConfigError) as info:
        TopicConfig.from_properties({"retention.bytes": value})
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("value", "number"),
    [("9223372036854775807", 2**63 - 1), (" 12 ", 12), ("-1", -1), ("007", 7), ("-0", 0)],
)
def test_numbers_kafka_takes_are_taken(value: str, number: int) -> None:
    assert TopicConfig.from_properties({"retention.bytes": value}).retention_bytes == number


def test_numbers_an_older_log_holds_are_read_as_they_were_taken() -> None:
    """A log file written before the stricter rules keeps working: its topics are
    described (and compacted) with the values it holds."""
    stored = {"retention.ms": "1_000", "retention.bytes": "\u0663\u0660"}
    config = TopicConfig.from_properties(stored, stored=True)
    assert (config.retention_ms, config.retention_bytes) == (1000, 30)


def test_properties_round_trip() -> None:
    config = TopicConfig.from_properties(
        {"cleanup.policy": "compact", "min.compaction.lag.ms": "10", "retention.bytes": "99"}
    )
    assert TopicConfig.from_properties(config.to_properties()) == config


def test_parse_assignments() -> None:
    assert parse_assignments(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["novalue"])
