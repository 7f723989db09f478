"""The Kafka log beyond the shared contract: what other Kafka clients see, the log
commands on kafka://, settings, an unreachable cluster, consumer groups across
processes. Kafka is librdkafka's mock cluster in a helper process (tests/kafka), or a
real broker for the tests that need one (DUALITY_TEST_KAFKA)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from duality.errors import ConfigError, LogError, Unavailable
from duality.events.model import NewRecord
from duality.events.partitioner import partition_for
from duality.events.schema import ConnectField, ConnectSchema, RecordSchema, TableMeta
from duality.log import kafka_reading, open_log
from duality.log.kafka import KafkaLog
from duality.log.kafka_codec import SCHEMA_HEADER
from tests.kafka.support import NEEDS_REAL, MockKafka, consume_all, real_broker, unique

DELETE = {"cleanup.policy": "delete"}
VALUE = ConnectSchema("struct", name="shop.public.orders.Envelope", fields=(
    ConnectField("id", ConnectSchema("int32")),
    ConnectField("total", ConnectSchema("bytes", optional=True,
                                        name="org.apache.kafka.connect.data.Decimal",
                                        parameters={"scale": "2"})),
))
SCHEMA = RecordSchema(
    ConnectSchema("struct", name="shop.public.orders.Key", fields=VALUE.fields[:1]), VALUE,
    TableMeta(table="public.orders", source_types={"id": "integer", "total": "numeric(10,2)"},
              primary_key=("id",), key_columns=("id",), replica_identity="default"),
)


@pytest.fixture(scope="module")
def mock() -> Iterator[MockKafka]:
    cluster = MockKafka()
    yield cluster
    cluster.stop()


@pytest.fixture
def kafka_log(mock: MockKafka) -> Iterator[KafkaLog]:
    with KafkaLog(mock.url, warn=lambda _m: None) as log:
        yield log


def duality(*args: str, stdin: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "duality", *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout, check=False)


# -- what other Kafka clients see ----------------------------------------------------------------


def test_a_plain_consumer_reads_connect_json_with_types_and_murmur2_placement(
    kafka_log: KafkaLog, mock: MockKafka
) -> None:
    topic = unique()
    count = kafka_log.create_topic(topic, 1, DELETE).partitions
    sid = kafka_log.register_schema(SCHEMA)
    kafka_log.append(
        NewRecord(topic, orjson.dumps({"id": i}), orjson.dumps({"id": i, "total": "AMg="}),
                  headers=(("__debezium.newkey", b'{"id":0}'),), schema_id=sid)
        for i in range(50)
    )
    kafka_log.append([NewRecord(topic, b'{"id":7}', None, schema_id=sid)])
    kafka_log.flush()
    messages = consume_all(mock.bootstrap, topic)
    assert len(messages) == 51
    fingerprint = SCHEMA.fingerprint().encode()
    for message in messages:
        assert message.partition() == partition_for(message.key(), count)
        assert message.headers()[0] == (SCHEMA_HEADER, fingerprint)
        if message.value() is None:
            assert message.key() == b'{"id":7}'
            continue
        assert message.headers()[1] == ("__debezium.newkey", b'{"id":0}')
        value = orjson.loads(message.value())
        assert value["schema"] == VALUE.to_json()
        assert value["payload"]["total"] == "AMg="
        assert message.key() == orjson.dumps({"id": value["payload"]["id"]})
    schemas = consume_all(mock.bootstrap, kafka_log.settings.schemas_topic)
    assert any(orjson.loads(m.key()) == SCHEMA.fingerprint() and
               RecordSchema.from_json(orjson.loads(m.value())) == SCHEMA for m in schemas)


def test_payload_only_values_keep_types_for_duality_readers(mock: MockKafka) -> None:
    topic = unique()
    with KafkaLog(mock.url, {"value.converter.schemas.enable": "false"},
                  warn=lambda _m: None) as log:
        log.create_topic(topic, 1, DELETE)
        sid = log.register_schema(SCHEMA)
        log.append([NewRecord(topic, b'{"id":1}', b'{"id":1,"total":"AMg="}', schema_id=sid,
                              partition=0)])
        log.flush()
    [message] = consume_all(mock.bootstrap, topic)
    assert orjson.loads(message.value()) == {"id": 1, "total": "AMg="}
    with KafkaLog(mock.url, warn=lambda _m: None) as reader:
        [record] = reader.read(topic, 0, 0, 10)
        assert record.value == b'{"id":1,"total":"AMg="}'
        assert reader.schema(record.schema_id or 0) == SCHEMA


def test_records_other_writers_wrote_are_read_with_their_schema(mock: MockKafka) -> None:
    """Debezium on Connect (JSON converter, schemas on) writes no duality header: the
    schema comes from the value; without it, the reader says what cannot be known."""
    topic = unique()
    producer = Producer({"bootstrap.servers": mock.bootstrap, "log_level": 0})
    key = {"schema": SCHEMA.key.to_json() if SCHEMA.key else None, "payload": {"id": 5}}
    value = {"schema": VALUE.to_json(), "payload": {"id": 5, "total": "AMg="}}
    producer.produce(topic, orjson.dumps(value), orjson.dumps(key), partition=0)
    producer.produce(topic, b'{"id":6,"total":"AMg="}', b'{"id":6}', partition=0)
    assert producer.flush(10) == 0
    warnings: list[str] = []
    with KafkaLog(mock.url, warn=warnings.append) as log:
        with_schema, without = log.read(topic, 0, 0, 10)
        assert with_schema.key == b'{"id":5}'
        assert orjson.loads(with_schema.value or b"") == {"id": 5, "total": "AMg="}
        assert log.schema(with_schema.schema_id or 0).value == VALUE
        assert without.schema_id is None and without.value == b'{"id":6,"total":"AMg="}'
    assert any("cannot be recovered" in w and topic in w for w in warnings)


def test_positions_are_in_kafka_connects_offsets_layout_both_ways(
    kafka_log: KafkaLog, mock: MockKafka
) -> None:
    name = orjson.dumps([unique("connector"), {"server": "shop"}]).decode()
    offset = {"lsn": 24_023_128, "lsn_proc": 24_023_128, "lsn_commit": 24_023_000,
              "txId": 555, "ts_usec": 1_700_000_000_000_000}
    kafka_log.flush(positions={name: offset})
    topic = kafka_log.settings.offsets_topic
    mine = [m for m in consume_all(mock.bootstrap, topic) if m.key() == name.encode()]
    assert [orjson.loads(m.value()) for m in mine] == [offset]
    count = len(kafka_log.end_offsets(topic))
    assert mine[0].partition() == partition_for(name.encode(), count)
    # What Debezium on Connect stores for its connector, duality reads:
    debezium = orjson.dumps([unique("debezium"), {"server": "shop"}])
    producer = Producer({"bootstrap.servers": mock.bootstrap, "log_level": 0})
    producer.produce(topic, b'{"lsn":99,"txId":7,"ts_usec":1}', debezium,
                     partition=partition_for(debezium, count))
    assert producer.flush(10) == 0
    assert kafka_log.source_position(debezium.decode()) == {"lsn": 99, "txId": 7, "ts_usec": 1}


# -- the log commands on kafka:// ---------------------------------------------------------------


def test_log_commands_on_kafka(mock: MockKafka) -> None:
    topic = unique()
    lines = "\n".join(orjson.dumps({"key": {"id": i}, "value": {"n": i}}).decode()
                      for i in range(5))
    produced = duality("produce", topic, "--log", mock.url, "-p", "kafka.client.id=cli-test",
                       "-p", "kafka.compression.type=zstd", stdin=lines + "\n")
    assert produced.returncode == 0, produced.stderr
    assert "5 record(s) written" in produced.stderr
    assert "could not be created" in produced.stderr  # the mock: said, then auto-created
    tailed = duality("tail", topic, "--log", mock.url, "--from-beginning")
    assert tailed.returncode == 0, tailed.stderr
    rows = [orjson.loads(line) for line in tailed.stdout.splitlines()]
    assert sorted(r["value"]["n"] for r in rows) == list(range(5))
    assert all(r["topic"] == topic and r["headers"] == {} for r in rows)
    assert "without a schema" not in tailed.stderr  # plain JSON was all there was
    described = duality("topics", "--log", mock.url, "--describe", topic, "--json")
    info = orjson.loads(described.stdout)
    assert info["name"] == topic and info["records"] == 5 and info["unchecked"]
    listed = duality("topics", "--log", mock.url)
    assert topic in listed.stdout and "config not checked" in listed.stdout
    compacted = duality("compact", "--log", mock.url, topic)
    assert compacted.returncode == 0 and "compacts and expires records itself" in compacted.stderr


def test_tail_follows_on_kafka(mock: MockKafka, kafka_log: KafkaLog) -> None:
    topic = unique()
    kafka_log.create_topic(topic, 1, DELETE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "duality", "tail", topic, "--log", mock.url, "--follow",
         "--max", "3", "--with-schema"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    sid = kafka_log.register_schema(SCHEMA)
    time.sleep(1.0)
    for i in range(3):
        kafka_log.append([NewRecord(topic, orjson.dumps({"id": i}),
                                    orjson.dumps({"id": i, "total": None}), schema_id=sid)])
        kafka_log.flush()
        time.sleep(0.2)
    out, err = proc.communicate(timeout=30)
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert [r["value"]["payload"]["id"] for r in rows] == [0, 1, 2], err
    assert rows[0]["value"]["schema"] == VALUE.to_json()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-p", "kafka.acks=1"), "acks=all"),
        (("-p", "kafka.no.such.setting=1"), "no.such.setting"),
        (("-p", "security.protocol=SSL"), "kafka.KEY=VALUE"),
    ],
)
def test_bad_kafka_settings_exit_2(mock: MockKafka, args: tuple[str, ...], message: str) -> None:
    result = duality("topics", "--log", mock.url, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_kafka_settings_on_the_embedded_log_are_refused(tmp_path: Any) -> None:
    result = duality("topics", "--log", f"sqlite://{tmp_path / 'l.db'}", "-p",
                     "kafka.client.id=x")
    assert result.returncode == 2 and "Kafka log only" in result.stderr


def test_a_missing_kafka_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "duality.log.kafka", None)
    with pytest.raises(ConfigError, match=r"pip install 'duality\[kafka\]'"):
        open_log("kafka://localhost:9092")


def test_an_unreachable_cluster_is_unavailable(tmp_path: Any) -> None:
    result = duality("topics", "--log", "kafka://127.0.0.1:9", timeout=60)
    assert result.returncode == 3, result.stderr
    assert "127.0.0.1:9" in result.stderr and "unavailable" in result.stderr


# -- Kafka down while writing --------------------------------------------------------------------


def test_a_flush_while_kafka_is_down_fails_after_the_delivery_timeout_then_recovers() -> None:
    """The source must not be acknowledged: the flush raises Unavailable (it does not
    hang, it does not pretend); once Kafka is back the same records go through."""
    cluster = MockKafka()
    try:
        log = KafkaLog(cluster.url, {"delivery.timeout.ms": "2000"}, warn=lambda _m: None)
        topic = unique()
        log.create_topic(topic, 1, DELETE)
        name = orjson.dumps(["down", {"server": "x"}]).decode()
        log.append([NewRecord(topic, b'{"id":-1}', b"{}", partition=0)])
        log.flush(positions={name: {"lsn": 1}})
        records = [NewRecord(topic, orjson.dumps({"id": i}), b"{}", partition=0)
                   for i in range(100)]
        cluster.freeze()
        try:
            started = time.monotonic()
            log.append(records)
            with pytest.raises(Unavailable, match=r"did not acknowledge|unavailable"):
                log.flush(positions={name: {"lsn": 2}})
            assert time.monotonic() - started < 30
        finally:
            cluster.thaw()
        assert log.pending == 0
        assert log.source_position(name) == {"lsn": 1}
        log.append(records)
        log.flush(positions={name: {"lsn": 2}})
        keys = {r.key for r in log.read(topic, 0, 1, 1000)}
        assert keys == {r.key for r in records}
        assert log.source_position(name) == {"lsn": 2}
        log.close()
    finally:
        cluster.stop()


def test_records_kafka_does_not_deliver_in_time_are_unavailable_not_the_end(
    mock: MockKafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka says a partition ends at 50 and then delivers none of its records (a
    stalled broker; the consumer's fetches are held back here): the read fails as
    unavailable (retried, or exit 3), rather than return nothing, which a reader takes
    for the partition's end (a table store then moved past records it never applied)."""
    topic = unique()
    with KafkaLog(mock.url, warn=lambda _m: None) as log:
        log.create_topic(topic, 1, DELETE)
        log.append([NewRecord(topic, orjson.dumps({"id": i}), b"{}", partition=0)
                    for i in range(50)])
        log.flush()
    monkeypatch.setattr(kafka_reading, "WAIT_FOR_KNOWN_S", 1.0)
    monkeypatch.setattr(kafka_reading.PartitionReader, "_pump",
                        lambda _self, timeout: time.sleep(timeout))
    with KafkaLog(mock.url, warn=lambda _m: None) as reader:
        assert reader.end_offsets(topic)[0] == 50
        with pytest.raises(Unavailable, match="did not deliver the records"):
            reader.read(topic, 0, 0, 100)


