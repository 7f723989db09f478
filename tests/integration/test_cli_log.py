"""The log commands as a user runs them: topics, produce, tail, compact."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

import orjson
import pytest


def duality(
    *args: str, stdin: bytes = b"", check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        [sys.executable, "-m", "duality", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(result.stderr.decode())
    return result


def lines(data: bytes) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'log.db'}"


def test_produce_then_tail_round_trips_json_lines(url: str) -> None:
    feed = b"\n".join(
        [
            b'{"key": {"id": 1}, "value": {"name": "a"}, "headers": {"h": "x"}}',
            b'{"key": {"id": 2}, "value": {"name": "b"}}',
            b'{"key": {"id": 1}, "value": null}',
        ]
    )
    produced = duality("produce", "accounts", "--log", url, stdin=feed)
    assert b"3 record(s) written" in produced.stderr
    out = lines(duality("tail", "accounts", "--log", url, "--from-beginning").stdout)
    assert [(r["offset"], r["key"], r["value"]) for r in out] == [
        (0, {"id": 1}, {"name": "a"}),
        (1, {"id": 2}, {"name": "b"}),
        (2, {"id": 1}, None),
    ]
    assert out[0]["headers"] == {"h": "x"}
    assert out[0]["topic"] == "accounts" and out[0]["partition"] == 0
    assert isinstance(out[0]["timestamp"], int)


def test_tail_start_points_and_max(url: str) -> None:
    feed = b"\n".join(b'{"key": %d, "value": %d}' % (i, i) for i in range(30))
    duality("produce", "t", "--log", url, stdin=feed)
    tail = lines(duality("tail", "t", "--log", url).stdout)
    assert [r["offset"] for r in tail] == list(range(20, 30))  # like tail(1): the last 10
    assert [
        r["offset"] for r in lines(duality("tail", "t", "--log", url, "--offset", "25").stdout)
    ] == [25, 26, 27, 28, 29]
    assert (
        len(lines(duality("tail", "t", "--log", url, "--from-beginning", "--max", "4").stdout)) == 4
    )


def test_partitioned_topic_needs_p_colon_n(url: str) -> None:
    duality("topics", "--log", url, "--create", "p", "--partitions", "3")
    feed = b"\n".join(b'{"key": %d, "value": %d}' % (i, i) for i in range(30))
    duality("produce", "p", "--log", url, stdin=feed)
    bad = duality("tail", "p", "--log", url, "--offset", "1", check=False)
    assert bad.returncode == 2
    assert b"P:N" in bad.stderr
    one = lines(duality("tail", "p", "--log", url, "--offset", "1:0").stdout)
    assert {r["partition"] for r in one} == {1}


def test_topics_create_describe_list_delete(url: str) -> None:
    duality(
        "topics",
        "--log",
        url,
        "--create",
        "c",
        "--config",
        "cleanup.policy=compact",
        "--config",
        "min.compaction.lag.ms=0",
    )
    described = lines(duality("topics", "--log", url, "--describe", "c", "--json").stdout)[0]
    assert described["config"]["cleanup.policy"] == "compact"  # type: ignore[index]
    listing = duality("topics", "--log", url).stdout.decode()
    assert "c  partitions=1  records=0" in listing
    duality("topics", "--log", url, "--delete", "c")
    assert duality("topics", "--log", url).stdout == b""


def test_a_group_member_with_max_commits_what_it_printed(url: str) -> None:
    feed = "\n".join(f'{{"key": {i}, "value": {i}}}' for i in range(20)).encode()
    duality("produce", "t", "--log", url, stdin=feed)
    first = lines(duality("tail", "t", "--log", url, "--group", "g", "--max", "5").stdout)
    rest = lines(duality("tail", "t", "--log", url, "--group", "g").stdout)
    assert [r["value"] for r in first] == list(range(5))
    assert [r["value"] for r in rest] == list(range(5, 20))


def test_a_topic_made_again_is_read_by_its_group_from_the_start(url: str) -> None:
    """Deleting a topic drops its groups' offsets, as Kafka does."""
    duality("produce", "t", "--log", url, stdin=b'{"key": 1, "value": 1}\n{"key": 2, "value": 2}')
    assert len(lines(duality("tail", "t", "--log", url, "--group", "g").stdout)) == 2
    duality("topics", "--log", url, "--delete", "t")
    duality("produce", "t", "--log", url, stdin=b'{"key": 3, "value": 3}')
    again = lines(duality("tail", "t", "--log", url, "--group", "g").stdout)
    assert [r["value"] for r in again] == [3]


