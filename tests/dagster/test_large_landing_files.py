"""A landing file over `$CURATION_MAX_SHARD_BYTES` is registered as several bounded partitions, by the
sensor and by `curation register`, and its raw stage runs part by part with every line kept or rejected
exactly once."""

import json
import os
import zlib
from pathlib import Path

import pytest
from dagster import AssetRecordsFilter, DagsterInstance, build_sensor_context, instance_for_test

from assets.factory import stage_key
from assets.partitions import SHARDS
from assets.runner import materialize, register_shards
from curation_dagster.definitions import build_definitions
from curation_dagster.io import compressed_stream
from curation_dagster.io.lake import Lake
from curation_dagster.spec import parse_spec
from tests.engine.io.compression_fixtures import JSONL_SUFFIX, compress

SPECS = [parse_spec({"name": "first", "modalities": ["text"]})]
BOUND = 200

#: 30 lines of about 75 bytes, one of them not JSON: 2.2 KB in parts of 200 bytes.
LINES = [
    json.dumps({"text": f"Document number {index} talks about rivers, fields and towns."})
    for index in range(30)
]
LINES[13] = '{"text": "this line is not closed'


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    root.mkdir()
    (root / "big.jsonl").write_text("".join(line + "\n" for line in LINES), encoding="utf-8")
    (root / "small.jsonl").write_text(json.dumps({"text": "A small file stays one shard."}) + "\n")
    return root


@pytest.fixture
def defs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, landing: Path):
    monkeypatch.setenv("CURATION_MAX_SHARD_BYTES", str(BOUND))
    return build_definitions(SPECS, lake_root=str(tmp_path / "lake"), landing=str(landing))


def part_keys(landing: Path) -> list[str]:
    count = -(-(landing / "big.jsonl").stat().st_size // BOUND)
    return [f"big.jsonl.part-{index:05d}" for index in range(count)]


def tick(defs, instance: DagsterInstance, cursor: str | None = None):
    sensor = defs.resolve_sensor_def("landing_sensor")
    context = build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources={"lake": defs.resources["lake"]}
    )
    return sensor(context)


def test_the_lake_resource_takes_the_bound_from_the_setting(defs) -> None:
    assert defs.resources["lake"].max_shard_bytes == BOUND


def test_the_sensor_registers_one_partition_per_part_and_requests_each_raw_run(defs, landing: Path) -> None:
    with instance_for_test() as instance:
        result = tick(defs, instance)
        expected = [*part_keys(landing), "small.jsonl"]
        assert len(expected) > 5
        assert result.dynamic_partitions_requests[0].partition_keys == expected
        assert sorted(request.partition_key for request in result.run_requests) == expected


def test_a_changed_large_file_runs_every_part_again_and_registers_only_the_new_ones(
    defs, landing: Path
) -> None:
    with instance_for_test() as instance:
        first = tick(defs, instance)
        instance.add_dynamic_partitions(SHARDS, first.dynamic_partitions_requests[0].partition_keys)
        before = part_keys(landing)
        with (landing / "big.jsonl").open("a", encoding="utf-8") as lines:
            lines.write(json.dumps({"text": "x" * 300}) + "\n")
        os.utime(landing / "big.jsonl", ns=(1, 1))
        result = tick(defs, instance, first.cursor)
        after = part_keys(landing)
        assert after[: len(before)] == before and len(after) > len(before)
        assert result.dynamic_partitions_requests[0].partition_keys == after[len(before) :]
        assert sorted(request.partition_key for request in result.run_requests) == after


def test_register_splits_a_large_file_the_same_way_every_time(landing: Path) -> None:
    with instance_for_test() as instance:
        assert register_shards(instance, landing, BOUND) == [*part_keys(landing), "small.jsonl"]
        assert register_shards(instance, landing, BOUND) == []
        assert instance.get_dynamic_partitions(SHARDS) == [*part_keys(landing), "small.jsonl"]


