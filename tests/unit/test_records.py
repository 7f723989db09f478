"""Record JSON is parsed exactly: integers of any size stay integers (orjson alone would
read those beyond 64 bits as floats), and the digit-run test that routes them is the
regex it replaced."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from duality.tables.records import digit_run, loads
from duality.tables.types import json_value

documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)


@given(documents)
def test_any_document_parses_to_itself(document: Any) -> None:
    data = json.dumps(document, ensure_ascii=False).encode()
    assert loads(data) == document
    assert json_value(data) == document


@given(st.binary(max_size=80) | st.text("0123456789a\"", max_size=80).map(str.encode),
       st.integers(1, 25))
def test_a_digit_run_is_found_as_the_regex_finds_it(data: bytes, length: int) -> None:
    assert digit_run(data, length) == bool(re.search(rb"[0-9]{%d}" % length, data))


def test_integers_beyond_64_bits_stay_exact() -> None:
    assert loads(b'{"a":18446744073709551617}') == {"a": 2**64 + 1}
    assert loads(b'[-123456789012345678901234567890]') == [-123456789012345678901234567890]
