"""Points on the command line: offsets, ISO times (UTC unless a zone is given), LSNs."""

from __future__ import annotations

import datetime as dt

import pytest

from duality.errors import ConfigError
from duality.tables.points import (
    LsnPoint,
    OffsetPoint,
    TimePoint,
    parse_point,
    show_lsn,
    show_time,
)

T0 = 1_714_564_800_000_000  # 2024-05-01T12:00:00Z in µs


@pytest.mark.parametrize(("text", "micros"), [
    ("2024-05-01T12:00:00", T0),
    ("2024-05-01 12:00:00", T0),
    ("2024-05-01T12:00:00Z", T0),
    ("2024-05-01T14:00:00+02:00", T0),
    ("2024-05-01T12:00:00.000001", T0 + 1),
    ("2024-05-01", T0 - 12 * 3_600_000_000),
    (" 2024-05-01T12:00:00 ", T0),
])
def test_times_are_source_commit_times_in_utc_unless_zoned(text: str, micros: int) -> None:
    point = parse_point(text)
    assert isinstance(point, TimePoint) and point.micros == micros
    assert show_time(micros).startswith(dt.datetime.fromtimestamp(
        micros / 1e6, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))


def test_offsets_and_lsns() -> None:
    assert parse_point("41") == OffsetPoint({None: 41}, "41")
    assert parse_point("0:41,1:17") == OffsetPoint({0: 41, 1: 17}, "0:41,1:17")
    lsn = parse_point("0/16B3748")
    assert lsn == LsnPoint(0x16B3748, "0/16B3748")
    assert parse_point("A/1").lsn == (10 << 32) | 1  # type: ignore[union-attr]
    assert show_lsn((10 << 32) | 0x16B3748) == "A/16B3748"
    assert show_time(T0) == "2024-05-01T12:00:00.000000Z"


@pytest.mark.parametrize("text", ["", "yesterday", "-1", "0:1,0:2", "1/2/3", "12:00:00",
                                  "0/XYZ", "2024-13-01"])
def test_anything_else_is_refused_with_the_forms_that_work(text: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_point(text, "--since")
    assert "--since" in str(refused.value)
