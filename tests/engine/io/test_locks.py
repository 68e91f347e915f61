"""Claim locks against the real thing: `flock` on a local folder and `pg_advisory_lock` on a throwaway
PostgreSQL server. Holders are separate processes that write what they do to one events file, so an
order of events, not a timing, shows who held the lock when; the test sees a holder block through the
system's own list of waiters (`/proc/locks`, `pg_locks`)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

from curation_dagster.errors import LakeIOError
from curation_dagster.io.locks import ClaimLock, FileClaimLock, PostgresClaimLock, advisory_key
from tests.servers import PostgresServer, free_port, postgres_server, wait_for

VERSION, INDEX = "v", "dedup_index"

#: A holder process: takes the lock, notes it, says `held`, waits for a line on stdin, notes that it is
#: about to release, and leaves the block. Arguments: kind, DSN, lake root, events file, label.
HOLDER = """\
import sys
from curation_dagster.io.locks import FileClaimLock, PostgresClaimLock

kind, dsn, root, events, label = sys.argv[1:6]
lock = FileClaimLock(root) if kind == "file" else PostgresClaimLock(dsn, root)


def note(event: str) -> None:
    with open(events, "a", encoding="utf-8") as handle:
        handle.write(f"{label} {event}\\n")


with lock.hold("v", "dedup_index"):
    note("acquired")
    print("held", flush=True)
    sys.stdin.readline()
    note("releasing")
"""


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with postgres_server() as running:
        yield running


@dataclass
class LockKind:
    """One kind of claim lock: how to make it for a lake root and how to see a process wait for it."""

    name: str
    dsn: str
    make: Callable[[str], ClaimLock]
    waiting: Callable[[str, int], bool]
    """Whether process `pid` waits for the lock of (lake root, VERSION, INDEX)."""
    granted: Callable[[int], int]
    """How many locks of this kind process `pid` holds (for PostgreSQL: everyone, on the test's server)."""


def _flocks(pid: int, *, waiting: bool) -> int:
    """`flock` locks of process `pid` in `/proc/locks`, which marks a blocked request with `->`."""
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(("->" in line) == waiting and "FLOCK" in line and f" {pid} " in line for line in lines)


@pytest.fixture(params=["file", "postgres"])
def kind(request: pytest.FixtureRequest) -> LockKind:
    if request.param == "file":
        # Each test has one lock file per lake root, so the process says which lock it waits for.
        return LockKind(
            "file",
            "",
            FileClaimLock,
            lambda root, pid: _flocks(pid, waiting=True) > 0,
            lambda pid: _flocks(pid, waiting=False),
        )
    server: PostgresServer = request.getfixturevalue("server")

    def waiting(root: str, pid: int) -> bool:
        del pid  # pg_locks names the server's backend; only the process under test can be waiting
        return (advisory_key(root, VERSION, INDEX), False) in server.advisory_locks()

    def granted(pid: int) -> int:
        del pid  # only the test's own locks are on its server
        return sum(held for _, held in server.advisory_locks())

    return LockKind(
        "postgres", server.dsn, lambda root: PostgresClaimLock(server.dsn, root), waiting, granted
    )


def start_holder(kind: str, dsn: str, root: str, events: Path, label: str) -> subprocess.Popen[str]:
    """A holder process (HOLDER) of the lock of (root, VERSION, INDEX); `kind` is file or postgres."""
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, kind, dsn, root, str(events), label],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()


@contextlib.contextmanager
def stopped_at_the_end(*holders: subprocess.Popen[str]) -> Iterator[None]:
    """Kill holder processes still running when the test ends, passed or failed."""
    try:
        yield
    finally:
        for holder in holders:
            if holder.poll() is None:
                holder.kill()
            holder.wait()


@pytest.mark.timeout(120)
def test_a_second_process_blocks_until_the_first_releases(kind: LockKind, tmp_path: Path) -> None:
    root, events = str(tmp_path / "lake"), tmp_path / "events"
    first = start_holder(kind.name, kind.dsn, root, events, "first")
    with stopped_at_the_end(first):
        assert first.stdout is not None and first.stdout.readline() == "held\n"
        second = start_holder(kind.name, kind.dsn, root, events, "second")
        with stopped_at_the_end(second):
            wait_for(
                lambda: (
                    kind.waiting(root, second.pid)
                    or "second" in events.read_text()
                    or second.poll() is not None
                ),
                "the second holder to wait for the lock or to take it",
            )
            assert kind.waiting(root, second.pid), events.read_text()
            release(first)
            assert second.stdout is not None and second.stdout.readline() == "held\n"
            release(second)
            assert (first.wait(), second.wait()) == (0, 0)

    assert events.read_text().splitlines() == [
        "first acquired",
        "first releasing",
        "second acquired",
        "second releasing",
    ]


