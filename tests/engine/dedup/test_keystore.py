"""The sorted key store behind cross-shard lookups (curation_dagster/dedup/keystore.py): exact answers
whatever the merging, earliest shards first, re-runs and removals honoured, few files per lookup."""

import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation_dagster.dedup import keystore
from curation_dagster.dedup.key_matches import ProbeGroups, ProbeTable
from curation_dagster.dedup.keystore import KeyStore
from curation_dagster.errors import SpecError
from curation_dagster.io.lake import Lake
from tests.engine.dedup.remote_fixtures import counting_lake
from tests.servers import S3Server


def store(tmp_path: Path, fanout: int = 3, fingerprint: str = "f1") -> KeyStore:
    return KeyStore(Lake(tmp_path / "lake"), "v", "keys", fingerprint, fanout=fanout)


def shard_keys(seed: int, count: int = 200) -> np.ndarray:
    """Keys from a small range, so shards share many of them."""
    return np.random.default_rng(seed).integers(0, 500, count).astype(np.uint64)


def brute_force(shards: dict[str, np.ndarray], order: list[str], probes: np.ndarray, exclude: str | None):
    """Every (probe, shard, row) with equal keys, sorted by probe, arrival, row."""
    out = []
    for position, probe in enumerate(probes.tolist()):
        for arrival, shard in enumerate(order):
            if shard == exclude:
                continue
            out.extend(
                (position, arrival, shard, row) for row in np.nonzero(shards[shard] == probe)[0].tolist()
            )
    return sorted(out)


def answer(matches) -> list[tuple[int, int, str, int]]:
    return [
        (int(p), int(a), s, int(r))
        for p, a, s, r in zip(matches.probes, matches.arrivals, matches.shards, matches.rows, strict=True)
    ]


def test_lookup_returns_exactly_the_equal_keys_of_every_other_shard_across_merged_tiers(
    tmp_path: Path,
) -> None:
    keys = store(tmp_path)
    shards = {f"s{number:02d}": shard_keys(number) for number in range(14)}
    for shard, values in shards.items():
        keys.put(shard, values, np.arange(len(values)))
    manifest = keys.manifest()
    # 14 shards at fanout 3: three level-1 tiers became one level-2 tier, three more runs one more
    # level-1 tier, and two runs stay loose.
    assert sorted(tier["level"] for tier in manifest["tiers"]) == [1, 2]
    assert keys._loose_shards(manifest) == ["s12", "s13"]
    probes = np.array([7, 3, 7, 499, 1000], dtype=np.uint64)
    order = list(shards)
    assert answer(keys.lookup(probes, exclude="s04")) == brute_force(shards, order, probes, "s04")
    assert answer(keys.lookup(probes)) == brute_force(shards, order, probes, None)


def test_a_shard_run_again_with_new_keys_replaces_its_old_entries_in_merged_tiers(tmp_path: Path) -> None:
    keys = store(tmp_path)
    shards = {f"s{number}": shard_keys(number) for number in range(6)}
    for shard, values in shards.items():
        keys.put(shard, values, np.arange(len(values)))
    shards["s1"] = np.array([10_000, 10_001], dtype=np.uint64)
    keys.put("s1", shards["s1"], np.arange(2))
    probes = np.array([10_000, *shard_keys(1)[:5].tolist()], dtype=np.uint64)
    assert answer(keys.lookup(probes)) == brute_force(shards, list(shards), probes, None)
    assert keys.shards() == list(shards)  # the rerun keeps its arrival number


def test_a_removed_shard_is_never_answered_again(tmp_path: Path) -> None:
    keys = store(tmp_path)
    for number in range(4):
        keys.put(f"s{number}", np.array([5, number], dtype=np.uint64), np.arange(2))
    keys.remove("s0")
    assert sorted(keys.lookup(np.array([5], dtype=np.uint64)).shards) == ["s1", "s2", "s3"]
    keys.put("s9", np.array([5], dtype=np.uint64), np.arange(1))
    assert keys.lookup(np.array([5], dtype=np.uint64)).shards == ["s1", "s2", "s3", "s9"]


