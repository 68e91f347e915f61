"""Key-store merges written with no lock held (`KeyStore.compact`): the writers' lock is taken only to add a
finished tier to the manifest, and a tier whose inputs another writer merged or replaced meanwhile is
dropped, its files with it; the answers stay exact whatever interleaves."""

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation_dagster.dedup import key_files, keystore
from curation_dagster.dedup.arrow_files import KEY_SLICES, ArrowFile, slice_starts
from curation_dagster.dedup.key_files import merge_order, stray_tiers
from curation_dagster.dedup.keystore import KeyStore
from curation_dagster.io.lake import ORPHAN_AGE_S, Lake
from tests.engine.dedup.remote_fixtures import counting_lake
from tests.engine.dedup.test_keystore import answer, brute_force, shard_keys
from tests.servers import S3Server


def store(root: Path, fanout: int = 2) -> KeyStore:
    return KeyStore(Lake(root), "v", "keys", "f1", fanout=fanout)


def files_on_disk(keys: KeyStore) -> set[str]:
    folder = Path(keys.folder) / "tiers"
    return {path.name for path in folder.glob("*")} if folder.exists() else set()


def named_files(keys: KeyStore) -> set[str]:
    return {f"{tier['name']}{suffix}" for tier in keys.manifest()["tiers"] for suffix in (".arrow", ".bloom")}


def check_answers(keys: KeyStore, shards: dict[str, np.ndarray]) -> None:
    """Lookups agree with a search of `shards` (arrivals compared as places in the arrival order: a
    forgotten shard leaves a gap in the numbers)."""
    order = keys.shards()
    assert sorted(order) == sorted(shards)
    probes = np.arange(0, 520, 3, dtype=np.uint64)
    for exclude in (None, order[-1]):
        found = [
            (probe, order.index(shard), shard, row)
            for probe, _, shard, row in answer(keys.lookup(probes, exclude=exclude))
        ]
        assert found == brute_force(shards, order, probes, exclude)


def two_writers(root: Path, count: int) -> tuple[KeyStore, KeyStore, dict[str, np.ndarray]]:
    """Two writers of one store holding `count` unmerged runs, and the runs' keys by shard."""
    shards = {f"s{number}": shard_keys(number, 60) for number in range(count)}
    first, other = store(root), store(root)
    for shard, values in shards.items():
        first.put(shard, values, np.arange(60), merge=False)
    return first, other, shards


def locks_held_while_merging(
    monkeypatch: pytest.MonkeyPatch, lake: Lake, version: str, lock: str
) -> list[bool]:
    """Whether the claim lock `lock` of `version` was held each time a key store wrote a merged tier,
    filled in as stores merge."""
    held: list[bool] = []
    write_merged = keystore.write_merged

    def watched(*args: Any, **kwargs: Any) -> int:
        held.append(lake.is_locked(version, lock))
        return write_merged(*args, **kwargs)

    monkeypatch.setattr(keystore, "write_merged", watched)
    return held


def first_time(action: Callable[[], None]) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """A `hold` that runs `action` (another writer's turn) before the first commit, and nothing after."""
    done: list[bool] = []

    @contextlib.contextmanager
    def hold() -> Iterator[None]:
        if not done:
            done.append(True)
            action()
        yield

    return hold


def test_merges_left_to_compact_make_the_tiers_a_merge_in_put_makes(tmp_path: Path) -> None:
    shards = {f"s{number}": shard_keys(number, 60) for number in range(9)}
    eager, deferred = store(tmp_path / "eager"), store(tmp_path / "deferred")
    for shard, values in shards.items():
        eager.put(shard, values, np.arange(60))
        deferred.put(shard, values, np.arange(60), merge=False)
    assert deferred.manifest()["tiers"] == [] and len(deferred._loose_shards(deferred.manifest())) == 9
    assert deferred.compact() == 7  # four level-1 tiers, two level-2, one level-3
    assert deferred.compact() == 0
    assert deferred.manifest()["tiers"] == eager.manifest()["tiers"]
    assert files_on_disk(deferred) == named_files(deferred)
    check_answers(deferred, shards)


def test_the_lock_is_taken_once_per_tier_after_the_tier_is_written(tmp_path: Path) -> None:
    keys = store(tmp_path)
    for number in range(4):
        keys.put(f"s{number}", shard_keys(number, 60), np.arange(60), merge=False)
    seen: list[set[str]] = []

    @contextlib.contextmanager
    def hold() -> Iterator[None]:
        seen.append(files_on_disk(keys) - named_files(keys))  # written, not yet in the manifest
        yield

    assert keys.compact(hold) == 3
    assert len(seen) == 3 and all(len(unnamed) == 2 for unnamed in seen)  # the tier and its filter
    assert [tier["level"] for tier in keys.manifest()["tiers"]] == [2]


