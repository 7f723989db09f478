"""Commands on the log itself: ``topics``, ``produce``, ``tail``, ``compact``."""

from __future__ import annotations

import io
import os
import select
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

import click
import orjson

from duality.cli.common import CONTEXT_SETTINGS, log_option, out, say
from duality.cli.log_options import log_properties_option, open_cli_log
from duality.cli.records import parse_produce_line, record_to_json
from duality.errors import ConfigError
from duality.events.model import NewRecord, Record
from duality.events.schema import RecordSchema
from duality.log.base import Log, TopicInfo
from duality.log.config import check_topic_name, parse_assignments
from duality.log.reading import StartAt, TopicReader, parse_offset

PRODUCE_BATCH = 10_000


@click.command(context_settings=CONTEXT_SETTINGS)
@log_option()
@click.option("--create", "create_name", metavar="NAME", help="Create a topic.")
@click.option("--partitions", type=click.IntRange(1), default=1, show_default=True,
              help="Partitions of the topic to create.")
@click.option("--config", "configs", multiple=True, metavar="KEY=VALUE",
              help="Topic config for --create (cleanup.policy, retention.ms, retention.bytes, "
                   "min.compaction.lag.ms, delete.retention.ms); repeatable.")
@click.option("--describe", "describe_name", metavar="NAME", help="Describe one topic.")
@click.option("--delete", "delete_name", metavar="NAME", help="Delete a topic and its records.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per topic.")
@log_properties_option()
def topics(
    log_url: str,
    create_name: str | None,
    partitions: int,
    configs: tuple[str, ...],
    describe_name: str | None,
    delete_name: str | None,
    as_json: bool,
    log_properties: tuple[str, ...],
) -> None:
    """List, create, describe or delete topics.

    Without options, lists every topic with its partitions, record count, first and
    next offset of each partition, and its config overrides. On Kafka, a topic whose
    config the brokers would not show is listed with Kafka's defaults and a note, and
    the record count is next minus first offset (an upper bound where compaction or
    transaction markers left gaps).
    """
    # ``is not None``: an empty name (``--create "$UNSET"``) is refused, not a listing.
    actions = [a for a in (create_name, describe_name, delete_name) if a is not None]
    if len(actions) > 1:
        raise ConfigError("give only one of --create, --describe and --delete")
    for name in actions:
        check_topic_name(name)
    if configs and create_name is None:
        raise ConfigError("--config applies to --create only")
    with open_cli_log(log_url, log_properties, create=create_name is not None) as log:
        if create_name is not None:
            info = log.create_topic(create_name, partitions, parse_assignments(configs))
            say(f"topic {create_name!r} ready ({info.partitions} partition(s))")
            _print_topics([info], as_json, full=True)
        elif delete_name is not None:
            log.delete_topic(delete_name)
            say(f"topic {delete_name!r} deleted")
        elif describe_name is not None:
            found = log.describe(describe_name)
            if found is None:
                raise ConfigError(f"topic {describe_name!r} does not exist in {log_url}")
            _print_topics([found], as_json, full=True)
        else:
            _print_topics(log.list_topics(), as_json, full=False)


def _print_topics(infos: list[TopicInfo], as_json: bool, *, full: bool) -> None:
    for info in infos:
        if as_json:
            out(orjson.dumps(_topic_json(info)))
            continue
        config = info.config.to_properties() if full else info.overrides
        settings = " ".join(f"{k}={v}" for k, v in config.items()) or "(defaults)"
        out(f"{info.name}  partitions={info.partitions}  records={info.records}  {settings}")
        if info.unchecked:
            out(f"  (config not checked: {info.unchecked})")
        for p in info.details:
            out(f"  partition {p.partition}: offsets {p.first_offset}..{p.next_offset} "
                f"(next {p.next_offset}), {p.records} record(s)")


def _topic_json(info: TopicInfo) -> dict[str, object]:
    return {
        "name": info.name,
        "partitions": info.partitions,
        "records": info.records,
        "config": info.config.to_properties(),
        "overrides": dict(info.overrides),
        "unchecked": info.unchecked,
        "offsets": [
            {"partition": p.partition, "first": p.first_offset, "next": p.next_offset,
             "records": p.records}
            for p in info.details
        ],
    }


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("topic")
@log_option()
@click.option("--partitions", type=click.IntRange(1), metavar="N",
              help="Partitions, if the topic has to be created (default 1); an existing "
                   "topic must have as many.")
@click.option("--config", "configs", multiple=True, metavar="KEY=VALUE",
              help="Topic config, if the topic has to be created; an existing topic must "
                   "have this config, as with topics --create. Repeatable.")