def test_first_per_probe_keeps_the_earliest_shards(tmp_path: Path) -> None:
    keys = store(tmp_path, fanout=8)
    for number in range(5):
        keys.put(f"s{number}", np.array([42, 42], dtype=np.uint64), np.array([1, 0]))
    first = keys.lookup(np.array([42, 1], dtype=np.uint64)).first_per_probe(3)
    assert list(zip(first.shards, first.rows.tolist(), strict=True)) == [("s0", 0), ("s0", 1), ("s1", 0)]


def test_files_read_per_lookup_grow_logarithmically(tmp_path: Path) -> None:
    keys = store(tmp_path, fanout=4)
    for number in range(64):
        keys.put(f"s{number:02d}", shard_keys(number, 20), np.arange(20))
    manifest = keys.manifest()
    loose = len(keys._loose_shards(manifest))
    assert len(manifest["tiers"]) + loose <= 3 * 3  # at most fanout - 1 files per level, 3 levels


def test_a_store_built_with_other_settings_is_refused(tmp_path: Path) -> None:
    store(tmp_path).put("s0", np.array([1], dtype=np.uint64), np.arange(1))
    with pytest.raises(SpecError, match="other settings"):
        store(tmp_path, fingerprint="f2").lookup(np.array([1], dtype=np.uint64))


def test_empty_store_and_empty_probes_match_nothing(tmp_path: Path) -> None:
    keys = store(tmp_path)
    assert len(keys.lookup(np.array([1], dtype=np.uint64))) == 0
    keys.put("s0", np.zeros(0, dtype=np.uint64), np.zeros(0))
    assert len(keys.lookup(np.array([1], dtype=np.uint64))) == 0
    assert len(keys.lookup(np.zeros(0, dtype=np.uint64))) == 0


def test_a_merge_writes_key_ranges_in_bounded_batches_and_answers_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("curation_dagster.dedup.key_files.MERGE_RANGE_KEYS", 50)
    keys = store(tmp_path, fanout=2)
    rng = np.random.default_rng(3)
    shards = {f"s{number}": rng.integers(0, 2**64 - 1, 120, dtype=np.uint64) for number in range(4)}
    shards["s3"][:5] = shards["s0"][:5]  # shared keys across tiers
    for shard, values in shards.items():
        keys.put(shard, values, np.arange(len(values)))
    (tier,) = keys.manifest()["tiers"]
    batches = keys._read(keys._tier_path(tier["name"]))[0].column("key").num_chunks
    assert tier["keys"] == 480 and batches == 10  # ceil(480 / 50) key ranges
    probes = np.concatenate([shards["s0"][:7], shards["s2"][-3:], np.array([12345], dtype=np.uint64)])
    assert answer(keys.lookup(probes)) == brute_force(shards, list(shards), probes, None)


def test_a_lookup_whose_manifest_went_stale_during_a_merge_reads_the_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = store(tmp_path, fanout=2)
    shards = {f"s{number}": shard_keys(number, 50) for number in range(4)}
    keys.put("s0", shards["s0"], np.arange(50))
    keys.put("s1", shards["s1"], np.arange(50))
    stale = keys.manifest()  # names the level-1 tier of s0 and s1
    keys.put("s2", shards["s2"], np.arange(50))
    keys.put("s3", shards["s3"], np.arange(50))  # merges both level-1 tiers; the first is deleted
    assert {tier["name"] for tier in stale["tiers"]}.isdisjoint(t["name"] for t in keys.manifest()["tiers"])
    reads = iter([stale])
    current = keys.manifest
    monkeypatch.setattr(keys, "manifest", lambda: next(reads, None) or current())

    probes = np.concatenate([shards["s0"][:3], shards["s3"][:3]])
    assert answer(keys.lookup(probes)) == brute_force(shards, list(shards), probes, None)


