"""Epoch days and proleptic Gregorian dates, within and beyond ``datetime``'s years."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from duality.events.calendar import civil_from_days, days_from_civil

EPOCH = dt.date(1970, 1, 1)


@given(st.dates())
def test_agrees_with_datetime(date: dt.date) -> None:
    days = (date - EPOCH).days
    assert days_from_civil(date.year, date.month, date.day) == days
    assert civil_from_days(days) == (date.year, date.month, date.day)


@given(st.integers(-2_500_000_000, 2_200_000_000))
def test_round_trip_over_postgresql_range(days: int) -> None:
    year, month, day = civil_from_days(days)
    assert 1 <= month <= 12 and 1 <= day <= 31
    assert days_from_civil(year, month, day) == days


def test_year_zero_is_one_bc_and_leap() -> None:
    assert civil_from_days(days_from_civil(0, 2, 29)) == (0, 2, 29)
    assert days_from_civil(1, 1, 1) - days_from_civil(0, 1, 1) == 366
