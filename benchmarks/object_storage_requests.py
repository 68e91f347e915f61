"""The requests the README's main command makes of object storage: `curation run` in a fresh project folder
with `CURATION_HOME=s3://curation/lake`, against moto's S3-compatible server in this process and a throwaway
PostgreSQL server for the claim lock (what `tests/e2e/test_object_storage.py` runs), every request counted
at the server by operation.

Each request to a real bucket is a round trip of about 10-50 ms, so the count, not this server's speed, is
what a user pays; the script also prints the command's wall time and the server's time in its handlers.

    python benchmarks/object_storage_requests.py
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from werkzeug.serving import WSGIRequestHandler

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.test_object_storage import curation_run  # noqa: E402
from tests.servers import postgres_server, s3_server  # noqa: E402

COUNTS: Counter[str] = Counter()
SECONDS: Counter[str] = Counter()
_LOCK = threading.Lock()
_HANDLE = WSGIRequestHandler.handle_one_request


def _counted(handler: WSGIRequestHandler) -> None:
    started = time.perf_counter()
    _HANDLE(handler)
    line = getattr(handler, "requestline", "") or ""
    if " " in line:
        method, target = line.split(" ")[:2]
        query = urlsplit(target).query.split("=")[0].split("&")[0]
        operation = f"{method} ?{query}" if query else method
        with _LOCK:
            COUNTS[operation] += 1
            SECONDS[operation] += time.perf_counter() - started


def main() -> None:
    WSGIRequestHandler.handle_one_request = _counted  # type: ignore[method-assign]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    with s3_server() as s3, postgres_server() as postgres, tempfile.TemporaryDirectory() as folder:
        s3.create_bucket("curation")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "CURATION_", "AWS_"))}
        env.update(s3.environment())
        env.update(
            CURATION_HOME="s3://curation/lake",
            CURATION_LOCK_DSN=postgres.dsn,
            CURATION_VERSIONS=str(REPO / "versions"),
        )
        started = time.perf_counter()
        curation_run(Path(folder), env)
        seconds = time.perf_counter() - started
    print(f"curation run on the local S3 server: {seconds:.0f} s")
    print("| operation | requests | seconds in the server |\n| --- | --- | --- |")
    for operation, count in COUNTS.most_common():
        print(f"| {operation} | {count:,} | {SECONDS[operation]:.1f} |")
    print(f"| all | {sum(COUNTS.values()):,} | {sum(SECONDS.values()):.1f} |")


if __name__ == "__main__":
    main()