def test_a_lookup_on_a_remote_lake_reads_the_batches_of_its_keys_not_the_tier(tmp_path: Path) -> None:
    remote_lake = counting_lake()
    remote = KeyStore(remote_lake, "v", "keys", "f1", fanout=2)
    local = store(tmp_path, fanout=2)
    rng = np.random.default_rng(5)
    shards = {name: rng.integers(0, 2**64 - 1, 2_000_000, dtype=np.uint64) for name in ("s0", "s1")}
    shards["s1"][:3] = shards["s0"][:3]
    for keys in (remote, local):
        for shard, values in shards.items():
            keys.put(shard, values, np.arange(len(values)))
    (tier,) = remote.manifest()["tiers"]  # both runs merged into one tier of 4 million keys
    tier_bytes = remote_lake.fs.size(remote._tier_path(tier["name"]))
    probes = np.array([shards["s0"][1], shards["s1"][-1], 12345], dtype=np.uint64)

    remote_lake.fs.bytes_read = 0
    found = remote.lookup(probes)

    assert tier_bytes > 60_000_000
    assert remote_lake.fs.bytes_read < tier_bytes // 10
    assert answer(found) == answer(local.lookup(probes))
    assert answer(found) == [(0, 0, "s0", 1), (0, 1, "s1", 1), (1, 1, "s1", 1_999_999)]


def test_a_store_on_object_storage_merges_and_answers_as_a_local_one(s3: S3Server, tmp_path: Path) -> None:
    remote = KeyStore(Lake(f"s3://curation/lake-{uuid.uuid4().hex}"), "v", "keys", "f1", fanout=2)
    local = store(tmp_path, fanout=2)
    shards = {f"s{number}": shard_keys(number) for number in range(5)}
    for keys in (remote, local):
        for shard, values in shards.items():
            keys.put(shard, values, np.arange(len(values)))
        keys.put("s1", shards["s1"][:50], np.arange(50))  # a rerun replaces a run that a tier holds
    shards["s1"] = shards["s1"][:50]
    assert sorted(tier["level"] for tier in remote.manifest()["tiers"]) == [1, 2]
    probes = np.array([7, 3, 499, 1000], dtype=np.uint64)
    assert answer(remote.lookup(probes, exclude="s2")) == answer(local.lookup(probes, exclude="s2"))
    assert answer(remote.lookup(probes)) == brute_force(shards, list(shards), probes, None)


def test_payloads_come_back_with_their_entries_through_merges_and_reruns(tmp_path: Path) -> None:
    keys = KeyStore(Lake(tmp_path / "lake"), "v", "keys", "f1", fanout=3, payload=True)
    shards = {f"s{number:02d}": shard_keys(number, 50) for number in range(8)}
    values = {shard: (found * 1_000_003 + 7).astype(np.uint64) for shard, found in shards.items()}
    for shard in shards:
        keys.put(shard, shards[shard], np.arange(50), values[shard] + np.arange(50, dtype=np.uint64))
    keys.put("s03", shards["s03"], np.arange(50), values["s03"])  # run again with other payloads
    matches = keys.lookup(np.arange(500, dtype=np.uint64))
    assert len(matches) == sum(len(found) for found in shards.values())
    for shard, row, payload in zip(
        matches.shards, matches.rows.tolist(), matches.payloads.tolist(), strict=True
    ):
        extra = 0 if shard == "s03" else row
        assert payload == int(values[shard][row]) + extra


