"""Tests of curation_dagster/io/lake.py: paths, safe segments, atomic writes, listing and DuckDB views."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiobotocore.session
import boto3
import duckdb
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs

from curation_dagster.errors import LakeLockUnavailable, ShardNameError
from curation_dagster.io.lake import _WRITER, ORPHAN_AGE_S, ORPHAN_SWEEP_S, SWEEPS_DIR, Lake, check_segment
from tests.servers import S3Server


def ids(*values: str) -> pa.Table:
    return pa.table({"id": pa.array(values, pa.string())})


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


@pytest.fixture
def memory_lake() -> Lake:
    """A lake in fsspec's process-wide memory filesystem, under a root no other test uses."""
    return Lake(f"memory://lake-{uuid.uuid4().hex}")


def files_under(folder: Path) -> list[str]:
    """The files under `folder` but the lake's record of when it last looked for leftovers
    (`.orphan_sweeps/`)."""
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path.parent.name != SWEEPS_DIR
    )


# Paths -----------------------------------------------------------------------------------------------


def test_shard_path_is_root_version_stage_shard_parquet(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")

    assert lake.path("v1", "raw", "news.jsonl") == f"{tmp_path}/lake/v1/raw/news.jsonl.parquet"


def test_rejected_rows_live_under_the_stage_rejected_folder(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")

    assert (
        lake.path("v1", "deduped", "news.jsonl", rejected=True)
        == f"{tmp_path}/lake/v1/deduped/_rejected/news.jsonl.parquet"
    )


def test_trailing_slash_of_the_root_is_ignored(tmp_path: Path) -> None:
    assert Lake(f"{tmp_path}/lake/").path("v", "raw", "s") == Lake(tmp_path / "lake").path("v", "raw", "s")


@pytest.mark.parametrize("name", ["news_en.jsonl", "media", "a-b.c_d", "0"])
def test_check_segment_accepts_plain_names(name: str) -> None:
    assert check_segment(name) == name


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../up", "a..b", ".hidden", "a\\b", "a b", "x" * 202])
def test_check_segment_rejects_unsafe_names(name: str) -> None:
    with pytest.raises(ShardNameError):
        check_segment(name)


def test_path_rejects_an_unsafe_shard_version_or_stage(lake: Lake) -> None:
    with pytest.raises(ShardNameError, match="version"):
        lake.path("../v", "raw", "s")
    with pytest.raises(ShardNameError, match="stage"):
        lake.path("v", "raw/..", "s")
    with pytest.raises(ShardNameError, match="shard key"):
        lake.path("v", "raw", "../../etc")


# Atomic writes ---------------------------------------------------------------------------------------


def test_write_then_read_round_trips(lake: Lake) -> None:
    path = lake.path("v", "raw", "s")

    lake.write_table(path, ids("a", "b"))

    assert lake.read_table(path).equals(ids("a", "b"))


def test_failed_write_leaves_no_file_under_the_real_name(lake: Lake) -> None:
    path = lake.path("v", "raw", "s")

    with pytest.raises(RuntimeError, match="boom"), lake.atomic_writer(path, ids().schema) as writer:
        writer.write_table(ids("a"))
        raise RuntimeError("boom")

    assert not lake.exists(path)


def test_failed_write_leaves_no_temporary_behind(lake: Lake, tmp_path: Path) -> None:
    path = lake.path("v", "raw", "s")

    with pytest.raises(RuntimeError), lake.atomic_writer(path, ids().schema) as writer:
        writer.write_table(ids("a"))
        raise RuntimeError("boom")

    assert files_under(tmp_path / "lake") == []


def test_successful_write_leaves_no_temporary_behind(lake: Lake, tmp_path: Path) -> None:
    lake.write_table(lake.path("v", "raw", "s"), ids("a"))

    assert files_under(tmp_path / "lake") == ["v/raw/s.parquet"]


def test_failed_rewrite_keeps_the_previous_file(lake: Lake) -> None:
    path = lake.path("v", "raw", "s")
    lake.write_table(path, ids("old"))

    with pytest.raises(RuntimeError), lake.atomic_writer(path, ids().schema) as writer:
        writer.write_table(ids("new"))
        raise RuntimeError("boom")

    assert lake.read_table(path).column("id").to_pylist() == ["old"]


def test_rewriting_replaces_the_file(lake: Lake) -> None:
    path = lake.path("v", "raw", "s")
    lake.write_table(path, ids("old", "older"))

    lake.write_table(path, ids("new"))

    assert lake.read_table(path).column("id").to_pylist() == ["new"]


def test_stale_temporary_of_a_killed_run_is_removed_by_the_next_write(lake: Lake, tmp_path: Path) -> None:
    stale = tmp_path / "lake" / "v" / "raw" / ".s.parquet.deadbeef.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a file")

    lake.write_table(lake.path("v", "raw", "s"), ids("a"))

    assert not stale.exists()


def test_temporary_of_a_dead_writer_of_another_file_is_removed_by_a_write_in_its_folder(
    lake: Lake, tmp_path: Path
) -> None:
    folder = tmp_path / "lake" / "v" / "raw"
    folder.mkdir(parents=True)
    dead_pid = _a_dead_pid()
    orphan = folder / f".other.parquet.{_WRITER.split('~')[0]}~{dead_pid}.{'0' * 32}.tmp"
    orphan.write_bytes(b"half a file")

    lake.write_table(lake.path("v", "raw", "s"), ids("a"))

    assert not orphan.exists()


def test_temporary_of_a_live_writer_of_another_file_is_left_alone(lake: Lake, tmp_path: Path) -> None:
    folder = tmp_path / "lake" / "v" / "raw"
    folder.mkdir(parents=True)
    live = folder / f".other.parquet.{_WRITER}.{'1' * 32}.tmp"
    live.write_bytes(b"being written")

    lake.write_table(lake.path("v", "raw", "s"), ids("a"))

    assert live.exists()


def test_temporary_older_than_a_day_is_removed_whoever_wrote_it(lake: Lake, tmp_path: Path) -> None:
    folder = tmp_path / "lake" / "v" / "raw"
    folder.mkdir(parents=True)
    old = folder / ".other.parquet.elsewhere~1.0123456789abcdef0123456789abcdef.tmp"
    old.write_bytes(b"left by another machine")
    a_day_and_more = time.time() - ORPHAN_AGE_S - 60
    os.utime(old, (a_day_and_more, a_day_and_more))

    lake.write_table(lake.path("v", "raw", "s"), ids("a"))

    assert not old.exists()


def test_a_folder_is_looked_through_for_leftovers_once_an_interval_not_on_every_write(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder of an index holds a file per shard: listing it on every write grew with the history. After
    one look, writes within `ORPHAN_SWEEP_S` do not list the folder (a dead writer's leftover waits); the
    first write after it does, and removes the leftover."""
    folder = tmp_path / "lake" / "v" / "raw"
    lake.write_table(lake.path("v", "raw", "s0"), ids("a"))  # the folder's first look
    orphan = folder / f".other.parquet.{_WRITER.split('~')[0]}~{_a_dead_pid()}.{'0' * 32}.tmp"
    orphan.write_bytes(b"half a file")
    listed: list[str] = []
    scandir = os.scandir

    def watched(path: Any) -> Any:
        listed.append(str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", watched)
    for number in range(1, 4):
        lake.write_table(lake.path("v", "raw", f"s{number}"), ids("a"))
    assert listed == [] and orphan.exists()

    (marker,) = (tmp_path / "lake" / SWEEPS_DIR).iterdir()
    an_interval_ago = time.time() - ORPHAN_SWEEP_S - 1
    os.utime(marker, (an_interval_ago, an_interval_ago))
    lake.write_table(lake.path("v", "raw", "s4"), ids("a"))
    assert listed == [str(folder)] and not orphan.exists()
    assert files_under(tmp_path / "lake") == [f"v/raw/s{number}.parquet" for number in range(5)]


def _a_dead_pid() -> int:
    """The id of a process that has exited (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# Listing and counting --------------------------------------------------------------------------------


def test_list_shards_returns_committed_shards_sorted(lake: Lake) -> None:
    for shard in ("b", "a.jsonl", "c"):
        lake.write_table(lake.path("v", "raw", shard), ids("x"))
    lake.write_table(lake.path("v", "raw", "z", rejected=True), ids("x"))

    assert lake.list_shards("v", "raw") == ["a.jsonl", "b", "c"]
    assert lake.list_shards("v", "raw", rejected=True) == ["z"]


def test_list_shards_ignores_temporaries(lake: Lake, tmp_path: Path) -> None:
    lake.write_table(lake.path("v", "raw", "a"), ids("x"))
    (tmp_path / "lake" / "v" / "raw" / ".b.parquet.0123.tmp").write_bytes(b"")

    assert lake.list_shards("v", "raw") == ["a"]


def test_list_shards_of_a_stage_never_written_is_empty(lake: Lake) -> None:
    assert lake.list_shards("v", "selected") == []


def test_num_rows_counts_rows_from_the_footer(lake: Lake) -> None:
    path = lake.path("v", "raw", "s")
    lake.write_table(path, ids("a", "b", "c"))

    assert lake.num_rows(path) == 3


def test_reading_a_missing_shard_raises_file_not_found(lake: Lake) -> None:
    with pytest.raises(FileNotFoundError):
        lake.num_rows(lake.path("v", "raw", "missing"))


def test_iter_batches_yields_every_row_in_batches(lake: Lake) -> None:
    path = lake.path("v", "raw", "s")
    lake.write_table(path, ids(*(f"id{i}" for i in range(5))))

    batches = list(lake.iter_batches(path, batch_size=2))

    assert [batch.num_rows for batch in batches] == [2, 2, 1]


# DuckDB ----------------------------------------------------------------------------------------------


def test_duckdb_has_a_view_per_stage_with_files(lake: Lake) -> None:
    lake.write_table(lake.path("v", "raw", "a"), ids("1", "2"))
    lake.write_table(lake.path("v", "raw", "b"), ids("3"))
    lake.write_table(lake.path("v", "raw", "a", rejected=True), ids("4"))

    connection = lake.duckdb("v")

    assert connection.execute("SELECT count(*) FROM raw").fetchone() == (3,)
    assert connection.execute("SELECT id FROM raw_rejected").fetchall() == [("4",)]


def test_duckdb_has_no_view_for_a_stage_without_files(lake: Lake) -> None:
    lake.write_table(lake.path("v", "raw", "a"), ids("1"))

    connection = lake.duckdb("v")

    with pytest.raises(duckdb.CatalogException):
        connection.execute("SELECT * FROM deduped")


def test_duckdb_views_union_shards_with_different_columns(lake: Lake) -> None:
    lake.write_table(lake.path("v", "filtered", "a"), pa.table({"id": ["1"], "width": [5]}))
    lake.write_table(lake.path("v", "filtered", "b"), pa.table({"id": ["2"], "lang": ["en"]}))

    rows = lake.duckdb("v").execute("SELECT id, width, lang FROM filtered ORDER BY id").fetchall()

    assert rows == [("1", 5, None), ("2", None, "en")]


# fsspec roots ----------------------------------------------------------------------------------------


def test_memory_lake_writes_reads_and_lists(memory_lake: Lake) -> None:
    path = memory_lake.path("v", "raw", "s")

    memory_lake.write_table(path, ids("a", "b"))

    assert not memory_lake.is_local
    assert memory_lake.read_table(path).equals(ids("a", "b"))
    assert memory_lake.num_rows(path) == 2
    assert memory_lake.list_shards("v", "raw") == ["s"]


def test_memory_lake_failed_write_leaves_nothing(memory_lake: Lake) -> None:
    path = memory_lake.path("v", "raw", "s")

    with pytest.raises(RuntimeError), memory_lake.atomic_writer(path, ids().schema) as writer:
        writer.write_table(ids("a"))
        raise RuntimeError("boom")

    folder = memory_lake.stage_dir("v", "raw")
    assert memory_lake.fs.ls(folder, detail=False) == []


def test_memory_lake_duckdb_views_read_the_files(memory_lake: Lake) -> None:
    memory_lake.write_table(memory_lake.path("v", "raw", "s"), ids("a", "b"))

    assert memory_lake.duckdb("v").execute("SELECT count(*) FROM raw").fetchone() == (2,)


def test_local_lake_is_local(lake: Lake) -> None:
    assert lake.is_local


def test_a_remote_lake_refuses_the_claim_lock_and_says_what_to_use(memory_lake: Lake) -> None:
    with (
        pytest.raises(LakeLockUnavailable, match="set CURATION_LOCK_DSN"),
        memory_lake.lock("v", "dedup_index"),
    ):
        pass


@pytest.mark.timeout(60)  # a lock the dead holder kept would block forever
def test_the_lock_of_a_killed_holder_is_free_at_once(lake: Lake, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from curation_dagster.io.lake import Lake\n"
            f"with Lake({str(tmp_path / 'lake')!r}).lock('v', 'dedup_index'):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()

    with lake.lock("v", "dedup_index"):
        acquired = True
    assert acquired


# Object storage (a local S3-compatible server) -------------------------------------------------------


@pytest.fixture
def s3_lake(s3: S3Server) -> Lake:
    """A lake in the test server's bucket, under a prefix no other test uses."""
    return Lake(f"s3://curation/lake-{uuid.uuid4().hex}")


def another_process(lake: Lake) -> fsspec.AbstractFileSystem:
    """A file system of its own on the lake's storage, as another process has."""
    return fsspec.filesystem("s3", skip_instance_cache=True)


def test_a_folder_replaced_on_object_storage_holds_the_new_files_only(s3_lake: Lake) -> None:
    old = s3_lake.stage_dir("v", "release")
    version = old.rsplit("/", 1)[0]
    new = f"{version}/.release.new.tmp"
    s3_lake.write_bytes(f"{old}/data/a.parquet", b"old a")
    s3_lake.write_bytes(f"{old}/stale.json", b"old")
    s3_lake.write_bytes(f"{new}/data/a.parquet", b"new a")
    s3_lake.write_bytes(f"{new}/manifest.json", b"new")

    s3_lake.replace_folder(new, old)

    assert sorted(s3_lake.fs.find(version)) == [f"{old}/data/a.parquet", f"{old}/manifest.json"]
    assert s3_lake.fs.cat_file(f"{old}/data/a.parquet") == b"new a"


def test_a_lake_on_object_storage_sees_what_another_process_wrote_after_it_listed(s3_lake: Lake) -> None:
    s3_lake.write_table(s3_lake.path("v", "raw", "a"), ids("x"))
    assert s3_lake.list_shards("v", "raw") == ["a"]
    other = another_process(s3_lake)
    with other.open(s3_lake.path("v", "raw", "b"), "wb") as handle:
        pq.write_table(ids("y"), handle)

    assert s3_lake.exists(s3_lake.path("v", "raw", "b"))
    assert s3_lake.list_shards("v", "raw") == ["a", "b"]


def test_a_file_replaced_on_object_storage_while_read_in_parts_reads_as_missing(s3_lake: Lake) -> None:
    path = s3_lake.stage_dir("v", "keys") + "/run.arrow"
    s3_lake.write_bytes(path, b"first version of the file")
    handle = s3_lake.open_random_access(path)
    assert handle.read(5) == b"first"
    another_process(s3_lake).pipe_file(path, b"second version, written by another run")

    with pytest.raises(FileNotFoundError, match="replaced"):
        handle.read(7)


def test_duckdb_reads_a_lake_on_object_storage(s3_lake: Lake) -> None:
    s3_lake.write_table(s3_lake.path("v", "raw", "a"), ids("x", "y"))
    s3_lake.write_table(s3_lake.path("v", "raw", "a", rejected=True), ids("z"))

    connection = s3_lake.duckdb("v")

    assert connection.execute("SELECT count(*) FROM raw").fetchone() == (2,)
    assert connection.execute("SELECT id FROM raw_rejected").fetchall() == [("z",)]


def s3_requests(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The S3 requests s3fs makes from now on in this process, counted by operation."""
    asked: Counter[str] = Counter()
    original = s3fs.S3FileSystem._call_s3

    async def counting(self: s3fs.S3FileSystem, method: str, *args: Any, **kwargs: Any) -> Any:
        asked[method] += 1
        return await original(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", counting)
    monkeypatch.setattr(s3fs.S3FileSystem, "call_s3", fsspec.asyn.sync_wrapper(counting))
    return asked


def test_duckdb_queries_on_object_storage_list_each_folder_once_and_read_each_file_once(
    s3_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB globs, sizes, dates and opens every file for every query: each of those is answered from one
    listing of the folder, not a HEAD request (the demo's release asked 270 per file), and the bytes a
    query read serve the next (the data card asks 80 queries of the same files)."""
    files = []
    for shard in ("a", "b", "c"):
        files.append(s3_lake.url(s3_lake.path("v", "synthesized", shard)))
        s3_lake.write_table(s3_lake.path("v", "synthesized", shard), ids(f"{shard}1", f"{shard}2"))
    asked = s3_requests(monkeypatch)
    connection = s3_lake.connect()
    for _ in range(4):
        rows = connection.sql("SELECT count(*) FROM read_parquet(?)", params=[files]).fetchall()
        assert rows == [(6,)]

    assert asked == Counter({"list_objects_v2": 1, "get_object": len(files)})


def test_duckdb_connections_to_object_storage_share_the_lakes_botocore_session(
    s3_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session of its own per connection would load botocore's endpoint and service models again: 0.2 s
    each, and `curation run` opens hundreds of connections (a third of its time on the S3 server)."""
    s3_lake.write_table(s3_lake.path("v", "raw", "a"), ids("x"))
    s3_lake.fs.connect()
    made: list[object] = []
    original = aiobotocore.session.AioSession.__init__

    def counting(self: aiobotocore.session.AioSession, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(aiobotocore.session.AioSession, "__init__", counting)
    for _ in range(3):
        assert s3_lake.duckdb("v").execute("SELECT count(*) FROM raw").fetchone() == (1,)

    assert made == []


def test_listing_shards_on_object_storage_asks_listings_only(
    s3_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_lake.write_table(s3_lake.path("v", "raw", "b"), ids("x"))
    s3_lake.write_table(s3_lake.path("v", "raw", "a"), ids("y"))
    s3_lake.write_bytes(s3_lake.stage_dir("v", "raw") + "/notes.json", b"{}")
    asked = s3_requests(monkeypatch)

    assert s3_lake.list_shards("v", "raw") == ["a", "b"]
    assert asked == Counter({"list_objects_v2": 1})
    asked.clear()
    assert s3_lake.list_shards("v", "deduped") == []
    assert s3_lake.list_shards("never", "raw", rejected=True) == []
    assert asked == Counter({"list_objects_v2": 4})  # s3fs lists the parent to tell "missing" from "empty"


def test_a_write_on_object_storage_is_one_upload_that_appears_whole_or_not_at_all(
    s3_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On S3 a file is written as one upload to its own key, completed when the block succeeds: readers see
    the old object until then, a failed block leaves the old object and no upload behind, and no temporary
    object, copy or delete is made."""
    path = s3_lake.path("v", "raw", "s")
    s3_lake.write_bytes(path, b"old")
    asked = s3_requests(monkeypatch)
    with s3_lake.atomic_file(path) as handle:
        handle.write(b"new content")
        handle.flush()
        assert another_process(s3_lake).cat_file(path) == b"old"
    assert another_process(s3_lake).cat_file(path) == b"new content"
    writes = {"create_multipart_upload": 1, "upload_part": 1, "complete_multipart_upload": 1}
    assert {method: asked[method] for method in writes} == writes
    assert not {"put_object", "copy_object", "delete_objects", "list_objects_v2"} & set(asked)

    with pytest.raises(RuntimeError, match="half-way"), s3_lake.atomic_file(path) as handle:
        handle.write(b"x" * (51 << 20))  # over s3fs's 50 MiB parts: one is uploaded before the failure
        handle.flush()
        assert asked["upload_part"] == 2
        raise RuntimeError("the writer failed half-way")
    assert asked["abort_multipart_upload"] == 1
    bucket, key = path.split("/", 1)
    assert another_process(s3_lake).cat_file(path) == b"new content"
    assert another_process(s3_lake).ls(path.rsplit("/", 1)[0]) == [path]
    client = boto3.client("s3", endpoint_url=os.environ["FSSPEC_S3_ENDPOINT_URL"])
    assert not client.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads")


def test_a_small_file_is_read_whole_or_found_missing(lake: Lake) -> None:
    path = f"{lake.stage_dir('v', 'near_keys')}/manifest.json"
    assert lake.read_bytes(path) is None
    lake.write_bytes(path, b'{"format": 1}')
    assert lake.read_bytes(path) == b'{"format": 1}'


def test_a_small_file_on_object_storage_is_one_get_present_or_not(
    s3_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest or ledger is read many times a run: one GET, where `exists` and `open` asked two HEADs."""
    path = f"{s3_lake.stage_dir('v', 'near_keys')}/manifest.json"
    s3_lake.write_bytes(path, b'{"format": 1}')
    asked = s3_requests(monkeypatch)

    assert s3_lake.read_bytes(path) == b'{"format": 1}'
    assert s3_lake.read_bytes(f"{s3_lake.stage_dir('v', 'exact_keys')}/manifest.json") is None
    assert asked == Counter({"get_object": 2})


def test_a_file_another_writer_removes_first_is_no_error_to_remove(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers may remove the same file at once (a key store's merged tier): the second finds it gone
    between its existence check and its removal."""
    path = lake.path("v", "stage", "a")
    lake.write_table(path, ids("x"))
    exists = lake.fs.exists

    def gone_after_the_check(target: str) -> bool:
        found = exists(target)
        os.remove(target)  # the other writer's removal
        return found

    monkeypatch.setattr(lake.fs, "exists", gone_after_the_check)
    lake.remove(path)
    assert not os.path.exists(path)
