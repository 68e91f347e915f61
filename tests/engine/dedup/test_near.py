"""Tests for `curation_dagster/dedup/near.py`'s shard-level parts: the band keys a shard indexes and its
signatures once another step removed some of its items."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from curation_dagster.dedup import range_sort
from curation_dagster.dedup.near import INDEXED_PER_BUCKET, ShardSignatures, indexed_bands
from curation_dagster.spec import NearDedupSettings


def per_band_reference(usable: np.ndarray, keys: np.ndarray) -> list[tuple[int, int]]:
    """The rule said plainly: per band, each bucket's first `INDEXED_PER_BUCKET` rows; then sorted."""
    entries = []
    for band in range(keys.shape[1]):
        buckets: dict[int, list[int]] = {}
        for position, key in enumerate(keys[:, band].tolist()):
            buckets.setdefault(key, []).append(int(usable[position]))
        entries += [(key, row) for key, rows in buckets.items() for row in rows[:INDEXED_PER_BUCKET]]
    return sorted(entries)


@settings(max_examples=50, deadline=None)
@given(data=st.data(), documents=st.integers(0, 40), bands=st.integers(1, 4))
def test_indexed_bands_keep_each_buckets_first_rows_sorted(
    data: st.DataObject, documents: int, bands: int
) -> None:
    # Few distinct keys per band (buckets of many rows), and each band its own keys, as band_keys mixes
    # the band number in.
    small = data.draw(hnp.arrays(np.uint64, (documents, bands), elements=st.integers(0, 3)))
    keys = small * np.uint64(2**60 // 4) + np.arange(bands, dtype=np.uint64) * np.uint64(2**62 // 16 + 1)
    usable = np.array(sorted(data.draw(st.sets(st.integers(0, 200), min_size=documents, max_size=documents))))
    expected = per_band_reference(usable, keys)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(range_sort, "SORT_RANGE_KEYS", 5)  # several key ranges
        indexed_keys, indexed_rows = indexed_bands(usable, keys)
    assert indexed_rows.dtype == np.uint32
    assert list(zip(indexed_keys.tolist(), indexed_rows.tolist(), strict=True)) == expected


def test_signatures_without_removed_items_match_signing_the_rest() -> None:
    settings_ = NearDedupSettings()
    texts = [
        f"document {number} " + " ".join(f"word{(number * 7 + k) % 90}" for k in range(40))
        for number in range(9)
    ]
    ids = [f"item-{number}" for number in range(9)]
    whole = ShardSignatures(settings_, capacity=9)
    whole.add(ids[:4], texts[:4])
    whole.add(ids[4:], texts[4:])
    removed = {"item-0", "item-5", "item-8"}
    kept = whole.without(removed)
    assert not whole.spill.folder.exists()  # the old sketches went with the copy
    rest = [number for number in range(9) if ids[number] not in removed]
    fresh = ShardSignatures(settings_, capacity=len(rest))
    fresh.add([ids[number] for number in rest], [texts[number] for number in rest])
    assert kept.ids == fresh.ids
    assert kept.sigs.tolist() == fresh.sigs.tolist()
    assert kept.keys.tolist() == fresh.keys.tolist()
    for left, right in ((kept.sketches, fresh.sketches), (kept.sketches.pairs, fresh.sketches.pairs)):
        assert left is not None and right is not None
        assert np.asarray(left.values).tolist() == np.asarray(right.values).tolist()
        assert left.offsets.tolist() == right.offsets.tolist()
        assert left.words.tolist() == right.words.tolist()


def test_signatures_without_nothing_removed_are_the_same_object() -> None:
    shard = ShardSignatures(NearDedupSettings(), capacity=1)
    shard.add(["a"], ["one two three four"])
    assert shard.without({"b"}) is shard