def test_two_writers_merging_the_same_runs_add_one_tier_and_leave_no_file(tmp_path: Path) -> None:
    first, other, shards = two_writers(tmp_path, 4)
    added: list[int] = []
    # The other writer merges everything (s0 and s1 among them) while the first holds its tier of s0 and s1.
    assert first.compact(first_time(lambda: added.append(other.compact()))) == 0
    assert added == [3]
    assert [tier["level"] for tier in first.manifest()["tiers"]] == [2]
    assert files_on_disk(first) == named_files(first)
    check_answers(first, shards)


def test_a_tier_another_writer_added_first_is_kept_by_the_writer_that_lost(tmp_path: Path) -> None:
    """Both writers wrote the same tier (the same name); the second to commit must leave its file alone."""
    first, other, shards = two_writers(tmp_path, 3)
    assert first.compact(first_time(other.compact)) == 0
    (tier,) = first.manifest()["tiers"]
    assert set(tier["shards"]) == {"s0", "s1"}
    assert files_on_disk(first) == named_files(first)
    check_answers(first, shards)


def test_a_tier_of_runs_another_writer_merged_otherwise_is_dropped_with_its_files(tmp_path: Path) -> None:
    first, other, shards = two_writers(tmp_path, 2)

    def forget_and_merge() -> None:
        other.remove("s1")
        del shards["s1"]
        shards["s2"] = shard_keys(2, 60)
        other.put("s2", shards["s2"], np.arange(60))  # merges s0 and s2: s0 is no longer loose

    first.compact(first_time(forget_and_merge))
    (tier,) = first.manifest()["tiers"]
    assert set(tier["shards"]) == {"s0", "s2"}
    assert files_on_disk(first) == named_files(first)
    check_answers(first, shards)


def test_a_run_replaced_while_its_merge_is_written_is_read_from_its_new_run(tmp_path: Path) -> None:
    shards = {f"s{number}": shard_keys(number, 60) for number in range(2)}
    keys = store(tmp_path)
    for shard, values in shards.items():
        keys.put(shard, values, np.arange(60), merge=False)

    def run_again() -> None:
        shards["s0"] = shard_keys(10, 60)
        keys.put("s0", shards["s0"], np.arange(60), merge=False)

    assert keys.compact(first_time(run_again)) == 1
    manifest = keys.manifest()
    assert keys._loose_shards(manifest) == ["s0"]  # the tier's entries of s0 are its old ones, ignored
    check_answers(keys, shards)


def test_a_run_read_after_it_was_replaced_is_merged_under_its_own_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The merge plans from a manifest naming s1's first run, reads s1's second run (replaced in between),
    and by its commit s1 holds its first keys again: the tier must not answer for s1 with the second's."""
    first_keys, second_keys = shard_keys(1, 60), shard_keys(11, 60)
    shards = {"s0": shard_keys(0, 60), "s1": first_keys}
    keys = store(tmp_path)
    keys.put("s0", shards["s0"], np.arange(60), merge=False)
    keys.put("s1", first_keys, np.arange(60), merge=False)
    planned_from = keys.manifest()
    keys.put("s1", second_keys, np.arange(60), merge=False)
    reads = iter([planned_from])
    current = keys.manifest
    monkeypatch.setattr(
        keys, "manifest", lambda *args, **kwargs: next(reads, None) or current(*args, **kwargs)
    )

    keys.compact(first_time(lambda: keys.put("s1", first_keys, np.arange(60), merge=False)))
    (tier,) = keys.manifest()["tiers"]
    assert tier["shards"]["s1"] != keys.manifest()["shards"]["s1"]["token"]
    check_answers(keys, shards)


