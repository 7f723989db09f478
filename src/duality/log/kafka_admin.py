"""Topics on Kafka: create with config, describe, list, delete — and falling back
quickly where the brokers refuse.

A topic duality creates gets the caller's config (capture: ``cleanup.policy=compact``,
a week of ``min.compaction.lag.ms``), overridden by ``topic.creation.default.<config>``
settings; its partitions and replication factor come from
``topic.creation.default.partitions`` / ``.replication.factor`` when set.

Where a cluster refuses CreateTopics or DescribeConfigs (no controller answering
admin requests, as in librdkafka's mock cluster; missing ACLs; a policy), duality says
what could not be done or checked and goes on: a topic it could not create is
auto-created by the broker with the broker's defaults (when the broker allows it), and
a topic whose config it could not read is described with Kafka's defaults and
:attr:`~duality.log.base.TopicInfo.unchecked` saying why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    ConfigSource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from duality.errors import ConfigError
from duality.log.base import PartitionInfo, TopicInfo
from duality.log.config import KAFKA_DEFAULTS, TopicConfig, check_topic_name
from duality.log.kafka_errors import error_name, is_transient, kafka_error, map_error, mapped
from duality.log.kafka_settings import KafkaSettings

ADMIN_TIMEOUT_S = 10.0
#: Kafka's own internal topics, never listed.
INTERNAL = frozenset({"__consumer_offsets", "__transaction_state"})
#: Errors that mean "the cluster will not do this for us" (fall back, say so).
_REFUSALS = frozenset({
    "UNSUPPORTED_VERSION", "_UNSUPPORTED_FEATURE", "CLUSTER_AUTHORIZATION_FAILED",
    "TOPIC_AUTHORIZATION_FAILED", "POLICY_VIOLATION", "_TIMED_OUT", "REQUEST_TIMED_OUT",
    "INVALID_REQUEST", "_NOT_IMPLEMENTED",
})
NO_CONTROLLER = (
    "the cluster has no controller that answers admin requests (librdkafka's mock "
    "cluster does not implement CreateTopics, DeleteTopics or DescribeConfigs)"
)


class KafkaTopics:
    """The TopicAdmin part of the Kafka log."""

    def __init__(
        self,
        settings: KafkaSettings,
        warn: Callable[[str], None],
        auto_create: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self._warn = warn
        self._auto_create = auto_create
        self._admin: Any = None
        self._warned: set[str] = set()

    @property
    def admin(self) -> Any:
        if self._admin is None:
            with mapped(self.settings.bootstrap, "creating the admin client"):
                self._admin = AdminClient(self.settings.client("admin"))
        return self._admin

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self._warn(message)

    # -- metadata ----------------------------------------------------------------------------

    def cluster(self) -> Any:
        """Metadata of every topic (asking for one topic by name could auto-create it)."""
        with mapped(self.settings.bootstrap, "reading cluster metadata"):
            return self.admin.list_topics(timeout=ADMIN_TIMEOUT_S)

    def refusal(self, metadata: Any) -> str | None:
        """Why admin requests cannot work on this cluster, or None."""
        if metadata.controller_id not in metadata.brokers:
            return NO_CONTROLLER
        return None

    def partitions(self, name: str, metadata: Any | None = None) -> int | None:
        """The topic's partition count, or None if it does not exist."""
        metadata = metadata or self.cluster()
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None or not topic.partitions:
            return None
        return len(topic.partitions)

    def names(self) -> list[str]:
        return sorted(n for n in self.cluster().topics if n not in INTERNAL)

    # -- describe ----------------------------------------------------------------------------

    def describe(self, name: str) -> TopicInfo | None:
        found = self.describe_many([name])
        return found[0] if found else None

    def describe_many(self, names: list[str]) -> list[TopicInfo]:
        metadata = self.cluster()
        counts = {n: c for n in names if (c := self.partitions(n, metadata)) is not None}
        if not counts:
            return []
        configs = self.configs(list(counts), metadata)
        offsets = self.offsets(counts)
        infos = []
        for name, count in counts.items():
            config, overrides, unchecked = configs[name]
            infos.append(
                TopicInfo(
                    name=name,
                    partitions=count,
                    config=config,
                    overrides=overrides,
                    details=tuple(offsets[name]),
                    unchecked=unchecked,
                )
            )
        return infos

    def configs(
        self, names: list[str], metadata: Any
    ) -> dict[str, tuple[TopicConfig, dict[str, str], str | None]]:
        """Each topic's effective config, the keys set on the topic, and why it could
        not be read (then Kafka's defaults are reported)."""
        unknown: tuple[TopicConfig, dict[str, str]] = (TopicConfig(), {})
        reason = self.refusal(metadata)
        if reason is not None:
            self._warn_once(f"Kafka at {self.settings.bootstrap}: topic configs cannot be "
                            f"checked: {reason}")
            return dict.fromkeys(names, (*unknown, reason))
        resources = [ConfigResource(ResourceType.TOPIC, n) for n in names]
        futures = self.admin.describe_configs(resources, request_timeout=ADMIN_TIMEOUT_S)
        out: dict[str, tuple[TopicConfig, dict[str, str], str | None]] = {}
        for resource, future in futures.items():
            try:
                entries = future.result()
            except KafkaException as exc:
                why = self._refused(exc, f"reading the config of topic {resource.name!r}")
                out[resource.name] = (*unknown, why)
                continue
            out[resource.name] = _config_from_entries(entries)
        return out

    def _refused(self, exc: KafkaException, action: str) -> str:
        """A refusal to fall back from (warned once), or raise what is not one."""
        err = kafka_error(exc)
        name = error_name(err)
        if name not in _REFUSALS and not is_transient(err):
            raise map_error(err, self.settings.bootstrap, action) from exc
        reason = f"the cluster refused {action}: {err.str()}"
        self._warn_once(f"Kafka at {self.settings.bootstrap}: {reason}")
        return reason

    def offsets(self, counts: Mapping[str, int]) -> dict[str, list[PartitionInfo]]:
        """First and next offset of every partition of the given topics."""
        tps = [TopicPartition(n, p) for n, c in counts.items() for p in range(c)]
        isolation = self._isolation()
        found: dict[str, dict[str, int]] = {"first": {}, "next": {}}
        for which, spec in (("first", _earliest()), ("next", _latest())):
            with mapped(self.settings.bootstrap, "reading topic offsets"):
                futures = self.admin.list_offsets(
                    dict.fromkeys(tps, spec),
                    isolation_level=isolation,
                    request_timeout=ADMIN_TIMEOUT_S,
                )
                for tp, future in futures.items():
                    found[which][f"{tp.topic}\0{tp.partition}"] = int(future.result().offset)
        out: dict[str, list[PartitionInfo]] = {n: [] for n in counts}
        for tp in tps:
            key = f"{tp.topic}\0{tp.partition}"
            first, nxt = max(found["first"][key], 0), max(found["next"][key], 0)
            out[tp.topic].append(PartitionInfo(tp.partition, first, nxt, max(nxt - first, 0)))
        return out

    def end_offset(self, topic: str, partition: int) -> int:
        """The next offset of one partition (the last stable one with read_committed)."""
        tp = TopicPartition(topic, partition)
        with mapped(self.settings.bootstrap, f"reading the end of {topic!r}"):
            futures = self.admin.list_offsets(
                {tp: _latest()}, isolation_level=self._isolation(),
                request_timeout=ADMIN_TIMEOUT_S,
            )
            return max(int(futures[tp].result().offset), 0)

    def _isolation(self) -> Any:
        if self.settings.isolation_level == "read_committed":
            return IsolationLevel.READ_COMMITTED
        return IsolationLevel.READ_UNCOMMITTED

    # -- create / delete ---------------------------------------------------------------------

    def create(
        self,
        name: str,
        partitions: int,
        config: Mapping[str, Any] | None,
        *,
        replication_factor: int | None = None,
        storage: bool = False,
    ) -> TopicInfo:
        """Create a topic (``storage``: one of duality's own, which the
        ``topic.creation.default.*`` settings do not change)."""
        check_topic_name(name)
        wanted = {str(k): str(v) for k, v in (config or {}).items()}
        if not storage:
            wanted.update(self.settings.topic_configs)
            if self.settings.partitions is not None:
                partitions = self.settings.partitions
        TopicConfig.from_properties({k: v for k, v in wanted.items() if k in KAFKA_DEFAULTS})
        if replication_factor is None:
            replication_factor = self.settings.replication_factor
        existing = self.describe(name)
        if existing is not None:
            self._compare(existing, partitions, wanted)
            return existing
        metadata = self.cluster()
        reason = self.refusal(metadata)
        if reason is None:
            reason = self._create(name, partitions, replication_factor, wanted)
        if reason is not None:
            self._fall_back(name, partitions, wanted, reason)
        info = self.describe(name)
        if info is None:
            raise ConfigError(
                f"topic {name!r} could not be created at {self.settings.bootstrap} "
                f"({reason}) and the broker did not auto-create it; create it with "
                f"kafka-topics.sh --create --topic {name} --partitions {max(partitions, 1)} "
                f"{' '.join(f'--config {k}={v}' for k, v in wanted.items())}"
            )
        return info

    def _create(
        self, name: str, partitions: int, replication_factor: int, wanted: dict[str, str]
    ) -> str | None:
        """CreateTopics; None on success (or if it exists by now), else the refusal."""
        topic = NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            config=wanted,
        )
        futures = self.admin.create_topics(
            [topic], operation_timeout=ADMIN_TIMEOUT_S, request_timeout=ADMIN_TIMEOUT_S
        )
        try:
            futures[name].result()
        except KafkaException as exc:
            err = kafka_error(exc)
            if error_name(err) == "TOPIC_ALREADY_EXISTS":
                return None
            if error_name(err) in ("INVALID_CONFIG", "INVALID_PARTITIONS",
                                   "INVALID_REPLICATION_FACTOR"):
                raise ConfigError(
                    f"Kafka at {self.settings.bootstrap} refused to create topic {name!r}: "
                    f"{err.str()}. Check --partitions, --config and the "
                    f"kafka.topic.creation.default.* settings."
                ) from exc
            return self._refused(exc, f"creating topic {name!r}")
        return None

    def _fall_back(
        self, name: str, partitions: int, wanted: dict[str, str], reason: str
    ) -> None:
        self._auto_create(name)
        settings = ", ".join(f"{k}={v}" for k, v in wanted.items()) or "no config"
        self._warn(
            f"topic {name!r} could not be created with {partitions} partition(s) and "
            f"{settings}: {reason}. The broker auto-created it with its own defaults "
            f"(see `duality topics --describe {name}`); set its config with "
            f"kafka-configs.sh if it matters (cleanup.policy=compact for change topics)."
        )

    def _compare(self, info: TopicInfo, partitions: int, wanted: dict[str, str]) -> None:
        differences = []
        if partitions > 0 and info.partitions != partitions:
            differences.append(f"{info.partitions} partition(s), not {partitions}")
        if info.unchecked is None:
            actual = info.config.to_properties()
            for key, value in wanted.items():
                if key in actual and not _same(key, actual[key], value):
                    differences.append(f"{key}={actual[key]}, not {value}")
        if differences:
            self._warn_once(
                f"topic {info.name!r} exists with {'; '.join(differences)}; using it as it is"
            )

    def delete(self, name: str) -> None:
        metadata = self.cluster()
        if self.partitions(name, metadata) is None:
            raise ConfigError(f"topic {name!r} does not exist at {self.settings.bootstrap}")
        reason = self.refusal(metadata)
        if reason is not None:
            raise ConfigError(f"topic {name!r} cannot be deleted here: {reason}")
        futures = self.admin.delete_topics(
            [name], operation_timeout=ADMIN_TIMEOUT_S, request_timeout=ADMIN_TIMEOUT_S
        )
        with mapped(self.settings.bootstrap, f"deleting topic {name!r}"):
            futures[name].result()

    def close(self) -> None:
        self._admin = None


def _same(key: str, actual: str, wanted: str) -> bool:
    if key == "cleanup.policy":
        return sorted(actual.split(",")) == sorted(p.strip() for p in wanted.split(","))
    return actual.strip() == wanted.strip()


def _config_from_entries(entries: Mapping[str, Any]) -> tuple[TopicConfig, dict[str, str], None]:
    values: dict[str, str] = {}
    overrides: dict[str, str] = {}
    for key, entry in entries.items():
        if entry.value is None:
            continue
        if key in KAFKA_DEFAULTS:
            values[key] = entry.value
        if entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value or (
            getattr(entry.source, "value", None) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
        ):
            overrides[key] = entry.value
    return TopicConfig.from_properties(values), overrides, None


def _earliest() -> Any:
    return OffsetSpec.earliest()  # type: ignore[no-untyped-call]


def _latest() -> Any:
    return OffsetSpec.latest()  # type: ignore[no-untyped-call]