def test_an_aborted_transaction_leaves_the_log_usable(mock: MockKafka) -> None:
    """Exactly-once mode: a failure inside a log transaction aborts the Kafka
    transaction (the mock does not hide aborted records from readers; a real broker
    does, see the contract suite), and the next flush works."""
    name = orjson.dumps([unique("abort"), {"server": "x"}]).decode()
    with KafkaLog(mock.url, {"exactly.once.source.support": "enabled"},
                  warn=lambda _m: None) as log:
        topic = unique()
        log.create_topic(topic, 1, DELETE)
        with pytest.raises(RuntimeError), log.transaction():
            log.append(NewRecord(topic, orjson.dumps({"id": i}), b"{}") for i in range(500))
            log.flush()
            log.append([NewRecord(topic, b'{"id":-1}', b"{}")])
            raise RuntimeError("crash mid-snapshot")
        assert log.pending == 0
        assert log.source_position(name) is None
        log.append([NewRecord(topic, b'{"id":1000}', b"{}", partition=0)])
        log.flush(positions={name: {"lsn": 7}})
        assert log.source_position(name) == {"lsn": 7}
        keys = [r.key for r in log.read(topic, 0, 0, 10_000)]
        assert keys[-1] == b'{"id":1000}' and b'{"id":-1}' not in keys


