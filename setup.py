"""Build hook: the capture path, and the change-event decoding of replicate and tables
(with the values replicate sends PostgreSQL), compiled to C with mypyc when a wheel is
built; and two extensions written in C: ``duality._binarycopy``, which turns snapshot
events into PostgreSQL's binary COPY rows (see ``duality.sinks.dialects.postgres_binary``),
and ``duality.log._chunks``, the embedded log's read path (see
``duality.log.sqlite_chunks.take``).

Everything else about the package is in pyproject.toml. The modules below are plain,
strictly typed Python; mypyc (part of mypy) turns them into C extensions that run the
same code with 15-25% more rows/s (bench/capture.py). Their .py files ship beside the
extensions, so nothing changes for a reader of the code.

No compiled code is built for an editable install (``pip install -e .``: an extension
beside its source would hide later edits of the source), when ``DUALITY_PURE_PYTHON=1``
is set, or where no C compiler works (the extensions are optional: the build goes on
in pure Python).
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup

COMPILED = [
    "src/duality/events/calendar.py",
    "src/duality/events/jsonbytes.py",
    "src/duality/events/model.py",
    "src/duality/events/partitioner.py",
    "src/duality/log/sqlite_batch.py",
    "src/duality/log/sqlite_chunks.py",
    "src/duality/runtime/writer.py",
    "src/duality/sinks/dialects/postgres_values.py",
    "src/duality/tables/codec.py",
    "src/duality/tables/decode.py",
    "src/duality/tables/parsing.py",
    "src/duality/tables/values.py",
    "src/duality/sources/postgres/changes.py",
    "src/duality/sources/postgres/columns.py",
    "src/duality/sources/postgres/events.py",
    "src/duality/sources/postgres/pgoutput.py",
    "src/duality/sources/postgres/replication.py",
    "src/duality/sources/postgres/spool.py",
    "src/duality/sources/postgres/tables.py",
    "src/duality/sources/postgres/types.py",
    "src/duality/sources/postgres/types_array.py",
    "src/duality/sources/postgres/types_javafloat.py",
    "src/duality/sources/postgres/types_model.py",
    "src/duality/sources/postgres/types_numeric.py",
    "src/duality/sources/postgres/types_temporal.py",
    "src/duality/sources/postgres/types_text.py",
]

#: setup.py commands that build code; metadata-only runs (egg_info, dist_info) skip
#: mypyc, which type-checks and generates C each time it is asked.
_BUILDS = {"bdist_wheel", "build", "build_ext", "install"}


def _extensions() -> list[object]:
    if os.environ.get("DUALITY_PURE_PYTHON") == "1" or not _BUILDS & set(sys.argv[1:]):
        return []
    native = [
        Extension("duality._binarycopy", ["src/duality/_binarycopy.c"], optional=True),
        Extension("duality.log._chunks", ["src/duality/log/_chunks.c"], optional=True),
    ]
    try:
        from mypyc.build import mypycify
    except ImportError:
        sys.stderr.write("duality: mypyc is not installed; building pure Python\n")
        return native
    # The modules they import are read for their types, not checked again here (the
    # test command runs mypy --strict over the whole package).
    extensions = mypycify([*COMPILED, "--follow-imports=silent"], opt_level="3")
    for extension in extensions:
        extension.optional = True  # no working C compiler: pure Python
    return [*extensions, *native]


setup(ext_modules=_extensions())