def test_compact_command_reports_and_keeps_latest(url: str) -> None:
    duality(
        "topics",
        "--log",
        url,
        "--create",
        "c",
        "--config",
        "cleanup.policy=compact",
        "--config",
        "min.compaction.lag.ms=0",
    )
    feed = b"\n".join(b'{"key": %d, "value": %d}' % (i % 3, i) for i in range(9))
    duality("produce", "c", "--log", url, stdin=feed)
    report = duality("compact", "--log", url, "c").stdout.decode()
    assert "removed 6 superseded" in report
    kept = lines(duality("tail", "c", "--log", url, "--from-beginning").stdout)
    assert [(r["offset"], r["value"]) for r in kept] == [(6, 6), (7, 7), (8, 8)]


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (["tail", "t", "--log", "{missing}"], b"", 2, b"does not exist"),
        (
            ["produce", "t", "--log", "{url}"],
            b'{"key": 1, "value": 1}\n{"key": 2',
            2,
            b"stdin line 2 is not valid JSON",
        ),
        (["produce", "t", "--log", "{url}"], b'{"key": 1}', 2, b'has no "value"'),
        (
            ["topics", "--log", "{url}", "--create", "x", "--config", "retention.ms=soon"],
            b"",
            2,
            b"retention.ms='soon' is not a whole number",
        ),
        (
            ["topics", "--log", "{url}", "--create", "x", "--config", "retention.ms=1_000"],
            b"",
            2,
            b"retention.ms='1_000' is not a whole number",
        ),
        (["topics", "--log", "{url}", "--create", ""], b"", 2, b"topic name '' is not valid"),
        (["topics", "--log", "{url}", "--describe", ""], b"", 2, b"topic name '' is not valid"),
        (["topics", "--log", "{url}", "--delete", ""], b"", 2, b"topic name '' is not valid"),
        (
            ["topics", "--log", "{url}", "--create", "", "--config", "cleanup.policy=compact"],
            b"",
            2,
            b"topic name '' is not valid",
        ),
        (["topics", "--log", "kafkaa://h:1"], b"", 2, b"unknown scheme"),
        (["tail", "t", "--log", "{url}", "--offset", "x"], b"", 2, b"offset 'x' is not valid"),
    ],
)
def test_mistakes_get_a_clear_message_and_exit_code(
    tmp_path: Path, url: str, args: list[str], stdin: bytes, code: int, message: bytes
) -> None:
    duality("produce", "t", "--log", url, stdin=b'{"key": 0, "value": 0}')
    args = [a.format(url=url, missing=f"sqlite://{tmp_path / 'missing.db'}") for a in args]
    result = duality(*args, stdin=stdin, check=False)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert b"Traceback" not in result.stderr


def test_bad_line_keeps_the_lines_before_it(url: str) -> None:
    result = duality(
        "produce",
        "t",
        "--log",
        url,
        stdin=b'{"key": 1, "value": 1}\n{"key": 2, "value": 2}\nnope\n',
        check=False,
    )
    assert result.returncode == 2
    assert b"2 record(s) before line 3 were written" in result.stderr
    assert len(lines(duality("tail", "t", "--log", url, "--from-beginning").stdout)) == 2


def test_follow_prints_records_as_they_arrive(url: str) -> None:
    duality("produce", "t", "--log", url, stdin=b'{"key": 0, "value": 0}')
    follower = subprocess.Popen(
        [sys.executable, "-m", "duality", "tail", "t", "--log", url, "--follow", "--max", "3"],
        stdout=subprocess.PIPE,
    )
    try:
        feed = b'{"key": 1, "value": 1}\n{"key": 2, "value": 2}'
        duality("produce", "t", "--log", url, stdin=feed)
        out, _ = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert [r["value"] for r in lines(out)] == [0, 1, 2]