@log_properties_option()
def produce(
    topic: str, log_url: str, partitions: int | None, configs: tuple[str, ...],
    log_properties: tuple[str, ...],
) -> None:
    """Append JSON lines from stdin to TOPIC (created if needed).

    Each line is {"key": ..., "value": ..., "headers": {...}}; a null value is a
    tombstone; optional "partition" and "timestamp" (ms). Records are made durable in
    batches (on Kafka: acknowledged by every in-sync replica), at least whenever stdin
    has nothing more to read right now. A bad line stops with its number; every line
    before it has been written.
    """
    config = parse_assignments(configs) if configs else None
    with open_cli_log(log_url, log_properties) as log:
        _ensure_topic(log, topic, partitions, config)
        progress = _Progress()
        try:
            _produce_lines(log, topic, _stdin_chunks(), progress)
        except ConfigError:
            progress.written += _flush(log)
            say(f"{progress.written} record(s) before line {progress.lineno} were written "
                f"to {topic!r}")
            raise
    say(f"{progress.written} record(s) written to {topic!r}")


def _ensure_topic(
    log: Log, topic: str, partitions: int | None, config: dict[str, str] | None
) -> None:
    """Create ``topic`` if it does not exist. If it does, a --partitions or --config
    given must match it: ``create_topic`` checks that, as it does for ``topics
    --create``; what was not given is taken from the topic as it is."""
    info = log.describe(topic)
    if info is None:
        log.create_topic(topic, partitions or 1, config or {})
    elif partitions is not None or config is not None:
        log.create_topic(
            topic,
            info.partitions if partitions is None else partitions,
            dict(info.overrides) if config is None else config,
        )


@dataclass(slots=True)
class _Progress:
    """The line being written, and the records written before it."""

    lineno: int = 0
    written: int = 0


#: A line longer than this is written in a flush of its own: a record too large for the
#: log then names its line, and every line before it is written. (Shorter lines cannot
#: make a record near SQLite's 1 GB limit: re-encoding a JSON line at most quintuples it.)
PRODUCE_ALONE_BYTES = 16 << 20


def _produce_lines(
    log: Log, topic: str, chunks: Iterator[tuple[list[bytes], bool]], progress: _Progress
) -> None:
    """Append and flush every line, counting in ``progress`` (for the summary after an
    error too)."""
    for lines, more_waiting in chunks:
        for line in lines:
            progress.lineno += 1
            if line and not line.isspace():  # (no copy of a long line, unlike strip())
                record = parse_produce_line(topic, line, progress.lineno)
                if len(line) > PRODUCE_ALONE_BYTES:
                    progress.written += _flush(log)
                    progress.written += _flush_alone(log, record, progress.lineno)
                else:
                    log.append([record])
            if log.pending >= PRODUCE_BATCH:
                progress.written += _flush(log)
        if not more_waiting:
            progress.written += _flush(log)
    progress.written += _flush(log)


def _flush_alone(log: Log, record: NewRecord, lineno: int) -> int:
    """Write one record in a flush of its own; if the log refuses it, drop it (so the
    error's summary does not try again) and name its line."""
    log.append([record])
    try:
        return _flush(log)
    except ConfigError as exc:
        log.discard()
        raise ConfigError(f"stdin line {lineno}: {exc}") from exc


def _flush(log: Log) -> int:
    count = log.pending
    log.flush()
    return count


def _stdin_chunks() -> Iterator[tuple[list[bytes], bool]]:
    """Complete lines as they arrive, and whether more input is waiting right now
    (so the caller flushes whenever the producer pauses: group commit)."""
    try:
        fd = sys.stdin.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        yield sys.stdin.buffer.read().splitlines(), False
        return
    # The unfinished line's pieces, joined once its newline arrives: adding each read
    # to the line so far would copy a long line once per read (quadratic time).
    pieces: list[bytes] = []
    while data := os.read(fd, 1 << 20):
        lines = data.split(b"\n")
        if pieces and len(lines) > 1:
            pieces.append(lines[0])
            lines[0] = b"".join(pieces)
            pieces = []
        if last := lines.pop():
            pieces.append(last)
        yield lines, bool(select.select([fd], [], [], 0)[0])
    if pieces:
        yield [b"".join(pieces)], False


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("topic")
@log_option()
@click.option("--from-beginning", is_flag=True, help="Start at the first record.")
@click.option("--offset", "offset_text", metavar="N|P:N",
              help="Start at offset N (P:N on a topic with several partitions).")
@click.option("--max", "max_records", type=click.IntRange(0), metavar="N",
              help="Stop after N records.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing records as they arrive.")
