"""``duality replicate --group NAME``: one member of a group of replicate processes.

The members join the log's consumer group ``NAME`` (:meth:`duality.log.base.Log.join_group`)
for the change topics found at start (or named with ``--topic``); Kafka gives each a share
of the partitions and moves them when a member joins or leaves. All members write the same
PostgreSQL target (:class:`~duality.sinks.shared.SharedPostgresSink`), whose offsets are the
truth; the group's committed offsets are only a hint, for monitoring.

The loop, on the caller's thread:

1. poll the member's partitions (rebalances are served inside the poll);
2. decode each topic's records into steps, as the single-process loop does, and hand the
   batch to the applier thread, which commits rows and offsets in one target transaction;
3. record the offsets of the batch committed before it in the group (the hint).

When partitions are taken away (``on_revoke``, also when the member leaves), the batch in
flight is committed first, so the next owner continues exactly after it. When partitions
are given (``on_assign``), the batch in flight is committed, the target's metadata read
again, and each partition resumes at the offset the target holds for it — the beginning
when it holds none, whatever the group committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from duality.errors import ConfigError
from duality.events.model import Record
from duality.log.base import GroupReader, OffsetMap, Partition
from duality.sinks.base import Batch, Offsets, Sink, Step

if TYPE_CHECKING:
    from duality.runtime.replicate import Applier, Replicator

POLL_S = 0.2


def check_group_options(target_url: str, *, once: bool, transactions: bool) -> None:
    """Refuse what a group member cannot do (exit code 2)."""
    if once:
        raise ConfigError("--group and --once: a group member runs until it is stopped (its "
                          "partitions then go to the other members); leave out --once, or "
                          "--group for a one-off catch-up")
    if transactions:
        raise ConfigError("--group and --transactions: a source transaction spans partitions "
                          "that different members apply; leave out one of them")
    if target_url.startswith(("sqlite:", "file:")):
        raise ConfigError("--group needs a PostgreSQL target: the members of a group write "
                          "one target database from several processes and machines")


def shared_sink(url: str) -> Sink:
    """The target at ``url``, shared with the other members of the group."""
    from duality.sinks.shared import SharedPostgresSink

    return SharedPostgresSink(url)


class GroupMember:
    """The loop of one member (see the module docstring)."""

    def __init__(self, replicator: Replicator, sink: Sink, applier: Applier) -> None:
        self.rep = replicator
        self.sink = sink
        self.applier = applier
        self._hint: dict[Partition, int] = {}

    def run(self, group: str) -> None:
        rep = self.rep
        topics = sorted(rep._topics)
        if not topics:
            rep.warn("no change topic to replicate yet; a group member subscribes to the "
                     "topics found at start (restart it, or name them with --topic)")
            return
        reader = rep.log.join_group(group, topics, self._assigned, self._revoked)
        try:
            while not rep._stop:
                records = reader.poll(POLL_S)
                if records:
                    rep._submit(self.applier, self._batch(records))
                    self._send_hint(reader)
                rep._collection.tick()
            self.applier.drain()
        finally:
            reader.close()

    def _assigned(self, partitions: Sequence[Partition]) -> OffsetMap:
        rep = self.rep
        self.applier.drain()
        stored = self.sink.applied_offsets()
        rep._tables = self.sink.tables()  # tables other members created or changed
        for name, state in list(rep._topics.items()):
            rep._add(name, state.kind)
        for tp in partitions:
            rep._offsets[tp] = stored.get(tp, (0, None))
        rep.say(f"assigned {_shown(partitions)}")
        return {tp: rep._offsets[tp][0] for tp in partitions}

    def _revoked(self, partitions: Sequence[Partition]) -> None:
        self.applier.drain()  # what was read for them is committed before they go
        for tp in partitions:
            self.rep._offsets.pop(tp, None)
            self._hint.pop(tp, None)
        self.rep.say(f"revoked {_shown(partitions)}")

    def _batch(self, records: list[Record]) -> Batch:
        """One batch of the polled records: each topic's, in partition and offset order."""
        rep = self.rep
        by_topic: dict[str, list[Record]] = {}
        for record in records:
            by_topic.setdefault(record.topic, []).append(record)
        steps: list[Step] = []
        offsets: Offsets = {}
        for topic, found in sorted(by_topic.items()):
            found.sort(key=lambda r: (r.partition, r.offset))
            carry: dict[int, bytes | None] = {
                p: c for (t, p), (_, c) in rep._offsets.items() if t == topic and c}
            decoded, carried = rep._decode(rep._topics[topic], found, carry)
            steps += decoded
            nexts = {record.partition: record.offset + 1 for record in found}
            offsets.update({(topic, p): (n, carried.get(p)) for p, n in nexts.items()})
        return Batch(steps, offsets, len(records))

    def _send_hint(self, reader: GroupReader) -> None:
        """The offsets of batches the target has committed, as the group's (a hint): the
        batch just submitted waited for the one before it."""
        if self._hint:
            reader.commit(self._hint)
        mine = set(reader.assignment())
        self._hint = {tp: o for tp, (o, _) in self.rep._offsets.items() if tp in mine}


def _shown(partitions: Sequence[Partition]) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in sorted(partitions)) or "no partitions"
