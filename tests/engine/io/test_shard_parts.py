"""Tests of curation_dagster/io/shard_parts.py: how a large landing file is cut into bounded parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation_dagster.io.shard_parts import ShardPart, part_key, plan_parts, shard_parts


def test_something_that_fits_the_bound_has_no_parts() -> None:
    assert plan_parts(0, 10) == []
    assert plan_parts(10, 10) == []


def test_parts_cover_every_byte_once_and_the_last_one_runs_to_the_end() -> None:
    assert plan_parts(25, 10) == [ShardPart(0, 3, 0, 10), ShardPart(1, 3, 10, 20), ShardPart(2, 3, 20, None)]


def test_a_part_holds_the_items_that_start_in_it() -> None:
    middle, last = ShardPart(1, 3, 10, 20), ShardPart(2, 3, 20, None)
    assert [offset for offset in range(30) if middle.holds(offset)] == list(range(10, 20))
    assert (middle.ends_before(19), middle.ends_before(20), last.ends_before(10**12)) == (False, True, False)
    assert last.holds(10**12)


def test_a_bound_below_one_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one byte"):
        plan_parts(5, 0)


def test_part_keys_are_numbered_with_five_digits_so_they_sort_in_order() -> None:
    keys = [part_key("news.jsonl", index) for index in (0, 9, 10, 123)]
    assert keys == [
        "news.jsonl.part-00000",
        "news.jsonl.part-00009",
        "news.jsonl.part-00010",
        "news.jsonl.part-00123",
    ]
    assert sorted(keys) == keys


def test_a_part_describes_its_bytes() -> None:
    assert ShardPart(1, 3, 10, 20).describe() == "part 2 of 3: items starting in bytes 10-20"
    assert ShardPart(2, 3, 20, None).describe() == "part 3 of 3: items starting in bytes 20-the end"
    assert (
        ShardPart(0, 3, 0, 10, compressed=True).describe()
        == "part 1 of 3: items decompressed from compressed bytes 0-10"
    )


@pytest.mark.parametrize(
    ("head", "compressed"),
    [
        (b"\x1f\x8b", True),
        (b"BZh9", True),
        (b"\xfd7zXZ\x00", True),
        (b"\x28\xb5\x2f\xfd", True),
        (b"a.txt", False),
    ],
    ids=["gzip", "bzip2", "xz", "zstandard", "plain"],
)
def test_a_tar_is_split_by_its_compressed_bytes_when_it_is_compressed(
    tmp_path: Path, head: bytes, compressed: bool
) -> None:
    tar = tmp_path / "a.tar"
    tar.write_bytes(head + b"\0" * 100)
    parts = shard_parts(tar, "tar", 10)
    assert len(parts) == 11
    assert all(part.compressed is compressed for part in parts)


def test_a_compressed_json_lines_file_is_split_into_compressed_parts(tmp_path: Path) -> None:
    shard = tmp_path / "a.jsonl.zst"
    shard.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 100)
    parts = shard_parts(shard, "jsonl.zst", 40)
    assert [(part.start, part.end, part.compressed) for part in parts] == [
        (0, 40, True),
        (40, 80, True),
        (80, None, True),
    ]
