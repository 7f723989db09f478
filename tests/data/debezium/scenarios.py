"""The golden scenarios: what SQL runs before the connector starts, what runs while it
streams, and which Debezium properties differ from the common ones in ``common.json``.

Data for ``generate.py``; nothing here touches a database. Each step is one round trip
in autocommit mode, so a step holding several statements is one transaction (the simple
query protocol runs them in an implicit transaction unless they say BEGIN/COMMIT).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import type_matrix as tm


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    setup_sql: list[str]
    steps: list[str]
    connector: dict[str, str] = field(default_factory=dict)
    #: extra seconds to let Debezium emit timer-driven records after the last step
    settle_seconds: float = 1.0

    def as_json(self) -> dict[str, object]:
        return {
            "description": self.description,
            "connector": self.connector,
            "setup_sql": self.setup_sql,
            "steps": self.steps,
        }


def _type_scenario(
    name: str,
    description: str,
    families: tuple[tm.Family, ...],
    connector: dict[str, str],
    extra_steps: tuple[str, ...] = (),
) -> Scenario:
    setup, steps = tm.matrix(families)
    return Scenario(name, description, setup, [*steps, *extra_steps], connector)


def _basic_crud() -> Scenario:
    return Scenario(
        "basic_crud",
        "Default settings. Snapshot of two customers, then INSERT, UPDATE, DELETE (with "
        "tombstone) and one transaction touching two tables.",
        [
            "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, "
            "balance numeric(10,2), updated_at timestamptz, active boolean)",
            "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer, "
            "amount numeric(10,2))",
            "INSERT INTO customers VALUES (1, 'Alice', 100.50, '2024-01-02 03:04:05.678+00', "
            "true), (2, 'Bob', -3.00, '2023-12-31 23:59:59+05:30', false)",
        ],
        [
            "INSERT INTO customers VALUES (3, 'Carol', 0.10, '2024-06-01 12:00:00+00', NULL)",
            "UPDATE customers SET balance = 200.25, active = false WHERE id = 1",
            "DELETE FROM customers WHERE id = 2",
            "BEGIN; INSERT INTO customers VALUES (4, 'Dave', 42.00, now(), true); "
            "INSERT INTO orders VALUES (1, 4, 9.99), (2, 4, 0.01); "
            "UPDATE customers SET name = 'Carol B.' WHERE id = 3; COMMIT",
        ],
    )


_IDENTITY_COLUMNS = (
    "id integer PRIMARY KEY, code integer NOT NULL, c_text text NOT NULL, "
    "c_varchar varchar(20) NOT NULL, c_int integer NOT NULL, c_bigint bigint NOT NULL, "
    "c_num numeric(10,2) NOT NULL, c_double double precision NOT NULL, "
    "c_bool boolean NOT NULL, c_date date NOT NULL, c_ts timestamp NOT NULL, "
    "c_tstz timestamptz NOT NULL, c_bytea bytea NOT NULL, c_uuid uuid NOT NULL, "
    "c_jsonb jsonb NOT NULL, c_int_arr integer[] NOT NULL, c_nullable text"
)
_IDENTITY_ROW = (
    "'text {n}', 'vc {n}', {n}, {n}000000000, {n}.25, {n}.5, true, '2024-01-0{n}', "
    "'2024-01-0{n} 10:00:00', '2024-01-0{n} 10:00:00+00', '\\x0{n}', "
    "'00000000-0000-0000-0000-00000000000{n}', '{{\"n\": {n}}}', '{{{n}}}', 'note {n}'"
)


def _identity_row(row_id: int) -> str:
    return f"({row_id}, {row_id * 10}, " + _IDENTITY_ROW.format(n=row_id) + ")"


def _identity_scenario(
    name: str,
    identity: str,
    description: str,
    extra_setup: tuple[str, ...] = (),
    connector: dict[str, str] | None = None,
) -> Scenario:
    return Scenario(
        name,
        description,
        [
            f"CREATE TABLE items ({_IDENTITY_COLUMNS})",
            "CREATE UNIQUE INDEX items_code_idx ON items (code)",
            *extra_setup,
            f"ALTER TABLE items REPLICA IDENTITY {identity}",
            f"INSERT INTO items VALUES {_identity_row(1)}, {_identity_row(2)}",
        ],
        [
            f"INSERT INTO items VALUES {_identity_row(3)}",
            "UPDATE items SET c_text = 'changed', c_nullable = NULL WHERE id = 1",
            "UPDATE items SET code = 21 WHERE id = 2",
            "DELETE FROM items WHERE id = 1",
            "DELETE FROM items WHERE id = 3",
        ],
        connector or {},
    )


def _replica_identities() -> list[Scenario]:
    return [
        _identity_scenario(
            "replica_identity_default",
            "DEFAULT",
            "REPLICA IDENTITY DEFAULT (primary key). Updates carry no before image; deletes "
            "carry the key and Debezium's filler for every other column (NOT NULL columns of "
            "many types, and one nullable column).",
        ),
        _identity_scenario(
            "replica_identity_full",
            "FULL",
            "REPLICA IDENTITY FULL: updates and deletes carry the complete old row.",
        ),
        _identity_scenario(
            "replica_identity_index",
            "USING INDEX items_code_idx",
            "REPLICA IDENTITY USING INDEX on a unique index over the NOT NULL column 'code' "
            "(the primary key is still 'id', so the record key is 'id'). Includes an update "
            "of the identity column.",
        ),
        _identity_scenario(
            "replica_identity_nothing",
            "NOTHING",
            "REPLICA IDENTITY NOTHING with a publication created by hand WITH (publish = "
            "'insert'); the updates and deletes are not published, so only the insert is "
            "streamed.",
            extra_setup=(
                "CREATE PUBLICATION golden_inserts FOR TABLE items WITH (publish = 'insert')",
            ),
            connector={
                "publication.autocreate.mode": "disabled",
                "publication.name": "golden_inserts",
            },
        ),
    ]


_TOAST_BIG = "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 66) AS i)"
_TOAST_BIG2 = "(SELECT string_agg(md5((i * 7)::text), '') FROM generate_series(1, 66) AS i)"


def _toast_row(row_id: int, big: str) -> str:
    return (
        f"INSERT INTO docs (id, counter, big_text, big_bytea, big_jsonb, big_arr, "
        f"big_varchar) SELECT {row_id}, 0, b, convert_to(b, 'UTF8'), "
        f"jsonb_build_object('k', b), ARRAY[b, 'x'], b FROM {big} AS s(b)"
    )


def _toast_scenario(identity: str) -> Scenario:
    return Scenario(
        f"toast_{identity.lower()}",
        f"REPLICA IDENTITY {identity}. Columns stored out of line (STORAGE EXTERNAL, 2112 "
        "bytes of md5 hex) of types text, bytea, jsonb, text[] and varchar. Updating only "
        "'counter' leaves them unchanged, so pgoutput sends them as unchanged TOAST and "
        "Debezium substitutes its placeholder.",
        [
            "CREATE TABLE docs (id integer PRIMARY KEY, counter integer, big_text text, "
            "big_bytea bytea, big_jsonb jsonb, big_arr text[], big_varchar varchar(5000))",
            *(
                f"ALTER TABLE docs ALTER COLUMN {c} SET STORAGE EXTERNAL"
                for c in ("big_text", "big_bytea", "big_jsonb", "big_arr", "big_varchar")
            ),
            f"ALTER TABLE docs REPLICA IDENTITY {identity}",
            _toast_row(1, _TOAST_BIG),
        ],
        [
            _toast_row(2, _TOAST_BIG2),
            "UPDATE docs SET counter = counter + 1 WHERE id IN (1, 2)",
            "UPDATE docs SET big_text = 'short now', counter = 5 WHERE id = 1",
            "DELETE FROM docs WHERE id = 2",
        ],
    )


#: Array columns (and hstore) for the unchanged-TOAST placeholder: (column, type, how many
#: elements make the value stored out of line (over 2 kB), the element each big value
#: repeats, a short value the last step writes).
_TOAST_ARRAYS = (
    ("c_int", "integer[]", 700, "7", "'{1}'"),
    ("c_smallint", "smallint[]", 1300, "7::smallint", "'{1}'"),
    ("c_bigint", "bigint[]", 350, "7::bigint", "'{1}'"),
    ("c_numeric", "numeric[]", 400, "1.5::numeric", "'{1.5}'"),
    ("c_numeric_10_2", "numeric(10,2)[]", 400, "1.5::numeric(10,2)", "'{1.50}'"),
    ("c_bool", "boolean[]", 2600, "true", "'{t}'"),
    ("c_float8", "double precision[]", 350, "1.5::float8", "'{1.5}'"),
    ("c_real", "real[]", 700, "1.5::real", "'{1.5}'"),
    ("c_date", "date[]", 700, "'2024-01-01'::date", "'{2024-01-02}'"),
    ("c_timestamp", "timestamp[]", 350, "'2024-01-01 10:00'::timestamp", "'{2024-01-02 10:00}'"),
    ("c_timestamptz", "timestamptz[]", 350, "'2024-01-01 10:00+00'::timestamptz",
     "'{2024-01-02 10:00+00}'"),
    ("c_time", "time[]", 350, "'12:00'::time", "'{13:00}'"),
    ("c_timetz", "timetz[]", 250, "'12:00+02'::timetz", "'{13:00+02}'"),
    ("c_bytea", "bytea[]", 1, "decode(repeat('ab', 2600), 'hex')", "'{\\\\x01}'"),
    ("c_uuid", "uuid[]", 200, "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
     "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12}'"),
    ("c_text", "text[]", 700, "'t'::text", "'{u}'"),
    ("c_varchar", "varchar(20)[]", 700, "'v'::varchar", "'{w}'"),
    ("c_char", "char(3)[]", 700, "'c'::char(3)", "'{d}'"),
    ("c_json", "json[]", 300, "'{\"a\": 1}'::json", "ARRAY['{\"a\": 2}'::json]"),
    ("c_jsonb", "jsonb[]", 200, "'{\"a\": 1}'::jsonb", "ARRAY['{\"a\": 2}'::jsonb]"),
    ("c_enum", "mood[]", 700, "'ok'::mood", "'{happy}'"),
    ("c_inet", "inet[]", 250, "'10.0.0.1'::inet", "'{10.0.0.2}'"),
)
#: 300 pairs, over the TOAST threshold.
_TOAST_HSTORE = (
    "(SELECT hstore(array_agg('k' || g), array_agg('v' || g)) FROM generate_series(1, 300) g)"
)


def _toast_arrays_row(row_id: int) -> str:
    names = ", ".join(c for c, *_ in _TOAST_ARRAYS)
    big = ", ".join(
        f"array_fill({element}, ARRAY[{count}])" for _, _, count, element, _ in _TOAST_ARRAYS
    )
    return (
        f"INSERT INTO arrs (id, counter, {names}, c_hstore) "
        f"SELECT {row_id}, 0, {big}, {_TOAST_HSTORE}"
    )


def _toast_arrays(name: str, connector: dict[str, str], what: str) -> Scenario:
    columns = ", ".join(f"{c} {t}" for c, t, *_ in _TOAST_ARRAYS)
    short = ", ".join(f"{c} = {value}" for c, _, _, _, value in _TOAST_ARRAYS)
    return Scenario(
        name,
        "REPLICA IDENTITY DEFAULT. Array columns of many element types, and an hstore, "
        "stored out of line (STORAGE EXTERNAL, each over 2 kB; 300 hstore pairs). "
        "Updating only 'counter' leaves them unchanged, so pgoutput sends them as "
        "unchanged TOAST and Debezium substitutes its placeholder in each type's form. "
        f"The last steps rewrite row 1 with short values and delete row 2. {what}",
        [
            "CREATE EXTENSION IF NOT EXISTS hstore",
            "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')",
            f"CREATE TABLE arrs (id integer PRIMARY KEY, counter integer, {columns}, "
            "c_hstore hstore)",
            *(
                f"ALTER TABLE arrs ALTER COLUMN {c} SET STORAGE EXTERNAL"
                for c in [*(c for c, *_ in _TOAST_ARRAYS), "c_hstore"]
            ),
            "ALTER TABLE arrs REPLICA IDENTITY DEFAULT",
            _toast_arrays_row(1),
        ],
        [
            _toast_arrays_row(2),
            "UPDATE arrs SET counter = counter + 1 WHERE id IN (1, 2)",
            f"UPDATE arrs SET counter = 9, {short}, c_hstore = 'a=>b' WHERE id = 1",
            "DELETE FROM arrs WHERE id = 2",
        ],
        connector,
    )


def _pk_change() -> Scenario:
    return Scenario(
        "pk_change",
        "UPDATE of primary-key columns (single and composite keys): Debezium emits a delete "
        "with header __debezium.newkey, a tombstone, and a create with header "
        "__debezium.oldkey.",
        [
            "CREATE TABLE single (id integer PRIMARY KEY, v text)",
            "CREATE TABLE composite (a integer, b text, v text, PRIMARY KEY (a, b))",
            "INSERT INTO single VALUES (1, 'one'), (5, 'five')",
            "INSERT INTO composite VALUES (1, 'x', 'first')",
        ],
        [
            "UPDATE single SET id = 2 WHERE id = 1",
            "UPDATE single SET id = 6, v = 'six' WHERE id = 5",
            "UPDATE composite SET b = 'y' WHERE a = 1",
        ],
    )


def _truncate(name: str, description: str, connector: dict[str, str]) -> Scenario:
    return Scenario(
        name,
        description,
        [
            "CREATE TABLE a (id integer PRIMARY KEY, v text)",
            "CREATE TABLE b (id integer PRIMARY KEY, v text)",
            "INSERT INTO a VALUES (1, 'a1')",
            "INSERT INTO b VALUES (1, 'b1')",
        ],
        [
            "INSERT INTO a VALUES (2, 'a2')",
            "TRUNCATE a",
            "INSERT INTO a VALUES (3, 'a3'); INSERT INTO b VALUES (2, 'b2')",
            "TRUNCATE a, b",
            "BEGIN; INSERT INTO a VALUES (4, 'a4'); TRUNCATE b; COMMIT",
        ],
        connector,
    )


_MESSAGE_STEPS = [
    "SELECT pg_logical_emit_message(true, 'prefix', 'content')",
    "SELECT pg_logical_emit_message(false, 'nontx', 'non-transactional')",
    "BEGIN; INSERT INTO t VALUES (2, 'two'); "
    "SELECT pg_logical_emit_message(true, 'intx', 'in a transaction ü'); "
    "INSERT INTO t VALUES (3, 'three'); COMMIT",
    "SELECT pg_logical_emit_message(true, 'binary', '\\x00ff10'::bytea)",
    "SELECT pg_logical_emit_message(true, '', '')",
]


def _messages() -> Scenario:
    return Scenario(
        "logical_messages",
        "pg_logical_emit_message: transactional (alone and inside a transaction with "
        "inserts), non-transactional, binary content, empty prefix and content (op 'm').",
        [
            "CREATE TABLE t (id integer PRIMARY KEY, v text)",
            "INSERT INTO t VALUES (1, 'one')",
        ],
        list(_MESSAGE_STEPS),
    )


def _transaction_metadata() -> Scenario:
    return Scenario(
        "transaction_metadata",
        "provide.transaction.metadata=true: BEGIN/END records on golden.transaction and the "
        "'transaction' block (id, total_order, data_collection_order), including a "
        "transaction with two tables, a delete, and logical messages.",
        [
            "CREATE TABLE t (id integer PRIMARY KEY, v text)",
            "CREATE TABLE u (id integer PRIMARY KEY, v text)",
            "INSERT INTO t VALUES (1, 'one')",
        ],
        [
            "INSERT INTO t VALUES (10, 'ten')",
            "BEGIN; INSERT INTO t VALUES (4, 'four'); INSERT INTO u VALUES (1, 'u1'); "
            "INSERT INTO t VALUES (5, 'five'); UPDATE u SET v = 'u1b' WHERE id = 1; COMMIT",
            "DELETE FROM t WHERE id = 10",
            *_MESSAGE_STEPS[:3],
        ],
        {"provide.transaction.metadata": "true"},
    )


def _heartbeat() -> Scenario:
    return Scenario(
        "heartbeat",
        "heartbeat.interval.ms=500: heartbeat records on __debezium-heartbeat.golden "
        "(their number depends on timing).",
        [
            "CREATE TABLE t (id integer PRIMARY KEY, v text)",
            "INSERT INTO t VALUES (1, 'one')",
        ],
        [
            "INSERT INTO t VALUES (2, 'two')",
            "SELECT pg_sleep(1.5)",
            "INSERT INTO t VALUES (3, 'three')",
            "SELECT pg_sleep(1.5)",
        ],
        {"heartbeat.interval.ms": "500"},
        settle_seconds=2.0,
    )


def _column_filters() -> Scenario:
    return Scenario(
        "column_filters",
        "column.exclude.list, column.mask.with.5.chars, "
        "column.mask.hash.SHA-256.with.salt.somesalt (v1: hashes the Java-serialized "
        "string), column.mask.hash.v2.SHA-256.with.salt.somesalt (v2), "
        "column.truncate.to.3.chars and message.key.columns (on a table with a primary key "
        "and on one without).",
        [
            "CREATE TABLE people (id integer PRIMARY KEY, email text, email2 text, "
            "ssn varchar(11), notes text, nick varchar(20), secret text, region text)",
            "CREATE TABLE events (code text, payload text)",
            "ALTER TABLE events REPLICA IDENTITY FULL",
            "INSERT INTO people VALUES (1, 'alice@example.com', 'alice@example.com', "
            "'123-45-6789', 'long notes here', 'ally', 'hunter2', 'eu')",
            "INSERT INTO events VALUES ('e1', 'first')",
        ],
        [
            "INSERT INTO people VALUES (2, 'bob@example.com', 'bob@example.com', "
            "'987-65-4321', 'ab', 'bobby', 's3cret', 'us'), "
            "(3, '', '', '', '', '', '', 'us'), "
            "(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL), "
            "(5, 'ünï😀@example.com', 'ünï😀@example.com', 'x', '😀😀😀😀', 'é', 'z', 'eu')",
            "UPDATE people SET notes = 'ünïcödé notes', region = 'apac' WHERE id = 1",
            "DELETE FROM people WHERE id = 2",
            "INSERT INTO events VALUES ('e2', 'second')",
            "UPDATE events SET payload = 'changed' WHERE code = 'e1'",
            "DELETE FROM events WHERE code = 'e2'",
        ],
        {
            "column.exclude.list": "public.people.secret",
            "column.mask.with.5.chars": "public.people.ssn",
            "column.mask.hash.SHA-256.with.salt.somesalt": "public.people.email",
            "column.mask.hash.v2.SHA-256.with.salt.somesalt": "public.people.email2",
            "column.truncate.to.3.chars": "public.people.notes,public.people.nick",
            "message.key.columns": "public.people:id,region;public.events:code",
        },
    )


def _schema_change() -> Scenario:
    return Scenario(
        "schema_change",
        "DDL between inserts while streaming: ADD COLUMN (nullable, and NOT NULL with a "
        "default), DROP COLUMN, RENAME COLUMN, ALTER COLUMN TYPE; then update and delete.",
        [
            "CREATE TABLE evolving (id integer PRIMARY KEY, a text, b integer)",
            "INSERT INTO evolving VALUES (1, 'one', 1)",
        ],
        [
            "INSERT INTO evolving VALUES (2, 'two', 2)",
            "ALTER TABLE evolving ADD COLUMN c numeric(6,2)",
            "INSERT INTO evolving VALUES (3, 'three', 3, 3.5)",
            "ALTER TABLE evolving ADD COLUMN d text NOT NULL DEFAULT 'dflt'",
            "INSERT INTO evolving (id, a, b, c) VALUES (4, 'four', 4, 4.25)",
            "UPDATE evolving SET b = 10 WHERE id = 1",
            "ALTER TABLE evolving DROP COLUMN b",
            "INSERT INTO evolving VALUES (5, 'five', 5.5, 'e')",
            "ALTER TABLE evolving RENAME COLUMN a TO a_renamed",
            "INSERT INTO evolving VALUES (6, 'six', 6.75, 'f')",
            "ALTER TABLE evolving ALTER COLUMN c TYPE text",
            "INSERT INTO evolving VALUES (7, 'seven', 'seven-c', 'g')",
            "UPDATE evolving SET c = 'updated' WHERE id = 3",
            "DELETE FROM evolving WHERE id = 2",
        ],
    )


def _no_primary_key() -> Scenario:
    return Scenario(
        "no_primary_key",
        "Tables without a primary key: the record key is null. 'nokey_full' has REPLICA "
        "IDENTITY FULL (updates and deletes are published); 'nokey_default' is insert-only.",
        [
            "CREATE TABLE nokey_full (id integer, v text)",
            "ALTER TABLE nokey_full REPLICA IDENTITY FULL",
            "CREATE TABLE nokey_default (id integer, v text)",
            "INSERT INTO nokey_full VALUES (1, 'one'), (1, 'one')",
            "INSERT INTO nokey_default VALUES (1, 'one')",
        ],
        [
            "INSERT INTO nokey_full VALUES (2, 'two')",
            "INSERT INTO nokey_default VALUES (2, 'two')",
            "UPDATE nokey_full SET v = 'uno' WHERE id = 1",
            "DELETE FROM nokey_full WHERE id = 2",
        ],
    )


def _snapshot_markers() -> Scenario:
    return Scenario(
        "snapshot_markers",
        "Snapshot of three tables with a few rows each: source.snapshot is 'first', 'true', "
        "'first_in_data_collection', 'last_in_data_collection' and 'last'. One insert "
        "afterwards shows 'false'.",
        [
            "CREATE TABLE alpha (id integer PRIMARY KEY, v text)",
            "CREATE TABLE beta (id integer PRIMARY KEY, v text)",
            "CREATE TABLE gamma (id integer PRIMARY KEY, v text)",
            "INSERT INTO alpha VALUES (1, 'a1'), (2, 'a2'), (3, 'a3')",
            "INSERT INTO beta VALUES (1, 'b1'), (2, 'b2')",
            "INSERT INTO gamma VALUES (1, 'g1'), (2, 'g2'), (3, 'g3')",
        ],
        ["INSERT INTO beta VALUES (3, 'b3')"],
    )


_MODES = (
    (
        "decimal_string",
        {"decimal.handling.mode": "string"},
        ("numerics", "arrays", "enums_domains"),
    ),
    (
        "decimal_double",
        {"decimal.handling.mode": "double"},
        ("numerics", "arrays", "enums_domains"),
    ),
    (
        "time_adaptive_time_microseconds",
        {"time.precision.mode": "adaptive_time_microseconds"},
        ("temporals", "zoned_fractions", "arrays", "ranges"),
    ),
    (
        "time_connect",
        {"time.precision.mode": "connect"},
        ("temporals", "zoned_fractions", "arrays", "ranges"),
    ),
    ("binary_base64", {"binary.handling.mode": "base64"}, ("binaries", "misc")),
    ("binary_base64_url_safe", {"binary.handling.mode": "base64-url-safe"}, ("binaries", "misc")),
    ("binary_hex", {"binary.handling.mode": "hex"}, ("binaries", "misc")),
    ("interval_string", {"interval.handling.mode": "string"}, ("temporals",)),
    ("hstore_map", {"hstore.handling.mode": "map"}, ("extensions",)),
)

_BINARY_MESSAGE_STEPS = ("SELECT pg_logical_emit_message(true, 'bin', '\\xfbefbeffff00'::bytea)",)


def _type_scenarios() -> list[Scenario]:
    by_table = {family.table: family for family in tm.ALL_FAMILIES}
    scenarios = [
        _type_scenario(
            "types_default",
            "The whole type matrix with default settings (decimal.handling.mode=precise, "
            "time.precision.mode=adaptive, binary.handling.mode=bytes, "
            "interval.handling.mode=numeric, hstore.handling.mode=json). One table per type "
            "family, REPLICA IDENTITY FULL; rows in the snapshot, the same rows inserted "
            "while streaming (id + 100), each updated to the next row's values, then "
            "deleted.",
            tm.ALL_FAMILIES,
            {},
        )
    ]
    for name, connector, tables in _MODES:
        ((key, value),) = connector.items()
        extra = _BINARY_MESSAGE_STEPS if key == "binary.handling.mode" else ()
        scenarios.append(
            _type_scenario(
                f"types_{name}",
                f"{key}={value} over the type families {', '.join(tables)} (same rows and "
                "steps as types_default)"
                + ("; plus a logical message with binary content." if extra else "."),
                tuple(by_table[t] for t in tables),
                dict(connector),
                extra,
            )
        )
    return scenarios


def _unknown_datatypes() -> Scenario:
    return Scenario(
        "unknown_datatypes",
        "include.unknown.datatypes=true: types Debezium has no converter for (geometric "
        "types other than point, tsvector, multiranges, pg_lsn, txid_snapshot) are sent "
        "instead of being dropped. Also a two-dimensional integer array.",
        [
            "CREATE TABLE odd (id integer PRIMARY KEY, c_line line, c_lseg lseg, c_box box, "
            "c_path path, c_polygon polygon, c_circle circle, c_tsvector tsvector, "
            "c_tsquery tsquery, c_multirange int4multirange, c_pg_lsn pg_lsn, "
            "c_txid_snapshot txid_snapshot, c_int_2d integer[])",
            "ALTER TABLE odd REPLICA IDENTITY FULL",
            "INSERT INTO odd VALUES (1, '{1,-1,0}', '[(0,0),(1,1)]', '((0,0),(1,1))', "
            "'[(0,0),(1,1),(2,0)]', '((0,0),(0,1),(1,1))', '<(0,0),5>', "
            "'a fat cat:1 sat', 'fat & rat', '{[1,3), [5,7)}', '16/B374D848', "
            "'10:20:10,14,15', '{{1,2},{3,4}}'), "
            "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        ],
        [
            "INSERT INTO odd SELECT id + 100, c_line, c_lseg, c_box, c_path, c_polygon, "
            "c_circle, c_tsvector, c_tsquery, c_multirange, c_pg_lsn, c_txid_snapshot, "
            "c_int_2d FROM odd",
            "UPDATE odd SET c_line = '{2,-1,0}' WHERE id = 101",
            "DELETE FROM odd WHERE id > 100",
        ],
        {"include.unknown.datatypes": "true"},
    )


def _propagate_source_type() -> Scenario:
    return Scenario(
        "propagate_source_type",
        "column.propagate.source.type=.* : every field schema carries the parameters "
        "__debezium.source.column.type, __debezium.source.column.length and "
        "__debezium.source.column.scale (visible in events_with_schema only; the payload "
        "is unchanged).",
        [
            "CREATE TABLE typed (id integer PRIMARY KEY, c_varchar varchar(20), "
            "c_char char(5), c_text text, c_num numeric(10,2), c_num_any numeric, "
            "c_ts3 timestamp(3), c_tstz timestamptz, c_time time(0), c_bit bit(4), "
            "c_float real, c_int_arr integer[], c_jsonb jsonb NOT NULL DEFAULT '{}')",
            "INSERT INTO typed VALUES (1, 'v', 'c', 't', 1.25, 1.5, '2024-01-01 00:00:00.123', "
            "'2024-01-01 00:00:00+00', '01:02:03', B'1010', 1.5, '{1}', '{}')",
        ],
        [
            "INSERT INTO typed SELECT id + 1, c_varchar, c_char, c_text, c_num, c_num_any, "
            "c_ts3, c_tstz, c_time, c_bit, c_float, c_int_arr, c_jsonb FROM typed",
        ],
        {"column.propagate.source.type": ".*"},
    )


def _tombstones_off() -> Scenario:
    return Scenario(
        "tombstones_off",
        "tombstones.on.delete=false: deletes (also the delete half of a primary-key change) "
        "are not followed by a tombstone.",
        [
            "CREATE TABLE t (id integer PRIMARY KEY, v text)",
            "INSERT INTO t VALUES (1, 'one'), (2, 'two')",
        ],
        [
            "DELETE FROM t WHERE id = 1",
            "UPDATE t SET id = 3 WHERE id = 2",
        ],
        {"tombstones.on.delete": "false"},
    )


def _snapshot_no_data() -> Scenario:
    return Scenario(
        "snapshot_no_data",
        "snapshot.mode=no_data: existing rows are not read; only changes made after the "
        "connector started are emitted.",
        [
            "CREATE TABLE t (id integer PRIMARY KEY, v text)",
            "INSERT INTO t VALUES (1, 'one')",
        ],
        [
            "INSERT INTO t VALUES (2, 'two')",
            "UPDATE t SET v = 'uno' WHERE id = 1",
        ],
        {"snapshot.mode": "no_data"},
    )


def _naming() -> Scenario:
    return Scenario(
        "naming",
        "Topic names and filters: a non-public schema, mixed-case and quoted identifiers "
        "with a space, a dash and a dot (Debezium replaces characters that are invalid in "
        "topic names), and table.include.list selecting a subset (public.ignored is "
        "skipped).",
        [
            'CREATE SCHEMA "Sales"',
            'CREATE TABLE "Sales"."Order Items" ("Id" integer PRIMARY KEY, "Qty" integer)',
            'CREATE TABLE "Sales"."line-items.v2" (id integer PRIMARY KEY, "ÜberCol" text)',
            "CREATE TABLE public.ignored (id integer PRIMARY KEY)",
            "CREATE TABLE public.kept (id integer PRIMARY KEY)",
            'INSERT INTO "Sales"."Order Items" VALUES (1, 10)',
            'INSERT INTO "Sales"."line-items.v2" VALUES (1, \'ü\')',
            "INSERT INTO public.ignored VALUES (1)",
            "INSERT INTO public.kept VALUES (1)",
        ],
        [
            'INSERT INTO "Sales"."Order Items" VALUES (2, 20)',
            'UPDATE "Sales"."line-items.v2" SET "ÜberCol" = \'ö\' WHERE id = 1',
            "INSERT INTO public.ignored VALUES (2)",
            "INSERT INTO public.kept VALUES (2)",
        ],
        {"table.include.list": "Sales\\..*,public\\.kept"},
    )


def _partitioned() -> Scenario:
    return Scenario(
        "partitioned",
        "A partitioned table with two partitions under the default all-tables publication "
        "(publish_via_partition_root is false): which topics the snapshot and the stream "
        "use.",
        [
            "CREATE TABLE measurements (id integer, day date, v integer, "
            "PRIMARY KEY (id, day)) PARTITION BY RANGE (day)",
            "CREATE TABLE measurements_2024 PARTITION OF measurements "
            "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
            "CREATE TABLE measurements_2025 PARTITION OF measurements "
            "FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
            "INSERT INTO measurements VALUES (1, '2024-05-01', 1), (2, '2025-05-01', 2)",
        ],
        [
            "INSERT INTO measurements VALUES (3, '2024-06-01', 3), (4, '2025-06-01', 4)",
            "UPDATE measurements SET day = '2025-07-01' WHERE id = 1",
            "DELETE FROM measurements WHERE id = 2",
        ],
    )


def _generated_columns() -> Scenario:
    return Scenario(
        "generated_columns",
        "A STORED generated column and a column with an identity default: the snapshot "
        "reads the generated value, pgoutput (PostgreSQL 15) does not send generated "
        "columns while streaming.",
        [
            "CREATE TABLE gen (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "price numeric(10,2), qty integer, "
            "total numeric(12,2) GENERATED ALWAYS AS (price * qty) STORED)",
            "INSERT INTO gen (price, qty) VALUES (1.50, 2)",
        ],
        [
            "INSERT INTO gen (price, qty) VALUES (2.25, 4)",
            "UPDATE gen SET qty = 10 WHERE id = 1",
        ],
    )


def _key_types() -> Scenario:
    return Scenario(
        "key_types",
        "Primary keys of several types (composite of uuid, text, timestamptz, numeric, "
        "date; a bytea key; a varchar key with unicode): how the key JSON is written.",
        [
            "CREATE TABLE k_composite (u uuid, t text, ts timestamptz, n numeric(6,2), "
            "d date, v text, PRIMARY KEY (u, t, ts, n, d))",
            "CREATE TABLE k_bytea (k bytea PRIMARY KEY, v text)",
            "CREATE TABLE k_varchar (k varchar(10) PRIMARY KEY, v text)",
            "INSERT INTO k_composite VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'x', "
            "'2024-01-01 00:00:00+00', 1.50, '2024-01-01', 'first')",
            "INSERT INTO k_bytea VALUES ('\\x00ff', 'bin')",
            "INSERT INTO k_varchar VALUES ('ключ', 'unicode')",
        ],
        [
            "INSERT INTO k_composite VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', 'y', "
            "'2024-06-01 12:30:00.5+02', -0.01, '1999-12-31', 'second')",
            "DELETE FROM k_composite WHERE t = 'x'",
            "INSERT INTO k_bytea VALUES ('\\xfbef', 'bin2')",
            "DELETE FROM k_bytea WHERE k = '\\x00ff'",
            "UPDATE k_varchar SET v = 'changed' WHERE k = 'ключ'",
            "DELETE FROM k_varchar WHERE k = 'ключ'",
        ],
    )


def all_scenarios() -> list[Scenario]:
    return [
        _basic_crud(),
        *_type_scenarios(),
        *_replica_identities(),
        _toast_scenario("DEFAULT"),
        _toast_scenario("FULL"),
        _toast_arrays("toast_arrays", {}, "Default modes."),
        _toast_arrays(
            "toast_arrays_modes",
            {
                "hstore.handling.mode": "map",
                "decimal.handling.mode": "string",
                "binary.handling.mode": "hex",
            },
            "hstore.handling.mode=map, decimal.handling.mode=string, binary.handling.mode=hex.",
        ),
        _pk_change(),
        _truncate(
            "truncate_default",
            "TRUNCATE with default settings (skipped.operations=t): truncates are not emitted.",
            {},
        ),
        _truncate(
            "truncate_enabled",
            "TRUNCATE with skipped.operations=none: op 't' records, one per truncated table.",
            {"skipped.operations": "none"},
        ),
        _messages(),
        _transaction_metadata(),
        _heartbeat(),
        _column_filters(),
        _schema_change(),
        _no_primary_key(),
        _snapshot_markers(),
        _unknown_datatypes(),
        _propagate_source_type(),
        _tombstones_off(),
        _snapshot_no_data(),
        _naming(),
        _partitioned(),
        _generated_columns(),
        _key_types(),
    ]
