"""What the test command's (non-editable) install runs: the capture path compiled."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import duality

SETUP = Path(__file__).resolve().parents[2] / "setup.py"


def compiled_modules() -> list[str]:
    paths = re.findall(r'"src/(duality/[\w/]+)\.py"', SETUP.read_text())
    return [p.replace("/", ".") for p in paths]


def test_setup_lists_modules_that_exist() -> None:
    modules = compiled_modules()
    assert "duality.sources.postgres.pgoutput" in modules
    for module in modules:
        importlib.import_module(module)


def test_the_capture_path_is_compiled_in_a_built_install() -> None:
    if os.environ.get("DUALITY_PURE_PYTHON") == "1":
        pytest.skip("DUALITY_PURE_PYTHON=1 builds pure Python")
    if Path(duality.__file__).parent.parent.name == "src":
        pytest.skip(
            "an editable install (pip install -e .) runs pure Python; the README's test "
            "command installs the package built, and checks it there"
        )
    files = {m: str(importlib.import_module(m).__file__) for m in compiled_modules()}
    pure = [m for m, file in files.items() if file.endswith(".py")]
    assert not pure, f"not compiled by mypyc in this install: {pure}"


def test_starting_a_command_does_not_import_rich() -> None:
    """rich (about 25 ms) loads only when something styled is printed: a ``--once``
    run counts its start-up."""
    assert not loaded_after(
        "rich",
        "import duality.cli as c, duality.cli.capture_commands, "
        "duality.cli.replicate_commands; c.route_library_warnings(); "
        "from duality.cli.common import say; say('x')",
    )


def test_capture_starts_replication_before_importing_psycopg3() -> None:
    """``Capture._start_early`` sends ``START_REPLICATION`` before psycopg 3 (about 0.1 s
    of imports) is loaded, so the server decodes meanwhile: nothing capture imports up to
    there may import it."""
    assert not loaded_after(
        "psycopg",
        "import duality.cli.capture_commands, duality.runtime.capture, "
        "duality.sources.postgres.replication as r; "
        "from duality.sources.postgres.config import parse_config; "
        "c = parse_config({'topic.prefix': 't'}, source='postgresql://u@h:1/d'); "
        "r.stream_options(c.protocol, 150000, c.publication_name)",
    )


def test_replicate_does_not_import_pydantic() -> None:
    """Replicate uses the decoding modules of ``duality.tables`` only; the package's API,
    which brings pydantic (about 80 ms), loads when first used."""
    assert not loaded_after(
        "pydantic",
        "import duality.cli.replicate_commands, duality.runtime.replicate, "
        "duality.sinks.postgres",
    )


def loaded_after(module: str, code: str) -> bool:
    """Whether ``module`` is imported after running ``code`` in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}\nprint({module!r} in sys.modules)"],
        capture_output=True, text=True, check=True,
    )
    return result.stdout.strip() == "True"
