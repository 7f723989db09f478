"""``produce`` input lines: what is stored, and what is refused before anything is."""

from __future__ import annotations

import pytest

from duality.cli.records import parse_produce_line
from duality.errors import ConfigError


@pytest.mark.parametrize("number", ["18446744073709551616", "-9223372036854775809",
                                    "123456789012345678901234567890"])
def test_integers_beyond_64_bits_are_refused_not_rounded(number: str) -> None:
    """orjson reads them as floats: two accounts 2^64+1 and 2^64+2 would be one key."""
    line = f'{{"key": {{"account": {number}}}, "value": 1}}'.encode()
    with pytest.raises(ConfigError, match=f"line 7: the integer {number} does not fit in 64 "
                                          f"bits.*write it as a string"):
        parse_produce_line("t", line, 7)


@pytest.mark.parametrize(("text", "stored"), [
    ("18446744073709551615", b"18446744073709551615"),  # 2^64 - 1: orjson keeps it
    ("-9223372036854775808", b"-9223372036854775808"),
    ('"123456789012345678901234567890"', b'"123456789012345678901234567890"'),
    ("1234567890123456789.5", b"1.2345678901234568e+18"),  # a float stays a float
])
def test_long_numbers_that_fit_are_kept(text: str, stored: bytes) -> None:
    record = parse_produce_line("t", f'{{"key": 1, "value": {text}}}'.encode(), 1)
    assert record.value == stored