def test_a_large_file_runs_through_the_raw_stage_part_by_part_with_every_line_once(
    defs, tmp_path: Path, landing: Path
) -> None:
    """Each part is its own partition: its run passes the blocking conservation and unique-id checks, its
    metadata says which bytes it read, and over the parts every line is kept or rejected once."""
    lake = Lake(tmp_path / "lake")
    rows: dict[str, list[str]] = {"kept": [], "rejected": []}
    with instance_for_test() as instance:
        for key in register_shards(instance, landing, BOUND):
            assert materialize(defs, instance, "first", ["raw"], key, say=lambda line: None)
        for index, key in enumerate(part_keys(landing)):
            [record] = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=stage_key("first", "raw"), asset_partitions=[key]), limit=1
            ).records
            metadata = record.asset_materialization.metadata
            assert metadata["source_part"].value.startswith(f"part {index + 1} of {len(part_keys(landing))}:")
            for outcome, found in rows.items():
                table = lake.read_table(lake.path("first", "raw", key, rejected=outcome == "rejected"))
                found += table["uri"].to_pylist()
    starts = [sum(len(line) + 1 for line in LINES[:index]) for index in range(len(LINES))]
    source = landing / "big.jsonl"
    assert sorted(rows["kept"] + rows["rejected"]) == sorted(f"{source}#byte={start}" for start in starts)
    assert rows["rejected"] == [f"{source}#byte={starts[13]}"]


@pytest.mark.parametrize("codec", ["gzip", "zstandard"])
def test_a_large_compressed_file_runs_part_by_part_with_every_line_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, codec: str
) -> None:
    """A `.jsonl.gz` or `.jsonl.zst` file is cut by its compressed bytes; each part's lines keep the
    numbers of the whole file, and over the parts every line is kept or rejected once."""
    monkeypatch.setattr(
        compressed_stream, "FEED_BYTES", 16
    )  # many feeds in a small file, so parts hold lines
    landing = tmp_path / "compressed"
    landing.mkdir()
    source = landing / f"big{JSONL_SUFFIX[codec]}"
    text = "".join(line + "\n" for line in LINES).encode()
    # zstandard gives a block's bytes only once the block has come: blocks of one member per line. One
    # gzip member, a deflate block a line (each ended inside a byte), so that later parts enter in blocks.
    members = [compress(codec, line, 6) for line in text.splitlines(keepends=True)] if codec != "gzip" else []
    deflate = zlib.compressobj(6, zlib.DEFLATED, 31)
    blocks = [deflate.compress(line) + deflate.flush(zlib.Z_BLOCK) for line in text.splitlines(keepends=True)]
    source.write_bytes(b"".join(members) or b"".join(blocks) + deflate.flush())
    bound = source.stat().st_size // 3  # the lines compress to a few hundred bytes
    monkeypatch.setenv("CURATION_MAX_SHARD_BYTES", str(bound))
    defs = build_definitions(SPECS, lake_root=str(tmp_path / "lake"), landing=str(landing))
    lake = Lake(tmp_path / "lake")
    per_part: list[list[str]] = []
    rejected: list[str] = []
    with instance_for_test() as instance:
        keys = register_shards(instance, landing, bound)
        assert keys == [f"{source.name}.part-{i:05d}" for i in range(-(-source.stat().st_size // bound))]
        for key in keys:
            assert materialize(defs, instance, "first", ["raw"], key, say=lambda line: None)
            [record] = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=stage_key("first", "raw"), asset_partitions=[key]), limit=1
            ).records
            metadata = record.asset_materialization.metadata
            assert metadata["source_part"].value.startswith(
                f"part {len(per_part) + 1} of {len(keys)}: items decompressed from compressed bytes "
            )
            # A later part enters the stream at its resume point (`resume_points`): a deflate block's end, or
            # (zstandard) a frame's start, since the file is a frame a line.
            entered = metadata.get("source_entered_at")
            assert (entered is not None) == (key != keys[0])
            assert entered is None or entered.value.startswith("compressed byte ")
            kept = lake.read_table(lake.path("first", "raw", key))["uri"].to_pylist()
            rejected += lake.read_table(lake.path("first", "raw", key, rejected=True))["uri"].to_pylist()
            per_part.append(kept)
    assert sum(1 for uris in per_part if uris) > 1
    every = sorted([uri for uris in per_part for uri in uris] + rejected)
    assert every == sorted(f"{source}#L{number}" for number in range(1, len(LINES) + 1))
    assert rejected == [f"{source}#L14"]
