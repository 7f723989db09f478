"""How ``duality produce`` reads stdin and what it does with the topic it writes to:
lines split across reads, long lines in linear time, a record too large for the log,
and --partitions / --config against an existing topic."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from duality.cli import log_commands
from duality.cli.log_commands import PRODUCE_ALONE_BYTES, _stdin_chunks

READ = 1 << 20  # what _stdin_chunks asks os.read for


def _lines_from(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[bytes]]:
    with path.open("rb") as raw:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw))
        return [lines for lines, _more in _stdin_chunks()]


def test_lines_split_across_reads_come_out_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A regular file is read 1 MiB at a time: a line across one boundary, a CRLF cut
    between its two bytes by the next, a line longer than a read, a last line without
    a newline."""
    first = b"a" * (READ - 5) + b"\n"  # ends 4 bytes before the first boundary
    across = b"b" * 10 + b"\n"  # crosses it
    crlf = b"c" * (2 * READ - len(first) - len(across) - 1) + b"\r\n"  # "\r" ends a read
    long = b"d" * (3 * READ + 7) + b"\n"
    data = first + across + crlf + long + b"\n" + b"e" * 9
    (tmp_path / "in").write_bytes(data)
    chunks = _lines_from(tmp_path / "in", monkeypatch)
    got = [line for lines in chunks for line in lines]
    assert got == [first[:-1], across[:-1], crlf[:-1], long[:-1], b"", b"e" * 9]
    assert got == data.split(b"\n")
    assert chunks[-1] == [b"e" * 9]  # the unfinished last line, once stdin ends


def test_a_20_mb_line_is_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    line = bytes(range(256)).replace(b"\n", b" ") * (20 * 4096)
    (tmp_path / "in").write_bytes(b"x\n" + line + b"\ny")
    got = [line for lines in _lines_from(tmp_path / "in", monkeypatch) for line in lines]
    assert got == [b"x", line, b"y"]


class _Counted(bytes):
    """What os.read returns, counting the bytes that concatenation with it copies."""

    copied = 0

    def __add__(self, other: bytes) -> bytes:
        _Counted.copied += len(self) + len(other)
        return bytes(self) + bytes(other)

    def __radd__(self, other: bytes) -> bytes:
        _Counted.copied += len(self) + len(other)
        return bytes(other) + bytes(self)


def test_a_long_line_is_not_copied_once_per_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding each read to the line so far copies the line once per read: quadratic.
    (Counted, not timed: 256 reads of a 16 MiB line copy it at most a few times.)"""
    size = 1 << 16
    reads: Iterator[bytes] = iter([b"{" * size] * 256 + [b"}\n"])
    stdin_r, stdin_w = os.pipe()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(os.fdopen(stdin_r, "rb")))
    monkeypatch.setattr(log_commands.os, "read", lambda fd, n: _Counted(next(reads, b"")))
    _Counted.copied = 0
    try:
        got = [line for lines, _more in _stdin_chunks() for line in lines]
    finally:
        os.close(stdin_w)
    assert got == [b"{" * (size * 256) + b"}"]
    assert _Counted.copied <= 2 * size * 256


# -- the command, as a user runs it -------------------------------------------------------

#: ``duality`` with the log's SQLite length limit lowered to 2 MB, so a record "too large
#: for the log" needs 2 MB rather than 1 GB.
_SMALL_LIMIT = """
import sqlite3, sys
from duality.log import sqlite_store
from duality.cli import main
opened = sqlite_store._open
def _open(*args, **kwargs):
    conn = opened(*args, **kwargs)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 2_000_000)
    return conn
sqlite_store._open = _open
sys.argv[0] = "duality"
main()
"""


def duality(
    *args: str, stdin: bytes = b"", small_limit: bool = False
) -> subprocess.CompletedProcess[bytes]:
    start = ["-c", _SMALL_LIMIT] if small_limit else ["-m", "duality"]
    return subprocess.run(
        [sys.executable, *start, *args], input=stdin, capture_output=True, timeout=60,
        check=False,
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'log.db'}"


def _values(url: str, topic: str = "t") -> list[object]:
    out = duality("tail", topic, "--log", url, "--from-beginning").stdout
    return [orjson.loads(line)["value"] for line in out.splitlines()]


def test_a_record_too_large_names_its_line_and_the_limit(url: str) -> None:
    big = b'{"key": 3, "value": "%s"}' % (b"x" * PRODUCE_ALONE_BYTES)
    feed = b'{"key": 1, "value": 1}\n{"key": 2, "value": 2}\n' + big + b'\n{"key": 4, "value": 4}\n'
    result = duality("produce", "t", "--log", url, stdin=feed, small_limit=True)
    assert result.returncode == 2, result.stderr
    assert b"stdin line 3: record too large" in result.stderr
    assert b"at most 2000000 bytes" in result.stderr
    assert b"2 record(s) before line 3 were written" in result.stderr
    assert b"damaged" not in result.stderr and b"Traceback" not in result.stderr
    assert _values(url) == [1, 2]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--partitions", "4"], b"already exists with 1 partition(s)"),
        (["--config", "cleanup.policy=compact"], b"asked for 1 partition(s) and cleanup.policy=c"),
        (["--config", "retention.mss=5"], b"unknown topic config 'retention.mss'"),
        (["--config", "retention.ms=abc"], b"retention.ms='abc' is not a whole number"),
    ],
)
def test_options_an_existing_topic_does_not_have_are_refused(
    url: str, args: list[str], fragment: bytes
) -> None:
    """As `topics --create` refuses them for an existing topic: nothing is written."""
    assert duality("produce", "t", "--log", url, stdin=b'{"key": 1, "value": 1}').returncode == 0
    result = duality("produce", "t", "--log", url, *args, stdin=b'{"key": 2, "value": 2}')
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr
    assert _values(url) == [1]


def test_options_an_existing_topic_has_are_accepted(url: str) -> None:
    made = ["--partitions", "2", "--config", "cleanup.policy=compact"]
    for args in (made, made, ["--partitions", "2"], made[2:], []):
        result = duality("produce", "t", "--log", url, *args, stdin=b'{"key": 1, "value": 1}')
        assert result.returncode == 0, (args, result.stderr)
    assert len(_values(url)) == 5
