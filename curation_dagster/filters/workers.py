"""Worker processes that run a filter chain over the record batches of one shard, so that one shard uses
the cores the run has.

Each worker is a fresh interpreter (`python -m curation_dagster.filters.workers`), never a fork of the
stage's process, which has threads and may hold torch or a CUDA context; multiprocessing's `spawn` is not
used either, since it imports the parent's `__main__` again (the `dagster` command line). A worker imports
the engine's filters only, sees no GPU, builds the chain from the spec's settings and answers one batch at a
time over a pipe. The stage writes the answers in input order, so the shard's files are byte for byte the
ones a single process writes.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import traceback
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Final

import pyarrow as pa

from curation_dagster.errors import WorkerLost
from curation_dagster.filters.chain import build_chain
from curation_dagster.spec import FilterSettings

#: Below this many rows a shard is scored in the stage's own process: a worker costs about a second to
#: start (a fresh interpreter importing pyarrow and the filters, then loading its models), as much as
#: scoring a few thousand web documents.
POOL_MIN_ROWS: Final = 8 * 1024
#: Batches in flight per worker: the one it scores and the next, so that no worker waits while the stage
#: writes. Together with MAX_IN_FLIGHT_BYTES this bounds the memory the pool adds.
BATCHES_PER_WORKER: Final = 2
#: Input bytes in flight at most (a batch of images or video can be large); one batch always goes.
MAX_IN_FLIGHT_BYTES: Final = 256 * 2**20

Scored = tuple[pa.Table, pa.Table]


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity, which containers and `taskset` narrow."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def default_workers(rows: int, cores: int) -> int:
    """Every core for a shard of at least POOL_MIN_ROWS rows, else 1 (the stage's own process)."""
    return max(cores, 1) if rows >= POOL_MIN_ROWS else 1


class ChainWorkers:
    """`count` worker processes, each running its own copy of the chain `settings` describe. `run` scores
    batches in them and yields each batch's (kept, rejected) in input order; a worker's exception is
    raised again here, and a worker that dies raises `WorkerLost`. Use it as a context manager."""

    def __init__(self, settings: FilterSettings, count: int) -> None:
        self.count = count
        self._threads = ThreadPoolExecutor(count, thread_name_prefix="filter-worker")
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._workers: list[_Worker] = []
        self._pending: deque[tuple[Future[Scored], int]] = deque()
        try:
            for _ in range(count):
                self._workers.append(_Worker(settings))
                self._idle.put(self._workers[-1])
        except BaseException:
            self.close(abandon=True)
            raise

    def __enter__(self) -> ChainWorkers:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        self.close(abandon=error_type is not None)

    def run(self, tables: Iterable[pa.Table]) -> Iterator[Scored]:
        """(kept, rejected) of each table, in order, with a bounded number of tables in flight."""
        limit = BATCHES_PER_WORKER * self.count
        in_flight = 0
        for table in tables:
            while self._pending and (
                len(self._pending) >= limit or in_flight + table.nbytes > MAX_IN_FLIGHT_BYTES
            ):
                future, size = self._pending.popleft()
                in_flight -= size
                yield future.result()
            self._pending.append((self._threads.submit(self._ask, table), table.nbytes))
            in_flight += table.nbytes
        while self._pending:
            yield self._pending.popleft()[0].result()

    def _ask(self, table: pa.Table) -> Scored:
        worker = self._idle.get()
        try:
            return worker.ask(table)
        finally:
            self._idle.put(worker)

    def close(self, abandon: bool = False) -> None:
        """Stop the workers: let them finish and exit, or, when abandoning (an error, batches left in
        flight), kill them so that nothing waits on their answers."""
        abandon = abandon or bool(self._pending)
        for future, _ in self._pending:
            future.cancel()
        self._pending.clear()
        if abandon:
            for worker in self._workers:
                worker.kill()
        self._threads.shutdown(wait=True)
        for worker in self._workers:
            worker.close()


class _Worker:
    """One worker process and the two pipes to it: batches in, answers out."""

    def __init__(self, settings: FilterSettings) -> None:
        request_read, request_write = os.pipe()
        answer_read, answer_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-m", __name__, str(request_read), str(answer_write)],
                pass_fds=(request_read, answer_write),
                stdin=subprocess.DEVNULL,
                env=_worker_environment(),
            )
        except BaseException:
            for descriptor in (request_read, request_write, answer_read, answer_write):
                os.close(descriptor)
            raise
        os.close(request_read)
        os.close(answer_write)
        self._requests = os.fdopen(request_write, "wb")
        self._answers = os.fdopen(answer_read, "rb")
        try:
            self._send_or_lost(settings)
        except BaseException:
            self.kill()
            self.close()
            raise

    def ask(self, table: pa.Table) -> Scored:
        self._send_or_lost(_table_bytes(table))
        try:
            outcome, payload, remote_traceback = _receive(self._answers)
        except (OSError, EOFError) as error:
            raise self._lost() from error
        if outcome == "scored":
            kept, rejected = payload
            return _table(kept), _table(rejected)
        raise _remote_error(payload, remote_traceback)

    def _send_or_lost(self, message: object) -> None:
        try:
            _send(self._requests, message)
        except OSError as error:
            raise self._lost() from error

    def _lost(self) -> WorkerLost:
        try:
            code: int | str = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = "none yet"
        how = f" (signal {-code})" if isinstance(code, int) and code < 0 else ""
        return WorkerLost(
            f"filter worker process {self.process.pid} stopped before answering, exit code {code}{how}: "
            "if it ran out of memory, set CURATION_WORKERS to fewer processes (1 scores in the stage's "
            "own process)"
        )

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    def close(self) -> None:
        """Close the batch pipe (the worker exits at its end) and wait for the process."""
        with contextlib.suppress(OSError):
            self._requests.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            self.process.wait()
        self._answers.close()