# -- consumer groups across processes ------------------------------------------------------------


#: The mock cluster settles a group only after the session timeout of a member that
#: left, so the test shortens it (a real broker rebalances on the leave request).
QUICK_GROUP = ("-p", "kafka.session.timeout.ms=6000", "-p", "kafka.heartbeat.interval.ms=500")


class Member:
    """A ``duality tail --group`` process, its output collected by a thread."""

    def __init__(self, url: str, topic: str, group: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "duality", "tail", topic, "--log", url, "--group", group,
             "--follow", *QUICK_GROUP], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.rows: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.rows.append(orjson.loads(line))

    def partitions(self) -> set[int]:
        return {r["partition"] for r in self.rows}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self._reader.join(10)


def wait_for(condition: Any, timeout: float = 60, show: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out{f': {show()}' if show else ''}"
        time.sleep(0.2)


def test_tail_group_members_share_partitions_and_take_over(
    mock: MockKafka, kafka_log: KafkaLog
) -> None:
    topic, group = unique(), unique("group")
    count = kafka_log.create_topic(topic, 4, DELETE).partitions
    assert count > 1

    def produce(first: int, n: int) -> None:
        kafka_log.append(NewRecord(topic, orjson.dumps({"id": i}), orjson.dumps({"n": i}))
                         for i in range(first, first + n))
        kafka_log.flush()

    a = Member(mock.url, topic, group)
    b = Member(mock.url, topic, group)
    try:
        produce(0, 200)
        seen = lambda: {r["value"]["n"] for r in a.rows + b.rows}  # noqa: E731
        wait_for(lambda: seen() >= set(range(200)))
        # Both took a share once the group settled (a rebalance may move partitions
        # while the first records are read, so shares can overlap a little).
        produce(200, 200)
        wait_for(lambda: seen() >= set(range(400)))
        late_a = {r["partition"] for r in a.rows if r["value"]["n"] >= 200}
        late_b = {r["partition"] for r in b.rows if r["value"]["n"] >= 200}
        assert late_a and late_b and not late_a & late_b
        assert late_a | late_b == set(range(count))
        a.stop()
        produce(400, 200)
        wait_for(lambda: {r["value"]["n"] for r in b.rows} >= set(range(400, 600)))
        assert {r["partition"] for r in b.rows if r["value"]["n"] >= 400} == set(range(count))
        # The group's committed offsets (asynchronous commits) catch up with what was read.
        ends = {(topic, p): o for p, o in kafka_log.end_offsets(topic).items()}
        wait_for(lambda: kafka_log.reader_offsets(group) == ends, timeout=30,
                 show=lambda: (kafka_log.reader_offsets(group), ends))
    finally:
        for member in (a, b):
            if member.proc.poll() is None:
                member.stop()


def test_tail_group_members_that_start_together_read_everything(mock: MockKafka) -> None:
    """Without --follow a member stops once its partitions have been quiet for two
    seconds, counted from its first assignment: joining a group takes longer than that
    (the initial rebalance delay), and a member quiet since it started left without
    reading its share."""
    topic = unique()
    with KafkaLog(mock.url, warn=lambda _m: None) as log:
        log.create_topic(topic, 4, DELETE)
        log.append([NewRecord(topic, orjson.dumps({"id": i}), orjson.dumps(i))
                    for i in range(1000)])
        log.flush()
    for round_ in range(2):
        members = [subprocess.Popen([sys.executable, "-m", "duality", "tail", topic, "--log",
                                     mock.url, "--group", f"{topic}-{round_}"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                   for _ in range(2)]
        printed = [member.communicate(timeout=120)[0] for member in members]
        values = {orjson.loads(line)["value"] for out in printed for line in out.splitlines()}
        assert values == set(range(1000)), [len(out.splitlines()) for out in printed]


def test_a_group_member_commits_what_is_pending_before_its_partitions_go(
    kafka_log: KafkaLog,
) -> None:
    """Commits are asynchronous, one request at a time: an offset committed while an
    earlier commit is in flight waits for the next poll. Leaving the group (and any
    revocation) must send it first, or the next member reads those records again."""
    topic, group = unique(), unique("group")
    kafka_log.create_topic(topic, 1, DELETE)
    kafka_log.append([NewRecord(topic, orjson.dumps({"id": i}), b"{}") for i in range(10)])
    kafka_log.flush()
    reader = kafka_log.join_group(group, [topic])
    try:
        deadline = time.monotonic() + 60
        while not reader.assignment():
            assert time.monotonic() < deadline, "never assigned"
            reader.poll(0.5)
        reader.commit({(topic, 0): 4})  # sent at once
        reader.commit({(topic, 0): 10})  # pending behind the first
    finally:
        reader.close()
    assert kafka_log.reader_offsets(group) == {(topic, 0): 10}


# -- real broker only ----------------------------------------------------------------------------


@pytest.fixture
def real() -> str:
    broker = real_broker()
    if broker is None:
        pytest.skip(NEEDS_REAL)
    return f"kafka://{broker}"


def test_a_second_exactly_once_writer_fences_the_first(real: str) -> None:
    """Zombie fencing: the mock hands out producer ids without bumping epochs."""
    settings = {"exactly.once.source.support": "enabled"}
    name = orjson.dumps([unique("fence"), {"server": "s"}]).decode()
    with KafkaLog(real, settings) as first, KafkaLog(real, settings) as second:
        topic = unique()
        first.create_topic(topic, 1, DELETE)
        first.source_position(name)
        first.append([NewRecord(topic, b'{"id":1}', b"{}")])
        first.flush(positions={name: {"lsn": 1}})
        second.source_position(name)
        second.append([NewRecord(topic, b'{"id":2}', b"{}")])
        second.flush(positions={name: {"lsn": 2}})
        first.append([NewRecord(topic, b'{"id":3}', b"{}")])
        with pytest.raises(LogError, match="took over"):
            first.flush(positions={name: {"lsn": 3}})
        assert second.source_position(name) == {"lsn": 2}


def test_change_topics_are_created_compacted(real: str) -> None:
    with KafkaLog(real, {"topic.creation.default.partitions": "3"}) as log:
        topic = unique()
        info = log.create_topic(topic, 1, {"cleanup.policy": "compact",
                                           "min.compaction.lag.ms": "604800000"})
        assert info.partitions == 3 and info.unchecked is None
        assert info.config.compacted and info.config.min_compaction_lag_ms == 604_800_000
        with pytest.raises(ConfigError, match=r"cleanup\.policy=delete"):
            log.append([NewRecord(topic, None, b"{}")])
