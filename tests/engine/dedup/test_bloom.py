"""The Bloom filters beside key-store files (curation_dagster/dedup/bloom.py): no stored key is ever ruled
out, about 0.2% of absent keys pass, a filter written range by range is the filter written at once, and a
filter of an earlier release (12 bits a key, 4 set, no width in its metadata) is still read right."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation_dagster.dedup import bloom
from curation_dagster.dedup.arrow_files import slice_bounds, slice_starts
from curation_dagster.dedup.bloom import BloomProbes, bloom_writer, build, may_hold, words_per_slice
from curation_dagster.io.lake import Lake


def written(tmp_path: Path, keys: np.ndarray, slices: int, ranges: int = 1) -> str:
    """A filter of the sorted `keys` written in `ranges` parts, as a merge writes one."""
    lake, path = Lake(tmp_path / "lake"), str(tmp_path / "lake" / "keys.bloom")
    words = words_per_slice(len(keys), slices)
    starts = [*slice_starts(slices).tolist(), 1 << 64]
    step = -(-slices // ranges)
    with bloom_writer(lake, path, slices, words) as writer:
        for first in range(0, slices, step):
            last = min(first + step, slices)
            low, high = np.searchsorted(keys, np.uint64(starts[first])), len(keys)
            if last < slices:
                high = int(np.searchsorted(keys, np.uint64(starts[last])))
            writer.write(build(keys[low:high], first, last, slices, words))
    return path


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=400),
    st.integers(1, 9),
    st.integers(1, 4),
)
def test_no_stored_key_is_ever_ruled_out(
    tmp_path_factory, values: list[int], slices: int, ranges: int
) -> None:
    keys = np.sort(np.array(values, dtype=np.uint64))
    path = written(tmp_path_factory.mktemp("bloom"), keys, slices, ranges)
    assert may_hold(Lake(Path(path).parent), path, BloomProbes.of(keys)).all()


def absent_passing(tmp_path: Path, path: str, keys: np.ndarray, seed: int = 1) -> float:
    """The share of 400,000 random keys not in `keys` that the filter at `path` lets through."""
    absent = np.sort(np.random.default_rng(seed).integers(0, 2**64 - 1, 400_000, dtype=np.uint64))
    absent = absent[~np.isin(absent, keys)]
    return float(may_hold(Lake(tmp_path / "lake"), path, BloomProbes.of(absent)).mean())


def test_about_two_absent_keys_in_a_thousand_pass(tmp_path: Path) -> None:
    keys = np.sort(np.random.default_rng(2).integers(0, 2**64 - 1, 200_000, dtype=np.uint64))
    path = written(tmp_path, keys, slices=4)
    assert 0.0005 < absent_passing(tmp_path, path, keys) < 0.004


def test_a_filter_of_an_earlier_release_never_rules_out_its_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written with 12 bits a key and 4 set, and without `bloom_bits_set` in its metadata, as before: read
    with 4 bits a key, not today's 6, which would rule out most of its own keys."""
    keys = np.sort(np.random.default_rng(3).integers(0, 2**64 - 1, 50_000, dtype=np.uint64))
    with monkeypatch.context() as patched:
        patched.setattr(bloom, "BITS_PER_KEY", 12)
        patched.setattr(bloom, "BITS_SET", 4)
        path = written(tmp_path, keys, slices=3)
    table = pa.ipc.open_file(path).read_all()
    metadata = {key: value for key, value in table.schema.metadata.items() if key != b"bloom_bits_set"}
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema.with_metadata(metadata)) as out:
        out.write_table(table)

    assert may_hold(Lake(tmp_path / "lake"), path, BloomProbes.of(keys)).all()
    assert 0.003 < absent_passing(tmp_path, path, keys) < 0.03


def test_structured_keys_are_spread_over_the_words_like_hashes(tmp_path: Path) -> None:
    """Small consecutive integers (not hashes) still pass rarely when absent: the key is mixed first."""
    keys = np.arange(0, 100_000, 2, dtype=np.uint64)
    path = written(tmp_path, keys, slices=1)
    odd = BloomProbes.of(np.arange(1, 100_000, 2, dtype=np.uint64))
    assert may_hold(Lake(tmp_path / "lake"), path, odd).mean() < 0.005


def test_a_filter_written_by_ranges_has_the_words_of_one_written_at_once(tmp_path: Path) -> None:
    keys = np.sort(np.random.default_rng(2).integers(0, 2**64 - 1, 5_000, dtype=np.uint64))
    slices = 7
    words = words_per_slice(len(keys), slices)
    whole = build(keys, 0, slices, slices, words)
    cuts = slice_bounds(keys, slice_starts(slices)[1:])
    parts = [build(keys[cut], index, index + 1, slices, words) for index, cut in enumerate(cuts)]
    assert np.array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("batch_words", [5, 50, 65_536])
def test_a_filter_in_many_record_batches_answers_as_one_in_a_single_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_words: int
) -> None:
    """Batches of one slice, of three slices with a short last one, and one batch for the whole file."""
    monkeypatch.setattr("curation_dagster.dedup.bloom.WORDS_PER_BATCH", batch_words)
    rng = np.random.default_rng(4)
    keys = np.sort(rng.integers(0, 2**64 - 1, 3_000, dtype=np.uint64))
    path = written(tmp_path, keys, slices=40, ranges=3)
    lake = Lake(tmp_path / "lake")
    assert may_hold(lake, path, BloomProbes.of(keys)).all()
    absent = np.sort(rng.integers(0, 2**64 - 1, 3_000, dtype=np.uint64))
    assert may_hold(lake, path, BloomProbes.of(absent)).mean() < 0.01


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=300), st.integers(1, 7))
def test_the_bits_a_key_sets_are_the_6_bit_fields_of_its_mix_from_the_lowest(
    values: list[int], bits_set: int
) -> None:
    """The layout every filter on disk was written with: looking two fields up at a time must set the very
    bits one field at a time does, for either width and odd ones."""
    probes = BloomProbes.of(np.array(sorted(values), dtype=np.uint64))
    expected = []
    for mixed in probes.mixed.tolist():
        mask = 0
        for field in range(bits_set):
            mask |= 1 << ((mixed >> (6 * field)) & 63)
        expected.append(mask)
    assert probes.masks(bits_set).tolist() == expected