@settings(max_examples=80, deadline=None)
@given(
    runs=st.lists(st.lists(st.integers(0, 30) | st.integers(0, 2**64 - 1), max_size=40), max_size=6),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_merges_order_is_the_three_key_sort_of_its_entries(runs: list[list[int]], seed: int) -> None:
    """Sorted runs (small keys: many ties within and across runs), arrivals and rows drawn at random."""
    keys = np.array([key for run in runs for key in sorted(run)], dtype=np.uint64)
    rng = np.random.default_rng(seed)
    arrivals, rows = rng.integers(0, 4, len(keys)), rng.integers(0, 3, len(keys)).astype(np.uint32)
    assert merge_order(keys, arrivals, rows).tolist() == np.lexsort((rows, arrivals, keys)).tolist()


@settings(max_examples=60, deadline=None)
@given(runs=st.lists(st.lists(st.integers(0, 30), max_size=40), max_size=6))
def test_a_merge_of_inputs_in_arrival_order_keeps_their_ties_order_without_sorting_them_again(
    runs: list[list[int]],
) -> None:
    """Runs taken in arrival order, each sorted by key and row (how a store merges its runs): the stable
    sort's order among tied keys is the three-key order already, found without a `lexsort`."""
    entries = [sorted((key, row) for row, key in enumerate(run)) for run in runs]
    keys = np.array([key for run in entries for key, _ in run], dtype=np.uint64)
    rows = np.array([row for run in entries for _, row in run], dtype=np.uint32)
    arrivals = np.repeat(np.arange(len(runs)), [len(run) for run in runs])
    expected = np.lexsort((rows, arrivals, keys)).tolist()

    def no_lexsort(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("tied keys sorted again")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(np, "lexsort", no_lexsort)
        order = merge_order(keys, arrivals, rows)
    assert order.tolist() == expected


def test_writers_claiming_and_merging_at_once_leave_an_exact_store_and_no_stray_file(tmp_path: Path) -> None:
    """Four threads put runs under the store's lock and merge with no lock, as four workers of a version
    would: every merge races the others' claims and merges."""
    lake = Lake(tmp_path)
    shards = {
        f"w{worker}s{number}": shard_keys(10 * worker + number, 60)
        for worker in range(4)
        for number in range(9)
    }
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        keys = KeyStore(lake, "v", "keys", "f1", fanout=2)
        try:
            for shard in [name for name in shards if name.startswith(f"w{number}s")]:
                with lake.lock("v", "keys"):
                    keys.put(shard, shards[shard], np.arange(60), merge=False)
                keys.compact(lambda: lake.lock("v", "keys"))
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    keys = store(tmp_path)
    keys.compact()
    manifest = keys.manifest()
    assert len(keys._loose_shards(manifest)) < 2
    assert files_on_disk(keys) == named_files(keys)
    check_answers(keys, shards)


def test_files_a_dead_merge_left_go_a_day_later_when_a_merge_is_added(tmp_path: Path) -> None:
    """A tier written but never added (its worker died) is removed by the next merge once a day old; a
    younger one may be a merge under way and stays."""
    keys = store(tmp_path)
    shards = {"s0": shard_keys(0, 60), "s1": shard_keys(1, 60)}
    for shard, values in shards.items():
        keys.put(shard, values, np.arange(60), merge=False)
    tiers = Path(keys.folder) / "tiers"
    tiers.mkdir(parents=True)
    for name in ("0dead.arrow", "0dead.bloom", "1young.arrow"):
        (tiers / name).write_bytes(b"left by a merge")
    two_days_ago = time.time() - 2 * ORPHAN_AGE_S
    for name in ("0dead.arrow", "0dead.bloom"):
        os.utime(tiers / name, (two_days_ago, two_days_ago))

    assert keys.compact() == 1
    assert files_on_disk(keys) == named_files(keys) | {"1young.arrow"}
    check_answers(keys, shards)


def test_stray_tiers_on_object_storage_are_told_by_their_last_modified_time(s3: S3Server) -> None:
    keys = KeyStore(Lake(f"s3://curation/lake-{uuid.uuid4().hex}"), "v", "keys", "f1", fanout=2)
    for number in range(2):
        keys.put(f"s{number}", shard_keys(number, 60), np.arange(60))
    folder = f"{keys.folder}/tiers"
    keys.lake.write_bytes(f"{folder}/0dead.arrow", b"left by a merge")
    named = {tier["name"] for tier in keys.manifest()["tiers"]}

    assert stray_tiers(keys.lake, folder, named) == []  # written just now
    later = time.time() + 2 * ORPHAN_AGE_S
    assert stray_tiers(keys.lake, folder, named, now=later) == [f"{folder}/0dead.arrow"]


def test_a_manifest_read_again_unchanged_is_not_parsed_again_and_each_reader_gets_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, other = store(tmp_path), store(tmp_path)
    for number in range(3):
        keys.put(f"s{number}", shard_keys(number, 60), np.arange(60), merge=False)
    keys.compact()
    parsed: list[bytes] = []
    loads = json.loads
    monkeypatch.setattr(json, "loads", lambda data, **kwargs: parsed.append(data) or loads(data, **kwargs))

    first = keys.manifest()
    first["shards"].pop("s0")  # what `remove` does to the manifest it read
    first["tiers"].append({"name": "x"})
    first["next_arrival"] = 99
    assert other.manifest() == json.loads((Path(keys.folder) / "manifest.json").read_bytes())
    assert len(parsed) == 1  # the test's own read: the stores parsed nothing
    other.put("s9", shard_keys(9, 60), np.arange(60), merge=False)  # saved: remembered as written
    assert "s9" in keys.manifest()["shards"] and len(parsed) == 1
    (Path(keys.folder) / "manifest.json").write_bytes(
        json.dumps({**keys.manifest(), "next_arrival": 42}).encode()  # another process's write
    )
    assert keys.manifest()["next_arrival"] == 42 and len(parsed) == 2


def test_a_merge_reads_each_input_a_key_range_at_a_time_and_each_batch_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a remote lake (where a batch read is a ranged request into memory), merging runs of 40 and 30 key
    slices into a tier of 70 slices in 18 ranges (slices that straddle ranges): each range reads only the
    input batches whose key slice meets it, no batch is read twice, the inputs' bytes are read about once,
    and the inputs are read at once, not one after another; the tier answers as a search does."""
    monkeypatch.setattr("curation_dagster.dedup.key_files.BATCH_KEYS", 500)
    monkeypatch.setattr("curation_dagster.dedup.key_files.MERGE_RANGE_KEYS", 2_000)  # 4 slices a range
    lake = counting_lake()
    keys = KeyStore(lake, "v", "keys", "f1", fanout=2)
    rng = np.random.default_rng(11)
    shards = {
        name: rng.integers(0, 2**64 - 1, size, dtype=np.uint64)
        for name, size in (("s0", 20_000), ("s1", 15_000))
    }
    shards["s1"][:40] = shards["s0"][:40]  # keys in both runs
    for shard, values in shards.items():
        keys.put(shard, values, np.arange(len(values)), merge=False)
    runs = [keys._run_path(shard) for shard in shards]
    run_bytes = sum(lake.fs.size(path) for path in runs)
    reads: list[tuple[tuple[int, int], int, int, int]] = []  # (range, file, batch, slices of the file)
    asked = threading.local()
    in_flight, most = [0], [0]
    guard = threading.Lock()
    chunks, batch = key_files.MergeInput.chunks, ArrowFile.batch

    def watched_chunks(entry: Any, low: int, high: int) -> Any:
        asked.range = (low, high)
        return chunks(entry, low, high)

    def watched_batch(file: ArrowFile, index: int) -> Any:
        with guard:
            reads.append((asked.range, id(file), index, int(file.metadata[KEY_SLICES])))
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.005)  # a request's round trip
        with guard:
            in_flight[0] -= 1
        return batch(file, index)

    monkeypatch.setattr(key_files.MergeInput, "chunks", watched_chunks)
    monkeypatch.setattr(ArrowFile, "batch", watched_batch)
    lake.fs.bytes_read = 0
    assert keys.compact() == 1
    monkeypatch.undo()

    assert len({read[0] for read in reads}) == 18
    assert len({(file, index) for _, file, index, _ in reads}) == len(reads) == 70
    for (low, high), _, index, slices in reads:
        starts = [*slice_starts(slices).tolist(), 1 << 64]
        assert starts[index] < high and starts[index + 1] > low  # the batch's key slice meets the range
    assert most[0] >= 2  # the two runs were read at the same time
    assert run_bytes * 0.9 < lake.fs.bytes_read < run_bytes * 1.2
    probes = np.concatenate([shards["s0"][:50], shards["s1"][-5:], np.array([12345], dtype=np.uint64)])
    assert answer(keys.lookup(probes)) == brute_force(shards, list(shards), probes, None)


def test_a_run_written_before_key_slices_is_merged_whole_and_answers_the_same(tmp_path: Path) -> None:
    """A run whose batches are not key slices (a store written before them) is read whole and merges into
    a tier that answers as a search of the runs does."""
    keys = store(tmp_path)
    shards = {f"s{number}": shard_keys(number, 60) for number in range(2)}
    for shard, values in shards.items():
        keys.put(shard, values, np.arange(len(values)), merge=False)
    path = Path(keys._run_path("s0"))
    table = pa.ipc.open_file(pa.BufferReader(path.read_bytes())).read_all()
    metadata = {name: value for name, value in table.schema.metadata.items() if name != KEY_SLICES}
    old = table.replace_schema_metadata(metadata)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, old.schema) as writer:
        for batch in old.to_batches(max_chunksize=7):
            writer.write_batch(batch)
    assert keys.compact() == 1
    check_answers(keys, shards)