@pytest.mark.timeout(60)  # a lock the dead holder kept would block here until the timeout
def test_a_holder_killed_with_sigkill_frees_the_lock_at_once(kind: LockKind, tmp_path: Path) -> None:
    root = str(tmp_path / "lake")
    holder = start_holder(kind.name, kind.dsn, root, tmp_path / "events", "holder")
    with stopped_at_the_end(holder):
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        holder.kill()
        holder.wait()

    with kind.make(root).hold(VERSION, INDEX):
        assert kind.granted(os.getpid()) == 1


@pytest.mark.timeout(60)  # a shared lock would make the inner `hold` wait here until the timeout
def test_two_lake_roots_or_two_versions_never_share_a_lock(kind: LockKind, tmp_path: Path) -> None:
    first_root, second_root = str(tmp_path / "first"), str(tmp_path / "second")
    with (
        kind.make(first_root).hold(VERSION, INDEX),
        kind.make(second_root).hold(VERSION, INDEX),
        kind.make(first_root).hold("w", INDEX),
    ):
        assert kind.granted(os.getpid()) == 3


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("/lakes/a", "v", INDEX), ("/lakes/b", "v", INDEX)),
        (("s3://bucket/lake", "v", INDEX), ("s3://bucket/lake2", "v", INDEX)),
        (("/lakes/a", "v1", INDEX), ("/lakes/a", "v2", INDEX)),
        (("/lakes/a", "v", INDEX), ("/lakes/a", "v", "synth_index")),
        (("/lakes/a", "vx", INDEX), ("/lakes/av", "x", INDEX)),
    ],
)
def test_advisory_keys_differ_by_lake_root_version_and_index(
    one: tuple[str, str, str], other: tuple[str, str, str]
) -> None:
    assert advisory_key(*one) != advisory_key(*other)


def test_the_postgres_lock_takes_the_key_of_its_lake_root_version_and_index(server: PostgresServer) -> None:
    root = "s3://bucket/lake"
    with PostgresClaimLock(server.dsn, root).hold(VERSION, INDEX):
        held = server.advisory_locks()
    assert held == [(advisory_key(root, VERSION, INDEX), True)]
    assert server.advisory_locks() == []


def test_an_unreachable_database_is_a_retryable_lake_error() -> None:
    nobody_listens = f"postgresql://curation@127.0.0.1:{free_port()}/curation"
    with (
        pytest.raises(LakeIOError, match="cannot reach the claim-lock database") as raised,
        PostgresClaimLock(nobody_listens, "/lake").hold(VERSION, INDEX),
    ):
        pass
    assert raised.value.retryable


def _terminate_backends(dsn: str, granted: bool) -> int:
    """End the server sessions holding (granted) or waiting for (not granted) an advisory lock."""
    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted = %s",
                (granted,),
            )
            (count,) = cursor.fetchone() or (0,)
    finally:
        connection.close()
    return int(count)


@pytest.mark.timeout(60)
def test_a_connection_ended_while_waiting_is_a_retryable_lake_error(
    server: PostgresServer, tmp_path: Path
) -> None:
    root = str(tmp_path / "lake")
    holder = start_holder("postgres", server.dsn, root, tmp_path / "events", "holder")
    errors: list[BaseException] = []

    def wait_for_the_lock() -> None:
        try:
            with PostgresClaimLock(server.dsn, root).hold(VERSION, INDEX):
                pass
        except BaseException as error:
            errors.append(error)

    with stopped_at_the_end(holder):
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        waiter = threading.Thread(target=wait_for_the_lock)
        waiter.start()
        key = advisory_key(root, VERSION, INDEX)
        wait_for(lambda: (key, False) in server.advisory_locks(), "the waiter to wait for the lock")
        assert _terminate_backends(server.dsn, granted=False) == 1
        waiter.join()

    (error,) = errors
    assert isinstance(error, LakeIOError) and error.retryable
    assert "ended the connection waiting for v/dedup_index" in str(error)


def test_a_lock_lost_while_held_is_reported_when_the_block_ends(
    server: PostgresServer, tmp_path: Path
) -> None:
    with (
        pytest.raises(LakeIOError, match=r"the claim lock v/dedup_index was lost while held") as raised,
        PostgresClaimLock(server.dsn, str(tmp_path / "lake")).hold(VERSION, INDEX),
    ):
        assert _terminate_backends(server.dsn, granted=True) == 1
    assert raised.value.retryable
