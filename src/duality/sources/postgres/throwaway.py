"""A throwaway PostgreSQL cluster: initdb into a temporary directory, start on a free
loopback port with ``wal_level=logical``, remove everything on :meth:`close`.

Used by ``duality demo``, the test fixtures and the benchmarks. The server binaries
are taken from ``pg_config --bindir``, the ``PATH``, or ``/usr/lib/postgresql/*/bin``.
PostgreSQL refuses to run as root, so when we are root the server runs as the
unprivileged ``postgres`` user (or ``nobody`` where that user does not exist).

The postmaster is started with a parent-death signal: if the process that started it
dies, even by ``kill -9``, the server shuts down immediately instead of outliving it.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from duality.errors import ConfigError, Unavailable

#: An unusual server time zone (UTC+12:45, +13:45 in summer) catches code that
#: reads or writes times in the server's zone instead of UTC.
UNUSUAL_TIMEZONE = "Pacific/Chatham"

_BINARIES = ("initdb", "postgres", "pg_ctl")
_PR_SET_PDEATHSIG = 1


def find_bindir() -> Path | None:
    """Return the directory holding ``initdb`` and ``postgres``, or None."""
    candidates: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            )
            candidates.append(out.stdout.strip())
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    candidates.extend(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))
    for directory in candidates:
        if all((Path(directory) / name).is_file() for name in _BINARIES):
            return Path(directory)
    return None


def embedded_bindir() -> Path | None:
    """The server binaries of the ``pgserver`` package from PyPI, if it is installed."""
    # Locate the package without importing it (its import does work we do not need).
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    return path if all((path / name).is_file() for name in _BINARIES) else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as, or None when not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ConfigError(
        "running as root, and neither a 'postgres' nor a 'nobody' account exists to run "
        "the throwaway PostgreSQL server as; create one with: useradd --system postgres"
    )


def _die_with_parent() -> None:
    """preexec_fn: deliver SIGQUIT (immediate shutdown) when the parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGQUIT)


@dataclass
class ThrowawayPostgres:
    """A private PostgreSQL cluster for demos, tests and benchmarks.

    ``settings`` are extra ``postgresql.conf`` lines (name → value). The cluster is
    ready when :meth:`start` returns; :meth:`close` stops it and removes its files.
    """

    settings: Mapping[str, str] = field(default_factory=dict)
    #: Lines put first in pg_hba.conf (e.g. password authentication for one role).
    hba: Sequence[str] = ()
    timezone: str = UNUSUAL_TIMEZONE
    port: int = 0
    #: Server binaries to use; found on the machine when not given.
    bindir: Path | None = None
    #: Set when the server is not the machine's own (said to the user by the caller).
    notice: str | None = field(default=None, init=False)
    root: Path = field(init=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def dsn(self, dbname: str = "postgres", user: str = "postgres") -> str:
        """A libpq keyword DSN for this server."""
        return f"host={self.host} port={self.port} dbname={dbname} user={user}"

    def url(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@{self.host}:{self.port}/{dbname}"

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        return self.root / "server.log"

    def start(self) -> ThrowawayPostgres:
        self.bindir = self.bindir or find_bindir() or self._embedded()
        if self.bindir is None:
            raise ConfigError(
                "PostgreSQL server binaries (initdb, postgres) were not found on PATH, "
                "in `pg_config --bindir` or in /usr/lib/postgresql/*/bin; install them, "
                "for example: apt-get install postgresql (or, when not root, "
                "pip install pgserver for an embedded server)"
            )
        self.root = Path(tempfile.mkdtemp(prefix="duality-pg-"))
        try:
            user = _server_user()
            if user is not None:
                os.chown(self.root, user.pw_uid, user.pw_gid)
            self._initdb(user)
            self._write_config()
            self._launch(user)
        except BaseException:  # a failure or Ctrl-C part way: leave nothing behind
            self.close()
            raise
        return self

    def _binary(self, name: str) -> str:
        if self.bindir is None:
            raise ConfigError("the throwaway PostgreSQL has not been started")
        return str(self.bindir / name)

    def _embedded(self) -> Path | None:
        """Only without any server binaries and not as root: the embedded server."""
        if os.geteuid() == 0:
            return None
        found = embedded_bindir()
        if found is not None:
            self.notice = (
                "no PostgreSQL server binaries on this machine: using the embedded server of "
                "the pgserver package instead"
            )
        return found

    def _run_as(self, user: pwd.struct_passwd | None) -> dict[str, object]:
        if user is None:
            return {}
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _initdb(self, user: pwd.struct_passwd | None) -> None:
        cmd = [
            self._binary("initdb"),
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]
        result = subprocess.run(  # type: ignore[call-overload]
            cmd, capture_output=True, cwd=self.root, **self._run_as(user), check=False
        )
        if result.returncode != 0:
            raise ConfigError(f"initdb failed: {result.stderr.decode(errors='replace')}")

    def _write_config(self) -> None:
        if not self.port:
            self.port = free_port()
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "''",
            "wal_level": "logical",
            "max_replication_slots": "32",
            "max_wal_senders": "32",
            "max_connections": "100",
            "fsync": "off",
            "full_page_writes": "off",
            "timezone": f"'{self.timezone}'",
            "log_timezone": "'UTC'",
            "shared_buffers": "128MB",
        }
        conf.update(self.settings)
        lines = "".join(f"{name} = {value}\n" for name, value in conf.items())
        with (self.datadir / "postgresql.conf").open("a") as fh:
            fh.write(lines)
        if self.hba:
            hba = self.datadir / "pg_hba.conf"
            hba.write_text("".join(f"{line}\n" for line in self.hba) + hba.read_text())

    def _launch(self, user: pwd.struct_passwd | None) -> None:
        log = self.logfile.open("ab")
        self._process = subprocess.Popen(  # type: ignore[call-overload]
            [self._binary("postgres"), "-D", str(self.datadir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
            # Runs between fork and exec; we start the server before any thread exists.
            preexec_fn=_die_with_parent,  # noqa: PLW1509
            **self._run_as(user),
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise Unavailable(
                    f"the throwaway PostgreSQL server exited during start-up; its log says:\n"
                    f"{self.server_log()[-2000:]}"
                )
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise Unavailable(
                        f"the throwaway PostgreSQL server did not accept connections within "
                        f"{timeout:.0f}s; its log is {self.logfile}"
                    ) from None
                time.sleep(0.05)

    def server_log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        """Run SQL (several statements allowed) in autocommit mode."""
        import psycopg

        with psycopg.connect(self.dsn(dbname), autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_database(self, name: str) -> str:
        """Create a database and return its DSN."""
        self.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        """Stop the server (fast shutdown), waiting for it to exit."""
        proc = self._process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        """Stop the server and start it again on the same port and data."""
        self.stop()
        self._launch(_server_user())

    def close(self) -> None:
        self.stop()
        if getattr(self, "root", None) is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
