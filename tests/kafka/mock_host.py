"""A process hosting librdkafka's in-process mock cluster, for tests (run as a script).

    python mock_host.py [BROKERS]

Prints the cluster's bootstrap servers (``host:port,…``) on one line of stdout, then
keeps the cluster alive until stdin is closed. The cluster speaks the real Kafka
protocol on loopback ports, so clients in other processes connect to it; freezing this
process (SIGSTOP) freezes "Kafka".
"""

from __future__ import annotations

import sys

from confluent_kafka import Producer


def main(argv: list[str]) -> None:
    brokers = int(argv[0]) if argv else 3
    client = Producer({"test.mock.num.brokers": brokers, "log_level": 0})
    metadata = client.list_topics(timeout=10)
    servers = ",".join(f"{b.host}:{b.port}" for b in metadata.brokers.values())
    sys.stdout.write(servers + "\n")
    sys.stdout.flush()
    sys.stdin.read()
    client.flush(1)


if __name__ == "__main__":
    main(sys.argv[1:])