def test_a_store_refuses_payloads_it_was_not_made_for(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="payloads"):
        store(tmp_path).put("s", np.arange(3, dtype=np.uint64), np.arange(3), np.arange(3, dtype=np.uint64))
    with pytest.raises(ValueError, match="payloads"):
        KeyStore(Lake(tmp_path / "lake"), "v", "other", "f", payload=True).put(
            "s", np.arange(3), np.arange(3)
        )


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_a_lookup_after_a_prefetch_answers_as_a_fresh_one_whatever_changed_in_between(
    tmp_path: Path, seed: int, grouped: bool
) -> None:
    rng = np.random.default_rng(seed)
    keys = KeyStore(Lake(tmp_path / "lake"), "v", "keys", "f1", fanout=3, payload=True)

    def put(shard: str, number: int) -> None:
        found = shard_keys(number, 60)
        keys.put(shard, found, np.arange(60), found * np.uint64(3))

    for number in range(7):
        put(f"s{number}", number)
    probes = rng.integers(0, 500, 300).astype(np.uint64)
    prefetched = keys.prefetch(probes, exclude="s2", grouped=grouped)
    put("s1", 100)  # run again with other keys
    keys.remove("s4")
    for number in range(7, 12):  # arrive, and merge tiers
        put(f"s{number}", number)
    subset = probes[rng.random(len(probes)) < 0.7]
    extra = np.array([501, 502, 7], dtype=np.uint64)  # keys the prefetch never searched
    for asked in (probes, probes.copy(), subset, np.concatenate([subset, extra])):
        after = keys.lookup(asked, exclude="s2", prefetched=prefetched)
        fresh = keys.lookup(asked, exclude="s2")
        assert answer(after) == answer(fresh)
        assert after.payloads.tolist() == fresh.payloads.tolist()
    with pytest.raises(ValueError, match="another shard"):
        keys.lookup(subset, exclude="s3", prefetched=prefetched)


def test_a_lookup_of_the_probes_prefetched_grouped_does_not_group_them_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the claim lock a media look-up asks the very probes its prefetch grouped (a million for 100
    pictures): sorting them again took about 0.1 s of the lock's time per shard."""
    keys = KeyStore(Lake(tmp_path / "lake"), "v", "keys", "f1", payload=True)
    keys.put("s0", shard_keys(0, 60), np.arange(60), shard_keys(0, 60))
    probes = np.random.default_rng(5).integers(0, 500, 400).astype(np.uint64)
    prefetched = keys.prefetch(probes, exclude="s9", grouped=True)
    keys.put("s1", shard_keys(1, 60), np.arange(60), shard_keys(1, 60))  # arrives in between
    grouped: list[int] = []
    original = ProbeGroups.of

    def counting(values: np.ndarray) -> ProbeGroups:
        grouped.append(len(values))
        return original(values)

    monkeypatch.setattr(ProbeGroups, "of", counting)
    after = keys.lookup(probes, exclude="s9", prefetched=prefetched)
    assert grouped == []
    assert answer(after) == answer(keys.lookup(probes, exclude="s9"))
    assert grouped == [len(probes)]
    assert {"s0", "s1"} <= set(after.shards)


@pytest.mark.parametrize("seed", range(3))
def test_lookups_of_few_keys_in_large_files_answer_exactly_through_the_filters(
    tmp_path: Path, seed: int
) -> None:
    """Fewer probes than a file has entries: each file's filter is asked first, across merges, a rerun and
    a removal."""
    rng = np.random.default_rng(seed)
    keys = store(tmp_path, fanout=3)
    shards = {f"s{number:02d}": rng.integers(0, 20_000, 400).astype(np.uint64) for number in range(12)}
    for shard, values in shards.items():
        keys.put(shard, values, np.arange(400))
    shards["s04"] = rng.integers(0, 20_000, 400).astype(np.uint64)
    keys.put("s04", shards["s04"], np.arange(400))
    keys.remove("s07")
    shards["s07"] = np.zeros(0, dtype=np.uint64)  # keeps its place in the arrival order, answers nothing
    order = list(shards)
    probes = np.concatenate(
        [shards["s04"][:10], shards["s10"][-10:], rng.integers(0, 20_000, 30).astype(np.uint64)]
    )
    assert answer(keys.lookup(probes, exclude="s02")) == brute_force(shards, order, probes, "s02")