def _worker_environment() -> dict[str, str]:
    """The stage's environment with this copy of the package first on the path (a worker runs the stage's
    code, whatever else is installed) and no GPU visible (a worker never initialises CUDA)."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([root, path] if path else [root]),
        "CUDA_VISIBLE_DEVICES": "",
    }


def _table_bytes(table: pa.Table) -> bytes:
    """A table as an Arrow IPC stream: twenty times faster to pass on than a pickled table."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _send(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    header = stream.read(8)
    if len(header) < 8:
        raise EOFError("the pipe closed")
    (size,) = struct.unpack("<Q", header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the pipe closed inside a message")
    return pickle.loads(data)


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as the cause of the one raised here."""

    def __str__(self) -> str:
        return f"\n{self.args[0]}"


def _remote_error(pickled: bytes | None, remote_traceback: str) -> BaseException:
    """The worker's exception, of its own class when it pickles (so `CurationError.retryable` holds)."""
    error: object = None
    if pickled is not None:
        with contextlib.suppress(Exception):
            error = pickle.loads(pickled)
    if not isinstance(error, BaseException):
        error = RuntimeError(f"a filter worker failed:\n{remote_traceback}")
    error.__cause__ = RemoteTraceback(remote_traceback)
    return error


def _pickled_error(error: BaseException) -> bytes | None:
    try:
        data = pickle.dumps(error, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(data)
    except Exception:
        return None
    return data


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """A worker's loop: the chain's settings, then one batch after another until the stage closes the
    pipe; each answer is the batch's (kept, rejected) or the exception that scoring it raised."""
    settings: FilterSettings = _receive(requests)
    chain = None
    while True:
        try:
            table = _table(_receive(requests))
        except EOFError:
            return
        try:
            chain = chain if chain is not None else build_chain(settings)
            kept, rejected = chain.run(table)
            answer: tuple[str, Any, str] = ("scored", (_table_bytes(kept), _table_bytes(rejected)), "")
        except Exception as error:
            answer = ("failed", _pickled_error(error), traceback.format_exc())
        _send(answers, answer)


def main(arguments: list[str]) -> None:
    # Ctrl-C reaches the whole process group; the stage decides, and kills its workers when it stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A stage that stopped (killed, or abandoning its workers) closes the pipes: the worker just exits.
    with (
        contextlib.suppress(BrokenPipeError),
        os.fdopen(int(arguments[0]), "rb") as requests,
        os.fdopen(int(arguments[1]), "wb") as answers,
    ):
        serve(requests, answers)


if __name__ == "__main__":
    main(sys.argv[1:])
