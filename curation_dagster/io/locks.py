"""Claim locks: one holder at a time per version and index, shared by every worker that claims in a lake,
and released by the system when the holder dies, so a killed run never keeps one.

- `FileClaimLock`: an advisory `flock` on `<lake>/<version>/.<name>.lock`, for a lake on a local (or shared
  POSIX) file system; the kernel releases it with the holder's process.
- `PostgresClaimLock`: a session-level advisory lock (`pg_advisory_lock`) in a PostgreSQL database, keyed by
  version and index; the server releases it when the holder's connection ends. For a lake on object
  storage, or workers on many machines.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, Protocol

from curation_dagster.errors import LakeIOError, LakeLockUnavailable


class ClaimLock(Protocol):
    """An exclusive lock per (version, index name)."""

    def hold(self, version: str, name: str) -> contextlib.AbstractContextManager[None]:
        """Block until this process holds the lock; release it when the block ends."""
        ...

    def is_held(self, version: str, name: str) -> bool:
        """Whether another holder has the lock now (a live run); never blocks."""
        ...


class FileClaimLock:
    """`flock` on a file in the lake's version folder (`root` is a local path)."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)

    @contextlib.contextmanager
    def hold(self, version: str, name: str) -> Iterator[None]:
        import fcntl

        folder = self.root / version
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f".{name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def is_held(self, version: str, name: str) -> bool:
        import fcntl

        path = self.root / version / f".{name}.lock"
        if not path.exists():
            return False
        with open(path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False


#: A lock's connection gives up connecting after 10 s, and notices a server that vanished within a minute.
_CONNECTION_OPTIONS: Final = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
#: The server probes the holder's connection the same way, so the lock of a holder whose machine vanished
#: (power loss, a network split) is freed within about a minute, not after TCP's two hours.
_SERVER_KEEPALIVES: Final = (
    "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3"
)


def advisory_key(lake_root: str, version: str, name: str) -> int:
    """The signed 64-bit key of a lock: the lake root is part of it, so two lakes never share a lock."""
    digest = hashlib.blake2b(f"{lake_root}\0{version}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresClaimLock:
    """`pg_advisory_lock` on its own connection to `dsn`, held for the block and released with it."""

    def __init__(self, dsn: str, lake_root: str) -> None:
        self.dsn, self.lake_root = dsn, lake_root

    @contextlib.contextmanager
    def hold(self, version: str, name: str) -> Iterator[None]:
        key = advisory_key(self.lake_root, version, name)
        connection = self._connect()
        import psycopg2  # present: `_connect` said what to install otherwise

        lost = (psycopg2.OperationalError, psycopg2.InterfaceError)
        try:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(_SERVER_KEEPALIVES)
                    cursor.execute("SELECT pg_advisory_lock(%s)", (key,))
            except lost as error:
                raise LakeIOError(
                    f"the claim-lock database ended the connection waiting for {version}/{name}: {error}".strip()
                ) from error
            yield
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", (key,))
            except lost as error:
                # The server released the lock with the connection, so another worker may have claimed
                # while this block still wrote: its claims are doubtful, and running the shard again
                # rewrites them under the lock.
                raise LakeIOError(
                    f"the claim lock {version}/{name} was lost while held (its database connection ended); "
                    f"run the shard again: {error}".strip()
                ) from error
        finally:
            connection.close()

    def is_held(self, version: str, name: str) -> bool:
        """Whether another session holds the lock now: it is taken and given back at once when free."""
        key = advisory_key(self.lake_root, version, name)
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                row = cursor.fetchone()
                acquired = bool(row and row[0])
                if acquired:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", (key,))
            return not acquired
        finally:
            connection.close()

    def _connect(self) -> Any:
        """A connection of the lock's own, in autocommit (advisory locks live with the session)."""
        try:
            import psycopg2
        except ImportError as error:
            raise LakeLockUnavailable(
                "a PostgreSQL claim lock needs psycopg2: install the `postgres` extra "
                '(pip install -c constraints.txt -e ".[postgres]")'
            ) from error
        try:
            connection = psycopg2.connect(self.dsn, **_CONNECTION_OPTIONS)
        except psycopg2.OperationalError as error:
            raise LakeIOError(f"cannot reach the claim-lock database: {error}".strip()) from error
        connection.autocommit = True
        return connection
