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


def test_properties_round_trip() -> None:
    config = TopicConfig.from_properties(
        {"cleanup.policy": "compact", "min.compaction.lag.ms": "10", "retention.bytes": "99"}
    )
    assert TopicConfig.from_properties(config.to_properties()) == config


def test_parse_assignments() -> None:
    assert parse_assignments(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["novalue"])