def test_a_remote_lookup_of_absent_keys_reads_the_filter_not_the_key_batches(tmp_path: Path) -> None:
    remote_lake = counting_lake()
    keys = KeyStore(remote_lake, "v", "keys", "f1", fanout=2)
    rng = np.random.default_rng(6)
    for shard in ("s0", "s1"):
        keys.put(shard, rng.integers(0, 2**64 - 1, 2_000_000, dtype=np.uint64), np.arange(2_000_000))
    (tier,) = keys.manifest()["tiers"]
    tier_bytes = remote_lake.fs.size(keys._tier_path(tier["name"]))
    # 500 probes land in every one of the tier's 62 key batches: without the filter all would be read.
    absent = rng.integers(0, 2**64 - 1, 500, dtype=np.uint64)

    remote_lake.fs.bytes_read = 0
    found = keys.lookup(absent)

    assert len(found) == 0
    assert remote_lake.fs.bytes_read < tier_bytes // 4


def bloom_files(keys: KeyStore) -> set[str]:
    folder = Path(keys.folder)
    return {str(path.relative_to(folder)) for path in folder.rglob("*.bloom")}


def named_filters(keys: KeyStore) -> set[str]:
    """The filters that the store's current runs and tiers name."""
    manifest = keys.manifest()
    named = {f"runs/{shard}.{entry['token']}.bloom" for shard, entry in manifest["shards"].items()}
    return named | {f"tiers/{tier['name']}.bloom" for tier in manifest["tiers"]}


def test_filters_of_replaced_runs_removed_shards_and_merged_tiers_go_with_them(tmp_path: Path) -> None:
    keys = store(tmp_path, fanout=2)
    for number in range(5):
        keys.put(f"s{number}", shard_keys(number, 40), np.arange(40))
    keys.put("s1", shard_keys(99, 40), np.arange(40))  # run again with other keys
    keys.remove("s3")
    assert bloom_files(keys) == named_filters(keys)


def test_a_run_whose_write_failed_after_its_filter_still_answers_with_its_own_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = store(tmp_path, fanout=8)
    shards = {f"s{number}": shard_keys(number, 600) for number in range(3)}
    for shard, values in shards.items():
        keys.put(shard, values, np.arange(600))

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("curation_dagster.dedup.key_files.write_batches", fail)
    with pytest.raises(OSError, match="disk full"):
        keys.put("s1", np.arange(1000, 1600, dtype=np.uint64), np.arange(600))  # the new filter is written
    monkeypatch.undo()
    probes = np.arange(0, 500, 10, dtype=np.uint64)  # fewer probes than a run has keys: filters are asked
    assert answer(keys.lookup(probes)) == brute_force(shards, list(shards), probes, None)


def test_files_written_before_filters_existed_are_searched_without_one(tmp_path: Path) -> None:
    keys = store(tmp_path, fanout=3)
    shards = {f"s{number}": shard_keys(number, 80) for number in range(7)}
    for shard, values in shards.items():
        keys.put(shard, values, np.arange(80))
    for path in Path(keys.folder).rglob("*.arrow"):  # as an earlier release wrote them
        table = pa.ipc.open_file(pa.py_buffer(path.read_bytes())).read_all()
        metadata = {k: v for k, v in table.schema.metadata.items() if k != b"bloom"}
        with (
            pa.OSFile(str(path), "wb") as sink,
            pa.ipc.new_file(sink, table.schema.with_metadata(metadata)) as out,
        ):
            out.write_table(table)
    for path in Path(keys.folder).rglob("*.bloom"):
        path.unlink()
    probes = np.arange(520, dtype=np.uint64)
    assert answer(keys.lookup(probes, exclude="s5")) == brute_force(shards, list(shards), probes, "s5")