def _line(pipe: IO[bytes], timeout_s: float = 20) -> bytes:
    """The next line from ``pipe``, failing after ``timeout_s`` without one."""
    ready, _, _ = select.select([pipe], [], [], timeout_s)
    assert ready, f"no line within {timeout_s} s"
    return pipe.readline()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_follow_delivers_each_record_and_stops_cleanly(url: str, stop: signal.Signals) -> None:
    """Into a pipe, with Python's output buffered: each record is delivered once the
    follower has caught up, and SIGTERM or SIGINT stop it with exit 0."""
    duality("produce", "t", "--log", url, stdin=b'{"key": 0, "value": 0}')
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    follower = subprocess.Popen(
        [sys.executable, "-m", "duality", "tail", "t", "--log", url, "--follow",
         "--from-beginning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    assert follower.stdout is not None
    try:
        assert orjson.loads(_line(follower.stdout))["value"] == 0
        duality("produce", "t", "--log", url, stdin=b'{"key": 1, "value": 1}')
        assert orjson.loads(_line(follower.stdout))["value"] == 1
        follower.send_signal(stop)
        rest, err = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 0 and rest == b"" and err == b"", err


def test_every_command_has_help() -> None:
    for command in ("topics", "produce", "tail", "compact", "demo"):
        result = duality(command, "--help")
        assert b"Usage: duality " + command.encode() in result.stdout


@pytest.mark.postgres
def test_demo_runs(tmp_path: Path) -> None:
    result = duality("demo", "--keep", str(tmp_path / "demo"))
    text = result.stdout.decode()
    assert "r  demo.public.accounts" in text
    assert 'changed {"done":[false,true]}' in text
    assert "tombstone  demo.public.meeting_notes" in text
    assert b"Capture again" in result.stderr
    assert b"source and target agree on every table" in result.stderr


def test_sqlite_urls_with_four_slashes_and_odd_directories(tmp_path: Path) -> None:
    """``sqlite:////abs/path`` (SQLAlchemy's absolute form) names the same file as
    ``sqlite:///abs/path``, and a directory name may hold ``#``, ``%`` and ``?``-free
    punctuation: the log, the table store beside it and its read-only opening agree."""
    folder = tmp_path / "odd #1 %20 dir"
    folder.mkdir()
    for log_url in (f"sqlite:///{folder}/log.db", f"sqlite://{folder}/log2.db"):
        duality("produce", "accounts", "--log", log_url,
                stdin=b'{"key": {"id": 1}, "value": {"id": 1, "name": "a"}}')
        shown = duality("table", "accounts", "--log", log_url, "--json")
        assert lines(shown.stdout) == [{"id": 1, "name": "a"}], shown.stderr
    assert (folder / "log.tables.db").exists() and (folder / "log2.tables.db").exists()


def test_numbers_out_of_range_are_refused_before_anything_is_written(url: str) -> None:
    feed = (b'{"key": 1, "value": 1}\n{"key": 2, "value": 2}\n'
            b'{"key": 3, "value": 3, "timestamp": 9223372036854775808}\n')
    produced = duality("produce", "t", "--log", url, stdin=feed, check=False)
    assert produced.returncode == 2, produced.stderr
    assert b'stdin line 3: "timestamp"' in produced.stderr
    assert b"Traceback" not in produced.stderr
    kept = lines(duality("tail", "t", "--log", url, "--from-beginning").stdout)
    assert [r["value"] for r in kept] == [1, 2]  # every line before it was written
    for offset in ("9223372036854775808", "0:99999999999999999999999", "-5"):
        refused = duality("tail", "t", "--log", url, "--offset", offset, check=False)
        assert refused.returncode == 2 and b"is not valid" in refused.stderr, refused.stderr
    duality("produce", "u", "--log", url, stdin=b'{"key": 1, "value": "of u"}')
    for offset in (str(2**40), str(2**40 + 1), str(2**63 - 1)):  # past any offset a log holds
        past = duality("tail", "t", "--log", url, "--offset", offset)
        assert past.stdout == b"" and past.stderr == b"", past.stderr
