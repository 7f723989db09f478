"""murmur2 and key placement, equal to the Java client's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duality.events.partitioner import murmur2, partition_for

# Apache Kafka's own vectors (clients' UtilsTest.testMurmur2).
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "expected"), JAVA_VECTORS.items())
def test_murmur2_equals_the_java_client(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_partition_is_positive_hash_modulo_count() -> None:
    assert partition_for(b"21", 7) == (-973932308 & 0x7FFFFFFF) % 7
    assert partition_for(b"anything", 1) == 0


def test_placement_equals_librdkafka_murmur2_random() -> None:
    """librdkafka's murmur2_random partitioner is documented to match the Java client;
    an in-process mock cluster (4 partitions) reports where each key went."""
    kafka = pytest.importorskip("confluent_kafka", reason="needs duality[kafka] (confluent-kafka)")
    placed: dict[bytes, int] = {}

    def delivered(err: object, msg: object) -> None:
        assert err is None
        placed[msg.key()] = msg.partition()  # type: ignore[attr-defined]

    producer = kafka.Producer(
        {"test.mock.num.brokers": 1, "partitioner": "murmur2_random", "log_level": 0}
    )
    keys = [b'{"id":%d}' % i for i in range(200)] + list(JAVA_VECTORS)
    for key in keys:
        producer.produce("placement", value=b"x", key=key, on_delivery=delivered)
    assert producer.flush(30) == 0
    partitions = len(producer.list_topics("placement").topics["placement"].partitions)
    assert partitions > 1
    assert placed == {key: partition_for(key, partitions) for key in keys}


@given(st.binary(max_size=64), st.integers(1, 64))
def test_partition_in_range(key: bytes, partitions: int) -> None:
    assert 0 <= partition_for(key, partitions) < partitions
    assert -(2**31) <= murmur2(key) < 2**31
