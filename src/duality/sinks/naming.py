"""Where a topic's rows go: the target table named after the source table.

Topic names lose characters, so the name comes from the change events' ``source.schema``
and ``source.table``: by default the same schema and table (on a target without schemas,
SQLite, the table name alone). ``--map SOURCE=TARGET`` sends one table (``schema.table``)
or every table of a schema (``schema``) elsewhere; ``--table-prefix`` puts a prefix
before every target table name. Names with dots or other special characters are written
in double quotes, as in SQL: ``--map '"my.schema"."odd table"=public.odd'``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from duality.errors import ConfigError
from duality.sinks.base import TargetName

#: The target schema that holds replicate's own tables.
META_SCHEMA = "duality"


def split_name(text: str, what: str) -> tuple[str, ...]:
    """``a.b`` or ``"a.x".b`` → its one or two parts, quotes removed (``""`` is ``"``)."""
    parts: list[str] = []
    current: list[str] = []
    index, quoted = 0, False
    while index < len(text):
        char = text[index]
        if quoted:
            if char == '"' and text[index + 1 : index + 2] == '"':
                current.append('"')
                index += 1
            elif char == '"':
                quoted = False
            else:
                current.append(char)
        elif char == '"':
            quoted = True
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    if quoted or not 1 <= len(parts) <= 2 or not all(parts):
        raise ConfigError(
            f"{what} {text!r} is not a schema or schema.table name; write names with dots "
            f'or quotes in double quotes, e.g. "my.schema"."odd table"'
        )
    return tuple(parts)


def written(name: TargetName) -> str:
    """``name`` as ``--map`` takes it (what :func:`split_name` reads back)."""
    return ".".join(
        '"' + part.replace('"', '""') + '"' if "." in part or '"' in part else part
        for part in (name.schema, name.table) if part is not None
    )


@dataclass(frozen=True, slots=True)
class Naming:
    """Source (schema, table) → target table (see the module docstring)."""

    tables: dict[tuple[str, str], tuple[str | None, str]] = field(default_factory=dict)
    schemas: dict[str, str] = field(default_factory=dict)
    prefix: str = ""

    @classmethod
    def parse(cls, maps: Iterable[str], prefix: str = "") -> Naming:
        tables: dict[tuple[str, str], tuple[str | None, str]] = {}
        schemas: dict[str, str] = {}
        for item in maps:
            source, sep, target = item.partition("=")
            if not sep:
                raise ConfigError(
                    f"--map {item!r}: write SOURCE=TARGET, e.g. public.accounts=crm.accounts "
                    f"or public=staging"
                )
            src = split_name(source.strip(), "--map source")
            dst = split_name(target.strip(), "--map target")
            if len(src) == 2:
                tables[(src[0], src[1])] = (dst[0], dst[1]) if len(dst) == 2 else (None, dst[0])
            elif len(dst) == 1:
                schemas[src[0]] = dst[0]
            else:
                raise ConfigError(
                    f"--map {item!r}: a schema maps to a schema (public=staging), a table to "
                    f"a table (public.accounts=staging.accounts)"
                )
        return cls(tables, schemas, prefix)

    def target(self, schema: str, table: str, *, with_schemas: bool) -> TargetName:
        """The target table of source table ``schema.table``."""
        mapped = self.tables.get((schema, table))
        if mapped is not None:
            target_schema, target_table = mapped
            target_schema = target_schema or self.schemas.get(schema, schema)
        else:
            target_schema, target_table = self.schemas.get(schema, schema), table
        name = TargetName(target_schema if with_schemas else None, self.prefix + target_table)
        if with_schemas and name.schema == META_SCHEMA:
            raise ConfigError(
                f"source table {schema}.{table} would go to the schema {META_SCHEMA!r}, which "
                f"holds duality's own tables in the target; map it elsewhere, e.g. "
                f"--map {schema}=replica_{schema}"
            )
        return name