def test_a_runs_filter_built_range_by_range_is_the_filter_built_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's filter words are built a key range at a time, so its temporaries do not grow with the run."""
    monkeypatch.setattr("curation_dagster.dedup.key_files.MERGE_RANGE_KEYS", 50)  # slices of 50 keys
    values = np.random.default_rng(8).integers(0, 2**64 - 1, 1000, dtype=np.uint64)
    written = {}
    for name, range_keys in (("once", 10**9), ("ranges", 120)):
        monkeypatch.setattr("curation_dagster.dedup.key_files.BLOOM_RANGE_KEYS", range_keys)
        keys = store(tmp_path / name)
        keys.put("s0", values, np.arange(len(values)))
        (bloom,) = (tmp_path / name).rglob("*.bloom")
        written[name] = (bloom.name, bloom.read_bytes())
    assert written["ranges"] == written["once"]
    assert answer(keys.lookup(values[:9])) == brute_force({"s0": values}, ["s0"], values[:9], None)


@settings(max_examples=60, deadline=None)
@given(
    keys=st.sets(st.integers(0, 2**64 - 1), max_size=300) | st.sets(st.integers(0, 40), max_size=30),
    extra=st.lists(st.integers(0, 2**64 - 1), max_size=100),
    clustered=st.booleans(),
)
def test_a_probe_table_finds_exactly_the_keys_a_binary_search_finds(keys, extra, clustered) -> None:
    # Mixed keys (a bucket holds about one) and small keys that all share one bucket (binary-searched).
    unique = np.array(sorted(keys), dtype=np.uint64)
    pool = list(keys) + extra + ([1, 2, 3] if clustered else [])
    values = np.array(pool, dtype=np.uint64)
    found = ProbeTable(unique).find(values)
    expected = np.array(
        [sorted(keys).index(value) if value in keys else -1 for value in pool], dtype=np.int64
    )
    assert found.tolist() == expected.tolist()


def test_a_probe_table_turns_away_values_whose_top_bits_no_key_has_before_its_buckets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tier read whole against many probes: most of its entries share no top bits with any probe and
    never reach the bucket table."""
    rng = np.random.default_rng(6)
    unique = np.unique(rng.integers(0, 2**64 - 1, 100_000, dtype=np.uint64))
    values = np.concatenate([rng.integers(0, 2**64 - 1, 50_000, dtype=np.uint64), unique[::100]])
    table = ProbeTable(unique)
    asked: list[int] = []
    find = ProbeTable._find
    monkeypatch.setattr(
        ProbeTable, "_find", lambda self, wanted: asked.append(len(wanted)) or find(self, wanted)
    )
    planted = set(unique[::100].tolist())
    found = table.find(values)
    positions = np.searchsorted(unique, values)
    assert found.tolist() == [
        int(p) if v in planted else -1 for v, p in zip(values.tolist(), positions, strict=True)
    ]
    assert asked[0] < len(values) // 5  # about an eighth of absent values pass the bitmap


def test_lookups_of_more_probes_than_a_files_entries_answer_the_same_through_a_probe_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Mixed keys, as the stores hold: a key of one shard in about 60 equals a key of another.
    rng = np.random.default_rng(4)
    pool = rng.integers(0, 2**64, size=3000, dtype=np.uint64)
    shards = {f"s{number:02d}": rng.choice(pool, 50) for number in range(10)}
    keys = store(tmp_path)
    for shard, values in shards.items():
        keys.put(shard, values, np.arange(len(values)))
    probes = np.concatenate([rng.choice(pool, 2000), rng.integers(0, 2**64, size=500, dtype=np.uint64)])
    order = list(shards)
    expected = brute_force(shards, order, probes, "s03")
    assert len(expected) > 100
    for threshold in (10**9, 1):  # never a table, then a table for every file with fewer entries
        monkeypatch.setattr(keystore, "TABLE_PROBES", threshold)
        assert answer(keys.lookup(probes, exclude="s03")) == expected
        assert answer(keys.lookup(probes, exclude="s03", prefetched=keys.prefetch(probes, "s03"))) == expected
