"""Tests for `curation_dagster/dedup/sketch_spill.py`: sketches kept on disk read back as the sketches
that went in, whether mapped, sliced or copied, and their folder goes with them."""

import gc

import numpy as np
import pytest

from curation_dagster.dedup import sketch_spill
from curation_dagster.dedup.minhash import dedup_signatures
from curation_dagster.dedup.sketch_spill import MappedSketches, SketchSpill
from curation_dagster.dedup.word_sketch import WordSketches
from curation_dagster.spec import NearDedupSettings

SETTINGS = NearDedupSettings()


def batch(seed: int, documents: int) -> WordSketches:
    """Sketches (with pair sketches) of random documents, some empty."""
    rng = np.random.default_rng(seed)
    words = [f"w{number}" for number in range(400)]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(0, 60)))) for _ in range(documents)]
    sketches = dedup_signatures(texts, SETTINGS).sketches
    assert sketches is not None and sketches.pairs is not None
    return sketches


def same(first: WordSketches, second: WordSketches) -> None:
    for left, right in ((first, second), (first.pairs, second.pairs)):
        assert left is not None and right is not None
        assert np.asarray(left.values).tolist() == np.asarray(right.values).tolist()
        assert left.offsets.tolist() == right.offsets.tolist()
        assert left.words.tolist() == right.words.tolist()


@pytest.fixture
def parts() -> list[WordSketches]:
    return [batch(1, 30), batch(2, 1), batch(3, 45)]


def spilled(parts: list[WordSketches]) -> SketchSpill:
    spill = SketchSpill()
    for part in parts:
        spill.append(part)
    return spill


def test_spilled_sketches_read_back_as_they_went_in(parts: list[WordSketches]) -> None:
    spill = spilled(parts)
    joined = WordSketches.join(list(parts))
    assert len(spill) == 76
    assert spill.nbytes == joined.nbytes
    mapped = spill.sketches()
    assert isinstance(mapped, MappedSketches)
    same(mapped, joined)
    same(spill.slice(10, 50), joined.slice(10, 50))


def test_gathers_from_the_map_equal_gathers_from_memory(
    parts: list[WordSketches], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sketch_spill, "_ROWS_PER_GATHER", 7)  # several releases within one gather
    spill = spilled(parts)
    joined = WordSketches.join(list(parts))
    rows = np.random.default_rng(0).integers(0, 76, size=50)
    same(spill.sketches().take(rows), joined.take(rows))


def test_take_copies_the_kept_documents_in_order(
    parts: list[WordSketches], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sketch_spill, "_ROWS_PER_READ", 16)  # the copy crosses several reads
    spill = spilled(parts)
    keep = np.random.default_rng(1).random(76) < 0.5
    same(spill.take(keep).sketches(), WordSketches.join(list(parts)).take(np.flatnonzero(keep)))


def test_a_spill_without_values_reads_back_empty_sketches() -> None:
    spill = SketchSpill()
    spill.append(WordSketches.empty(3, pairs=True))
    sketches = spill.sketches()
    assert len(sketches) == 3 and len(sketches.values) == 0
    assert sketches.pairs is not None and len(sketches.pairs) == 3


def test_sealed_spill_takes_no_more_documents(parts: list[WordSketches]) -> None:
    spill = SketchSpill()
    spill.append(parts[0])
    spill.sketches()
    with pytest.raises(RuntimeError, match="sealed"):
        spill.append(parts[1])


def test_a_sketch_without_pair_sketches_is_refused(parts: list[WordSketches]) -> None:
    with pytest.raises(ValueError, match="pair sketches"):
        SketchSpill().append(parts[0].with_pairs(None))


def test_the_folder_goes_on_close_and_with_the_spill(parts: list[WordSketches]) -> None:
    closed = SketchSpill()
    closed.append(parts[0])
    closed.close()
    assert not closed.folder.exists()
    dropped = SketchSpill()
    dropped.append(parts[0])
    folder = dropped.folder
    assert folder.exists()
    del dropped
    gc.collect()
    assert not folder.exists()


def test_the_folder_is_under_the_given_temporary_folder(tmp_path: object) -> None:
    spill = SketchSpill(str(tmp_path))
    assert spill.folder.parent == tmp_path


def test_sketches_whose_offsets_do_not_start_at_zero_spill_their_own_values(
    parts: list[WordSketches],
) -> None:
    part = parts[0]
    assert part.pairs is not None
    junk = np.arange(7, dtype=np.uint32)
    shifted = WordSketches(np.concatenate([junk, part.values]), part.offsets + 7, part.words).with_pairs(
        WordSketches(np.concatenate([junk, part.pairs.values]), part.pairs.offsets + 7, part.pairs.words)
    )
    spill = spilled([shifted])
    same(spill.sketches(), part)
