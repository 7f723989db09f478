"""Names in the table store: the store's own ``duality:`` names (hidden columns, its tables)
in any ASCII case, and the columns of keys and values that are not JSON objects, never
take or share a name with what a user writes (no PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from duality.errors import ConfigError
from duality.tables import TableStore, define_aggregate, open_table, parse_spec
from tests.integration.test_tables_cli import duality, lines, produce


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'log.db'}"


def table_json(url: str, name: str) -> list[Any]:
    return lines(duality("table", name, "--log", url, "--json").stdout)


def message(result: Any) -> str:
    """stderr as one line (messages may be wrapped to the terminal)."""
    assert b"Traceback" not in result.stderr
    return " ".join(result.stderr.decode().split())


# -- the store's hidden columns, in any case ------------------------------------------


def test_fields_named_like_hidden_columns_in_any_case_keep_their_values(url: str) -> None:
    first = {"id": 1, "Duality:Dead": 5, "DUALITY:POS": 6, "duality:dead": 7, "name": "a"}
    produce(url, "things", [{"key": {"id": 1}, "value": first}])
    assert table_json(url, "things") == [first]
    later = {"id": 2, "Duality:Dead": 8, "DUALITY:POS": 9, "duality:dead": 10, "name": "b",
             "Duality:Pos": 11}  # a column added to the existing table
    produce(url, "things", [{"key": {"id": 2}, "value": later}])
    assert table_json(url, "things") == [{**first, "Duality:Pos": None}, later]


def test_an_aggregate_filter_works_beside_a_field_named_like_its_index(url: str) -> None:
    produce(url, "things", [{"key": {"id": i}, "value": {"id": i, "Duality:I": i * 10,
                                                         "owner": "a"}} for i in (1, 2)])
    made = duality("aggregate", "agg", "--from", "things", "--log", url, "--group-by", "owner",
                   "--select", "count(*) as n", "--select", 'sum("Duality:I") as total',
                   "--where", "id > 1", "--json")
    assert lines(made.stdout) == [{"owner": "a", "n": 1, "total": 20}]
    produce(url, "things", [{"key": {"id": 3}, "value": {"id": 3, "Duality:I": 30,
                                                         "owner": "a"}}])
    assert len(table_json(url, "things")) == 3  # applying runs the filter on the new rows
    assert table_json(url, "agg") == [{"owner": "a", "n": 2, "total": 50}]


def test_aggregate_columns_named_like_its_hidden_columns(url: str) -> None:
    produce(url, "things", [{"key": {"id": 1}, "value": {"id": 1, "Duality:Group": "a", "n": 1}}])
    made = duality("aggregate", "by_group", "--from", "things", "--log", url,
                   "--group-by", "Duality:Group", "--select", 'count(*) as "DUALITY:STATE"',
                   "--select", 'sum(n) as "Duality:Dead"', "--json")
    assert lines(made.stdout) == [{"Duality:Group": "a", "DUALITY:STATE": 1, "Duality:Dead": 1}]
    produce(url, "things", [{"key": {"id": 2}, "value": {"id": 2, "Duality:Group": "a", "n": 4}}])
    assert table_json(url, "by_group") == [
        {"Duality:Group": "a", "DUALITY:STATE": 2, "Duality:Dead": 5}]


# -- keys and values that are not objects ---------------------------------------------


def test_a_key_that_is_not_an_object_keeps_its_column_beside_a_field_named_key(
    url: str,
) -> None:
    produce(url, "plain", [{"key": "user-1", "value": {"key": "row-A", "n": 1}},
                           {"key": "user-2", "value": {"key": "row-B", "n": 2}}])
    assert table_json(url, "plain") == [{"key~2": "user-1", "key": "row-A", "n": 1},
                                        {"key~2": "user-2", "key": "row-B", "n": 2}]
    produce(url, "plain", [{"key": "user-1", "value": None}])  # deletes by the record key
    with open_table("plain", log=url) as table:
        assert table.key == ("key~2",)
        assert table.get("user-1") is None
        assert table.get(**{"key~2": "user-2"}) == {"key~2": "user-2", "key": "row-B", "n": 2}
    produce(url, "usual", [{"key": "user-1", "value": {"n": 1}}])  # no clash: as always
    assert table_json(url, "usual") == [{"key": "user-1", "n": 1}]


def test_a_value_that_is_not_an_object_keeps_its_column_beside_a_key_field_named_value(
    url: str,
) -> None:
    produce(url, "plain", [{"key": {"value": 1}, "value": "payload"},
                           {"key": {"value": 2}, "value": 7}])
    assert table_json(url, "plain") == [{"value": 1, "value~2": "payload"},
                                        {"value": 2, "value~2": 7}]
    produce(url, "usual", [{"key": {"id": 1}, "value": "payload"}])  # no clash: as always
    produce(url, "scalars", [{"key": 2, "value": 3}])
    assert table_json(url, "usual") == [{"id": 1, "value": "payload"}]
    assert table_json(url, "scalars") == [{"key": 2, "value": 3}]


def test_a_later_field_named_like_the_key_column_is_refused(url: str) -> None:
    produce(url, "plain", [{"key": "u1", "value": {"n": 1}}], "--config",
            "cleanup.policy=delete")
    assert table_json(url, "plain") == [{"key": "u1", "n": 1}]
    produce(url, "plain", [{"key": "u2", "value": {"key": "x", "n": 2}}])
    for _ in range(2):  # the offset was not advanced: it fails again the same way
        failed = duality("table", "plain", "--log", url, check=False)
        assert failed.returncode == 5
        assert message(failed) == (
            "error: cannot apply record topic 'plain' partition 0 offset 1 key \"u2\": its "
            "value has a field 'key', but this table's column 'key' holds the record key, "
            "which is not a JSON object; one column cannot hold both. Nothing of this batch "
            "was applied and the offset was not advanced. Write these records with a key and "
            "a value that are both JSON objects (such as {\"id\": 1}), or with the field "
            "'key' renamed, to a new topic, and read that one.")
    with open_table("plain", log=url, catch_up=False) as table:
        assert list(table.select()) == [{"key": "u1", "n": 1}]


ROW = {"type": "struct", "fields": [{"field": "n", "type": "int64", "optional": True}]}
ROW_WITH_KEY = {"type": "struct", "fields": [
    {"field": "key", "type": "string", "optional": True},
    {"field": "n", "type": "int64", "optional": True}]}


def test_typed_records_keep_the_key_column_apart_and_never_move_it(url: str) -> None:
    produce(url, "typed", [{"key": "u1", "value": {"schema": ROW_WITH_KEY,
                                                  "payload": {"key": "a", "n": 1}}}])
    assert table_json(url, "typed") == [{"key~2": "u1", "key": "a", "n": 1}]
    produce(url, "typed", [{"key": "u2", "value": {"schema": ROW, "payload": {"n": 2}}}])
    failed = duality("table", "typed", "--log", url, check=False)
    assert failed.returncode == 5
    assert message(failed).startswith(
        "error: cannot apply record topic 'typed' partition 0 offset 1 key \"u2\": its value "
        "no longer has a field 'key', which would move the record key (not a JSON object) "
        "from this table's column 'key~2' to 'key', and the rows stored so far cannot "
        "follow. Nothing of this batch was applied")
    produce(url, "other", [{"key": "u1", "value": {"schema": ROW, "payload": {"n": 1}}},
                           {"key": "u2", "value": {"schema": ROW_WITH_KEY,
                                                   "payload": {"key": "b", "n": 2}}}])
    failed = duality("table", "other", "--log", url, check=False)
    assert failed.returncode == 5
    assert "its value has a field 'key', but this table's column 'key' holds the record key" \
        in message(failed)


# -- aggregate names --------------------------------------------------------------------


@pytest.mark.parametrize(("name", "instead"), [
    ("duality:rows:3", "rows:3"), ("Duality:Tables", "Tables"), ("DUALITY:", "totals"),
])
def test_aggregate_names_the_store_keeps_for_itself_are_refused(
    url: str, name: str, instead: str
) -> None:
    produce(url, "things", [{"key": {"id": 1}, "value": {"id": 1, "owner": "a"}}])
    produce(url, "other", [{"key": {"id": 1}, "value": {"id": 1, "x": 1}}])
    table_json(url, "things")
    refused = duality("aggregate", name, "--from", "things", "--log", url,
                      "--select", "count(*)", check=False)
    assert refused.returncode == 2
    assert message(refused) == (
        f"error: aggregate name {name!r} starts with 'duality:' (ignoring case), which the "
        f"table store keeps for its own tables; choose a name without it, such as {instead!r}")
    assert table_json(url, "other") == [{"id": 1, "x": 1}]


def _spec_refused(url: str, spec: Path, text: str) -> str:
    """``aggregate --spec`` of ``text`` over a topic ``things``: exit 2, and its message."""
    produce(url, "things", [{"key": {"id": 1}, "value": {"id": 1, "owner": "a"}}])
    spec.write_text(text)
    refused = duality("aggregate", "--spec", str(spec), "--log", url, check=False)
    assert refused.returncode == 2
    return message(refused)


def test_a_spec_file_with_a_reserved_aggregate_name_defines_none(
    url: str, tmp_path: Path
) -> None:
    said = _spec_refused(url, tmp_path / "aggregates.toml",
                         '[aggregates.fine]\nfrom = "things"\nselect = ["count(*)"]\n\n'
                         '[aggregates."Duality:Rows:9"]\nfrom = "things"\nselect = ["count(*)"]\n')
    assert "aggregate name 'Duality:Rows:9' starts with 'duality:'" in said
    assert duality("table", "fine", "--log", url, check=False).returncode == 2  # not defined


def test_a_spec_file_entry_is_named_by_its_table_key(url: str, tmp_path: Path) -> None:
    """``[aggregates.totals]`` names the aggregate; a ``name`` inside that says otherwise
    is refused (it used to win, defining an aggregate the file never names)."""
    spec = tmp_path / "aggregates.toml"
    assert _spec_refused(url, spec, '[aggregates.totals]\nname = "other"\nfrom = "things"\n'
                                    'select = ["count(*)"]\n') == (
        f"error: aggregate spec {spec}, [aggregates.totals]: its name is the table's key "
        f"'totals': leave out name = 'other', or rename the table")
    assert duality("table", "other", "--log", url, check=False).returncode == 2
    spec.write_text('[aggregates.totals]\nname = "totals"\nfrom = "things"\n'
                    'select = ["count(*)"]\n')
    duality("aggregate", "--spec", str(spec), "--log", url)
    assert table_json(url, "totals") == [{"count": 1}]


def test_define_aggregate_refuses_a_reserved_name(url: str, tmp_path: Path) -> None:
    produce(url, "things", [{"key": {"id": 1}, "value": {"id": 1, "owner": "a"}}])
    table_json(url, "things")
    spec = parse_spec({"name": "duality:offsets", "from": "things", "select": ["count(*)"]})
    with TableStore(f"sqlite://{tmp_path / 'log.tables.db'}") as store:
        with (pytest.raises(ConfigError, match="'duality:offsets' starts with 'duality:'"),
              store.writing("defining")):
            define_aggregate(store, spec)
        assert store.info("duality:offsets") is None


def test_an_aggregate_named_like_a_topic_table_suggests_what_works(url: str) -> None:
    produce(url, "things", [{"key": {"id": 1}, "value": {"id": 1, "owner": "a"}}])
    table_json(url, "things")
    refused = duality("aggregate", "things", "--from", "things", "--log", url,
                      "--select", "count(*)", check=False)
    assert refused.returncode == 2
    assert "already names a topic table" in message(refused)
    assert "--drop" not in message(refused)  # dropping is for aggregates only
