"""Transaction-consistent batches: each source transaction applied whole, across tables.

With ``provide.transaction.metadata=true``, capture writes a BEGIN and an END record per
transaction to ``<topic.prefix>.transaction`` (END lists how many events each table got)
and marks every change event with its transaction's id. A batch here is a run of whole
transactions, read from that topic:

- each change topic partition is consumed from its offset while its records belong to
  the chosen transactions (tombstones go with the delete before them);
- a transaction whose events are not all in the log yet ends the run before it, and
  waits;
- records without a transaction (snapshot rows, or changes captured before the metadata
  was switched on) are applied in batches of their own, before the transactions after
  them; changes among them are reported, since they cannot be applied as transactions.

The batch, with the offset after the last END record, is one target transaction, so the
target never shows part of a source transaction. A transaction that lists more events
than its topics hold before the next transaction's (compaction removed some, or the
metadata is not this log's) stops with a consistency error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from duality.errors import ConfigError, GapError
from duality.events.model import Record
from duality.log.base import Log
from duality.sinks.base import Batch, Offsets, Step
from duality.tables.records import loads, parse_value

if TYPE_CHECKING:
    from duality.runtime.replicate import TopicState

Decode = Callable[
    ["TopicState", list[Record], dict[int, bytes | None]],
    tuple[list[Step], dict[int, bytes | None]],
]
_MARK = b'"transaction":'
_TOMBSTONE, _ALONE = "tombstone", "alone"
#: Transaction records read per look at the metadata topic.
_READ = 2_000


@dataclass(frozen=True, slots=True)
class Transaction:
    xid: str
    counts: Mapping[str, int]
    #: The metadata topic's offset after this transaction's END record.
    next_offset: int


@dataclass(slots=True)
class _Partition:
    topic: str
    partition: int
    start: int
    taken: list[Record] = field(default_factory=list)
    stop: str = "end"


class TransactionReader:
    """Builds transaction-consistent batches (see the module docstring)."""

    def __init__(self, log: Log, topics: Mapping[str, TopicState], warn: Callable[[str], None],
                 *, every_topic: bool = True):
        self.log = log
        self.topics = topics
        self.warn = warn
        #: Whether every change topic is applied (no ``--topic``): then a table a
        #: transaction names that no topic known here holds is looked for in the log
        #: (``missing``) before the transaction is applied.
        self.every_topic = every_topic
        self.missing: set[str] = set()
        self._looked_for: set[str] = set()
        self.metadata = self._metadata_topic()
        self._collections: dict[str, str] = {}
        self._warned: set[str] = set()
        self._metadata_end: int | None = None
        self.topics_changed()

    def _metadata_topic(self) -> str:
        prefixes = {s.kind.prefix for s in self.topics.values() if s.kind.prefix}
        if len(prefixes) != 1:
            which = ", ".join(sorted(p for p in prefixes if p)) or "none found"
            raise ConfigError(
                f"--transactions follows the transaction metadata of one connector "
                f"(topic.prefix), and the topics to apply have {which}; choose one "
                f"connector's topics with --topic"
            )
        prefix = prefixes.pop()
        name = f"{prefix}.transaction"
        info = self.log.describe(name)
        if info is None:
            raise ConfigError(
                f"--transactions needs the transaction metadata topic {name!r}, which the "
                f"log does not have: capture did not run with provide.transaction.metadata"
                f"=true. Run capture with -p provide.transaction.metadata=true (changes "
                f"captured before that cannot be applied as transactions), or replicate "
                f"without --transactions"
            )
        if info.partitions != 1:
            raise ConfigError(
                f"transaction metadata topic {name!r} has {info.partitions} partitions; "
                f"transactions can be followed in order only on one partition"
            )
        return name

    def looked_for_missing(self) -> None:
        """The log's topics were read again after :attr:`missing` tables were found:
        those no topic holds now are left out (as with ``--topic``)."""
        self._looked_for |= self.missing
        self.missing = set()

    def topics_changed(self) -> None:
        for state in self.topics.values():
            if state.kind.source is not None:
                schema, table = state.kind.source
                self._collections[f"{schema}.{table}"] = state.name

    # -- batches ----------------------------------------------------------------------

    def batch(
        self, offsets: Offsets, ends: Mapping[str, Mapping[int, int]] | None, budget: int,
        decode: Decode,
    ) -> Batch | None:
        """The next batch, or None when nothing complete is there yet. ``ends``: the
        offsets to stop at (``once``), else the log's ends."""
        loose = self._consume(self._partitions(offsets, ends), None, budget)
        if any(_has_alone(p) for p in loose):
            return self._build(loose, offsets, None, decode)
        once = ends is not None
        transactions = self._transactions(offsets, budget, once)
        if not transactions and once:
            self._check_described(loose)
        read = budget
        while transactions:
            parts = self._consume(self._partitions(offsets, ends), transactions, read)
            cut = self._complete(parts, transactions, once)
            if cut == len(transactions):
                return self._build(parts, offsets, transactions[-1].next_offset, decode)
            if cut == 0 and any(p.stop == "more" for p in parts):
                # The first transaction has more events than a batch: it is applied
                # whole all the same, in one target transaction.
                transactions, read = transactions[:1], read * 2
                continue
            transactions = transactions[:cut]
        return None

    def stop_at_end(self) -> None:
        """Apply the transactions the metadata topic describes now, and no later ones
        (``once``). Read before the change topics' ends: a transaction's END record is
        written after its events, so the ends read next hold every event of these."""
        self._metadata_end = self.log.end_offsets(self.metadata).get(0, 0)

    def _check_described(self, parts: list[_Partition]) -> None:
        """With ``once``: changes left whose transaction the metadata does not have."""
        for part in parts:
            if part.stop == "other" and not self._grown():
                at = part.taken[-1].offset + 1 if part.taken else part.start
                raise GapError(
                    f"topic {part.topic!r} partition {part.partition} offset {at} holds a "
                    f"change of a transaction that {self.metadata!r} does not describe "
                    f"(its metadata expired or was not captured); replicate without "
                    f"--transactions"
                )

    def _grown(self) -> bool:
        """Whether the metadata topic has transactions past this run's end (``once``):
        changes captured after the end was read may belong to them."""
        end = self._metadata_end
        return end is not None and self.log.end_offsets(self.metadata).get(0, 0) > end

    def _partitions(
        self, offsets: Offsets, ends: Mapping[str, Mapping[int, int]] | None
    ) -> list[tuple[_Partition, int]]:
        out = []
        for name in self.topics:
            topic_ends = ends.get(name) if ends is not None else None
            if topic_ends is None:  # following, or a topic found after the ends were read
                topic_ends = self.log.end_offsets(name)
            for partition, end in sorted(topic_ends.items()):
                start = offsets.get((name, partition), (0, None))[0]
                out.append((_Partition(name, partition, start), end))
        return out

    def _consume(
        self, partitions: list[tuple[_Partition, int]], transactions: list[Transaction] | None,
        budget: int,
    ) -> list[_Partition]:
        """Take from each partition the records that belong to ``transactions`` (None:
        records without a transaction), with the tombstones after them."""
        xids = {t.xid for t in transactions} if transactions is not None else set()
        out = []
        for part, end in partitions:
            out.append(part)
            if part.start >= end:
                continue
            records = [r for r in self.log.read(part.topic, part.partition, part.start,
                                                min(budget, end - part.start)) if r.offset < end]
            for record in records:
                kind = self._xid(record)
                wanted = kind == _ALONE if transactions is None else kind in xids
                if kind != _TOMBSTONE and not wanted:
                    part.stop = "alone" if kind == _ALONE else "other"
                    break
                part.taken.append(record)
            else:
                part.stop = "end" if not records or records[-1].offset + 1 >= end else "more"
        return out

    def _transactions(self, offsets: Offsets, budget: int, once: bool) -> list[Transaction]:
        """Complete transactions from the metadata topic's offset, up to about ``budget``
        events of the applied tables."""
        offset = offsets.get((self.metadata, 0), (0, None))[0]
        if once and self._metadata_end is None:
            self._metadata_end = self.log.end_offsets(self.metadata).get(0, 0)
        out: list[Transaction] = []
        events = 0
        while events < budget:
            records = self.log.read(self.metadata, 0, offset, _READ)
            if self._metadata_end is not None:
                records = [r for r in records if r.offset < self._metadata_end]
            if not records:
                break
            for record in records:
                offset = record.offset + 1
                value = loads(record.value) if record.value is not None else None
                if type(value) is not dict or value.get("status") != "END":
                    continue
                counts = {str(c["data_collection"]): int(c["event_count"])
                          for c in value.get("data_collections") or ()}
                out.append(Transaction(str(value["id"]).split(":", 1)[0], counts, offset))
                events += sum(n for c, n in counts.items() if c in self._collections)
                if events >= budget:
                    break
        return out

    def _complete(self, parts: list[_Partition], transactions: list[Transaction],
                  once: bool) -> int:
        """How many of ``transactions`` have all their events in ``parts``."""
        # Events are counted by their order within the transaction and table: the delete
        # and the create of a primary-key change are one change with one order.
        orders: dict[tuple[str, str], set[int]] = {}
        extra: dict[tuple[str, str], int] = {}
        for part in parts:
            for record in part.taken:
                kind = self._xid(record)
                if kind in (_TOMBSTONE, _ALONE):
                    continue
                order = _order(record)
                if order is None:
                    extra[(part.topic, kind)] = extra.get((part.topic, kind), 0) + 1
                else:
                    orders.setdefault((part.topic, kind), set()).add(order)
        counted = {key: len(orders.get(key, ())) + extra.get(key, 0)
                   for key in orders.keys() | extra.keys()}
        for index, tx in enumerate(transactions):
            for collection, expected in tx.counts.items():
                topic = self._collections.get(collection)
                if topic is None:
                    if self.every_topic and collection not in self._looked_for:
                        self.missing.add(collection)  # a table new since the topics were read
                        return index
                    continue
                found = counted.get((topic, tx.xid), 0)
                if found == expected:
                    continue
                stops = {p.stop for p in parts if p.topic == topic}
                if found < expected and stops & {"more", "alone"}:
                    return index
                if found < expected and "end" in stops and not once:
                    return index
                raise GapError(
                    f"transaction {tx.xid} lists {expected} change(s) of {collection}, and "
                    f"topic {topic!r} holds {found} of them before other records: the "
                    f"topic was compacted, or its transaction metadata is not complete. "
                    f"Replicate it without --transactions."
                )
        return len(transactions)

    def _build(
        self, parts: list[_Partition], offsets: Offsets, metadata_next: int | None,
        decode: Decode,
    ) -> Batch | None:
        steps: list[Step] = []
        new: Offsets = {}
        count = 0
        for name, state in self.topics.items():
            mine = [p for p in parts if p.topic == name and p.taken]
            if not mine:
                continue
            records = [r for p in mine for r in p.taken]
            carry = {p.partition: offsets.get((name, p.partition), (0, None))[1] for p in mine}
            topic_steps, carried = decode(state, records, carry)
            steps += topic_steps
            for part in mine:
                new[(name, part.partition)] = (part.taken[-1].offset + 1,
                                               carried.get(part.partition))
            count += len(records)
        if metadata_next is not None:
            new[(self.metadata, 0)] = (metadata_next, None)
        if not new:
            return None
        return Batch(steps, new, count)

    # -- records ----------------------------------------------------------------------

    def _xid(self, record: Record) -> str:
        """A record's transaction id (its part before ``:``), ``tombstone``, or ``alone``
        (no transaction block)."""
        value = record.value
        if value is None:
            return _TOMBSTONE
        at = value.rfind(_MARK)
        if at >= 0:
            rest = value[at + len(_MARK) : at + len(_MARK) + 64].lstrip()
            if rest.startswith(b"null"):
                return self._alone(record, value)
            if rest.startswith(b'{"id":"'):
                return rest[7:].split(b'"', 1)[0].split(b":", 1)[0].decode()
        payload: Any = parse_value(value)[0]
        block = payload.get("transaction") if type(payload) is dict else None
        if type(block) is dict and block.get("id") is not None:
            return str(block["id"]).split(":", 1)[0]
        return self._alone(record, value)

    def _alone(self, record: Record, value: bytes) -> str:
        if record.topic not in self._warned and b'"op":"r"' not in value:
            self._warned.add(record.topic)
            self.warn(
                f"topic {record.topic!r} offset {record.offset}: changes captured without "
                f"provide.transaction.metadata carry no transaction; they are applied in "
                f"batches of their own, not as source transactions"
            )
        return _ALONE


_ORDER = b'"data_collection_order":'


def _order(record: Record) -> int | None:
    """A change's ``transaction.data_collection_order``, or None where it has none."""
    value = record.value or b""
    at = value.rfind(_ORDER)
    if at < 0:
        return None
    digits = value[at + len(_ORDER) : at + len(_ORDER) + 24].lstrip()
    end = 0
    while end < len(digits) and digits[end : end + 1].isdigit():
        end += 1
    return int(digits[:end]) if end else None


def _has_alone(part: _Partition) -> bool:
    return any(r.value is not None for r in part.taken)


__all__ = ["Transaction", "TransactionReader"]