@click.option("--with-schema", is_flag=True,
              help='Print key and value as {"schema", "payload"}, as Kafka Connect writes them.')
@click.option("--group", metavar="NAME",
              help="Read as a member of this group: processes with the same group share the "
                   "partitions (Kafka consumer group; rebalanced when one joins or leaves) and "
                   "continue from the group's offsets, which each printed batch advances.")
@log_properties_option()
def tail(
    topic: str,
    log_url: str,
    from_beginning: bool,
    offset_text: str | None,
    max_records: int | None,
    follow: bool,
    with_schema: bool,
    group: str | None,
    log_properties: tuple[str, ...],
) -> None:
    """Print TOPIC's records, one JSON object per line.

    Like tail(1), starts with the last 10 records of each partition unless
    --from-beginning or --offset says otherwise. Each line holds topic, partition,
    offset, timestamp (ms), key, value (the payload) and headers. With --group, starts
    where the group left off (or at the beginning) and, without --follow, stops once
    its partitions have been quiet for two seconds.
    """
    if from_beginning and offset_text:
        raise ConfigError("give either --from-beginning or --offset, not both")
    if group and (from_beginning or offset_text):
        raise ConfigError("--group continues from the group's offsets; leave out "
                          "--from-beginning and --offset")
    start = StartAt(last=None if from_beginning else 10)
    if offset_text is not None:
        partition, offset = parse_offset(offset_text)
        start = StartAt(offset=offset, partition=partition)
    if follow or group:
        # SIGTERM stops as SIGINT does: what was read is printed, and a group member
        # leaves the group at once (its partitions move to the other members now, not
        # after the group's session timeout).
        signal.signal(signal.SIGTERM, _stop_like_sigint)
    with open_cli_log(log_url, log_properties, create=False) as log:
        if max_records == 0:
            return
        records = (
            _group_records(log, group, topic, follow=follow, limit=max_records)
            if group
            else TopicReader(log, topic, start).records(follow=follow,
                                                        caught_up=sys.stdout.flush)
        )
        try:
            for printed, record in enumerate(records, start=1):
                schema = _schema(log, record.schema_id) if with_schema else None
                out(record_to_json(record, schema))
                if max_records is not None and printed >= max_records and not group:
                    break  # (a group member stops by itself, once it committed them)
        except KeyboardInterrupt:
            if not (follow or group):
                raise
        sys.stdout.flush()


GROUP_IDLE_S = 2.0


def _group_records(
    log: Log, group: str, topic: str, *, follow: bool, limit: int | None = None
) -> Iterator[Record]:
    """Records of this member's share, committing each batch once it was printed;
    ``limit``: how many to print (and commit) before stopping."""
    if log.describe(topic) is None:
        raise ConfigError(f"topic {topic!r} does not exist in {log.url}")
    reader = log.join_group(group, [topic])
    taken = 0
    try:
        idle_since: float | None = None  # quiet since: counted from the first assignment
        while True:
            batch = reader.poll(0.5)
            if batch:
                if limit is not None:
                    batch = batch[: limit - taken]
                yield from batch
                sys.stdout.flush()
                reader.commit({(r.topic, r.partition): r.offset + 1 for r in batch})
                taken += len(batch)
                if limit is not None and taken >= limit:
                    return
                idle_since = time.monotonic()
            elif not follow and reader.assignment():
                if idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= GROUP_IDLE_S:
                    return
    finally:
        reader.close()


def _stop_like_sigint(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _schema(log: Log, schema_id: int | None) -> RecordSchema | None:
    return None if schema_id is None else log.schema(schema_id)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("topic", required=False)
@log_option()
@log_properties_option()
def compact(topic: str | None, log_url: str, log_properties: tuple[str, ...]) -> None:
    """Apply cleanup policies now: compact and expire records of TOPIC (or all topics).

    Compaction keeps the latest record of each key at its original offset, drops
    tombstones older than delete.retention.ms and never touches records younger than
    min.compaction.lag.ms; retention.ms and retention.bytes expire old records of
    topics whose cleanup.policy includes delete. The embedded log is cleaned only by
    this command: schedule it (cron, a systemd timer) beside a long-running capture.
    On Kafka the brokers do this on their own schedule, so there is nothing to do.
    """
    with open_cli_log(log_url, log_properties, create=False) as log:
        for report in log.compact(topic):
            out(
                f"{report.topic}: removed {report.removed} superseded record(s), "
                f"{report.tombstones_removed} tombstone(s), {report.expired} expired record(s)"
            )


COMMANDS = (topics, produce, tail, compact)
