"""Topic configuration: Kafka's topic config keys, their defaults, and validation.

Only the keys the embedded log acts on are accepted; an unknown key or a bad value is
a :class:`~duality.errors.ConfigError` that names the key, the value and what is
allowed, so a typo never silently changes retention.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from duality.errors import ConfigError

DAY_MS = 86_400_000

CLEANUP_POLICIES = ("delete", "compact", "compact,delete")

#: Kafka's broker defaults for a topic nobody configured.
KAFKA_DEFAULTS: dict[str, str] = {
    "cleanup.policy": "delete",
    "retention.ms": str(7 * DAY_MS),
    "retention.bytes": "-1",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": str(DAY_MS),
}

#: What capture creates change topics with (DESIGN.md): a week of history stays.
CHANGE_TOPIC_DEFAULTS: dict[str, str] = {
    "cleanup.policy": "compact",
    "min.compaction.lag.ms": str(7 * DAY_MS),
    "delete.retention.ms": str(DAY_MS),
}


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """A topic's effective configuration. ``-1`` means unlimited, as in Kafka."""

    cleanup_policy: str = "delete"
    retention_ms: int = 7 * DAY_MS
    retention_bytes: int = -1
    min_compaction_lag_ms: int = 0
    delete_retention_ms: int = DAY_MS

    @property
    def compacted(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def deletes(self) -> bool:
        """Whether retention (by time or size) removes old records."""
        return "delete" in self.cleanup_policy

    def to_properties(self) -> dict[str, str]:
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            "retention.bytes": str(self.retention_bytes),
            "min.compaction.lag.ms": str(self.min_compaction_lag_ms),
            "delete.retention.ms": str(self.delete_retention_ms),
        }

    @classmethod
    def from_properties(cls, props: Mapping[str, Any], *, stored: bool = False) -> TopicConfig:
        """Validate Kafka-style properties (missing keys take Kafka's defaults).
        ``stored``: properties a log file already holds, which an older duality may have
        taken with looser number rules (``1_000``): read as it read them."""
        config = cls()
        for key, raw in props.items():
            config = _apply(config, key, raw, stored=stored)
        return config


#: Kafka types all of these as long (64-bit); none is an int.
_INT_FIELDS = {
    "retention.ms": ("retention_ms", -1),
    "retention.bytes": ("retention_bytes", -1),
    "min.compaction.lag.ms": ("min_compaction_lag_ms", 0),
    "delete.retention.ms": ("delete_retention_ms", 0),
}


LONG_MIN = -(2**63)
LONG_MAX = 2**63 - 1
_DIGITS = re.compile(r"-?[0-9]+")


def _apply(config: TopicConfig, key: str, raw: Any, *, stored: bool = False) -> TopicConfig:
    value = str(raw).strip()
    if key == "cleanup.policy":
        policy = ",".join(sorted(part.strip() for part in value.split(",") if part.strip()))
        if policy not in CLEANUP_POLICIES:
            raise ConfigError(
                f"topic config cleanup.policy={raw!r} is not valid; use one of "
                f"{', '.join(CLEANUP_POLICIES)}"
            )
        return replace(config, cleanup_policy=policy)
    if key in _INT_FIELDS:
        attr, minimum = _INT_FIELDS[key]
        number = int(value) if stored else _parse_int(key, value, minimum)
        changes: dict[str, Any] = {attr: number}
        return replace(config, **changes)
    raise ConfigError(unknown_key_message("topic config", key, KAFKA_DEFAULTS))


def _parse_int(key: str, value: str, minimum: int) -> int:
    """ASCII digits with an optional leading minus, within a Java long (Kafka's type for
    every key here), so a config moves between the embedded log and Kafka. (``int()``
    alone would take ``1_000``, other scripts' digits and any size.)"""
    if _DIGITS.fullmatch(value) is None:
        raise ConfigError(
            f"topic config {key}={value!r} is not a whole number; give milliseconds or bytes "
            f"as the digits 0-9 (for example {key}={KAFKA_DEFAULTS[key]})"
        )
    # Counting digits first: int() refuses 4,300 digits or more with a ValueError.
    if len(value.lstrip("-").lstrip("0")) > len(str(LONG_MAX)) or not (
        LONG_MIN <= int(value) <= LONG_MAX
    ):
        raise ConfigError(
            f"topic config {key}={value} is out of range: Kafka keeps it as a long, from "
            f"{LONG_MIN} to {LONG_MAX}; use -1 for unlimited"
        )
    number = int(value)
    if number < minimum:
        raise ConfigError(f"topic config {key}={number} must be at least {minimum}")
    return number


def unknown_key_message(what: str, key: str, known: Iterable[str]) -> str:
    """'unknown X 'key'; did you mean ...? known keys: ...' for any settings table."""
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listing = f" (known: {', '.join(known)})" if len(known) <= 12 else ""
    return f"unknown {what} {key!r}{hint}{listing}"


def check_topic_name(name: str) -> None:
    """Kafka's rule for topic names, so a topic can move between the embedded log and
    Kafka."""
    legal = name and len(name) <= 249 and name not in {".", ".."}
    if not legal or any(not (c.isascii() and (c.isalnum() or c in "._-")) for c in name):
        raise ConfigError(
            f"topic name {name!r} is not valid: use 1 to 249 ASCII letters, digits, "
            f"'.', '_' or '-' (Kafka's rule)"
        )


def parse_assignments(items: Iterable[str], what: str = "--config") -> dict[str, str]:
    """Parse ``key=value`` strings from the command line."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} {item!r} is not of the form key=value")
        out[key.strip()] = value.strip()
    return out
