"""Real servers that tests start themselves and stop afterwards: a throwaway PostgreSQL server (initdb and
pg_ctl on a temporary folder, a free port on 127.0.0.1) and a local S3-compatible server (moto's server
mode). Nothing is mocked; nothing needs to run before the tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


def wait_for(condition: Callable[[], bool], what: str, patience_s: float = 120.0) -> None:
    """Poll `condition` until it holds (a server's state, a process's progress); fail the test naming
    `what` if it does not within `patience_s`, which only bounds a wait that would otherwise never end."""
    deadline = time.monotonic() + patience_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    """A running server: its port, and the DSN of its `curation` database (user `curation`, no password)."""

    port: int
    folder: Path

    @property
    def dsn(self) -> str:
        return self.database_dsn("curation")

    def database_dsn(self, database: str) -> str:
        return f"postgresql://curation@127.0.0.1:{self.port}/{database}"

    def create_database(self, database: str) -> str:
        """A new empty database on this server (one per test keeps Dagster instances apart); its DSN."""
        import psycopg2

        connection = psycopg2.connect(self.dsn)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{database}"')
        finally:
            connection.close()
        return self.database_dsn(database)

    def advisory_locks(self) -> list[tuple[int, bool]]:
        """Every advisory lock on the server as (key, granted): `pg_locks` splits a bigint key into classid
        (its high 32 bits) and objid (its low 32 bits)."""
        import psycopg2

        connection = psycopg2.connect(self.dsn)
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT classid::bigint, objid::bigint, granted FROM pg_locks WHERE locktype = 'advisory'"
                )
                rows = cursor.fetchall()
        finally:
            connection.close()
        locks = []
        for high, low, granted in rows:
            unsigned = (high << 32) | low
            locks.append((unsigned - (1 << 64) if unsigned >= 1 << 63 else unsigned, bool(granted)))
        return locks

    def instance_environment(self, database: str = "curation") -> dict[str, str]:
        """The variables `deploy/dagster.yaml` reads its PostgreSQL storage from, for a database here."""
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": "curation",
            "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_DB": database,
        }


def _as_postgres_user(command: list[str]) -> list[str]:
    """initdb and the server refuse to run as root: run them as the `postgres` user then."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


#: Where Debian and Ubuntu install each major version's server programs (not on PATH there).
DEBIAN_POSTGRES_BINARIES = "/usr/lib/postgresql/*/bin"
_SERVER_TOOLS = ("initdb", "pg_ctl", "createdb")


def _major(folder: Path) -> tuple[int, ...]:
    """The version in `/usr/lib/postgresql/<version>/bin`, for picking the newest."""
    return tuple(int(part) for part in folder.parent.name.split(".") if part.isdigit())


def postgres_binaries() -> Path:
    """The folder holding PostgreSQL's initdb, pg_ctl and createdb: that of `initdb` on PATH (links
    followed, so a link to Debian's folder finds its siblings), else the newest Debian server folder."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path is not None:
        candidates.append(Path(on_path).resolve().parent)
    candidates += sorted(Path("/").glob(DEBIAN_POSTGRES_BINARIES.lstrip("/")), key=_major, reverse=True)
    for folder in candidates:
        if all(os.access(folder / tool, os.X_OK) for tool in _SERVER_TOOLS):
            return folder
    raise RuntimeError(
        f"PostgreSQL's {', '.join(_SERVER_TOOLS)} are neither on PATH nor in {DEBIAN_POSTGRES_BINARIES}: "
        "install the server (apt-get install postgresql; .ci/run does)"
    )


def _run_tool(command: list[str], what: str, log: Path | None = None) -> None:
    """Run one of PostgreSQL's programs; its own output (and the end of the server's `log`, when given)
    in the error when it fails."""
    done = subprocess.run(_as_postgres_user(command), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = done.stderr.strip() or done.stdout.strip()
        if log is not None and log.exists():
            said += "\nserver log:\n" + log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{what} failed ({done.returncode}): {said}")


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on a free port with a `curation` superuser and database, in a temporary folder
    of its own (run as root, the server's user must reach it), stopped and removed at the end, also when
    starting it or the block fails."""
    binaries = postgres_binaries()
    folder = Path(tempfile.mkdtemp(prefix="curation-postgres-"))
    data, sockets, log = folder / "data", folder / "sockets", folder / "server.log"
    try:
        sockets.mkdir()
        if os.geteuid() == 0:
            for path in (folder, sockets):
                shutil.chown(path, "postgres")
        _run_tool(
            [str(binaries / "initdb"), "-D", str(data), "-U", "curation", "--auth=trust", "-E", "UTF8"],
            "initdb",
        )
        port = free_port()
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        try:
            start = [str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]
            _run_tool(start, "starting the server", log)
            create = [str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "curation"]
            _run_tool([*create, "curation"], "createdb")
            yield PostgresServer(port, folder)
        finally:
            # A stop that finds no server (start failed) is harmless; `immediate` since nothing is kept.
            subprocess.run(
                _as_postgres_user(
                    [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
                ),
                check=False,
                capture_output=True,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class S3Server:
    """A running moto server and the environment that points fsspec (s3fs) at it."""

    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        return {
            "FSSPEC_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def create_bucket(self, name: str) -> None:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=name)


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """moto's S3-compatible server on a free port, in this process's threads, stopped at the end."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(port)
    finally:
        server.stop()
