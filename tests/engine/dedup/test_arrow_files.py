"""Arrow IPC files of the dedup indexes (curation_dagster/dedup/arrow_files.py): written in bounded record
batches, read in parts, the same rows on a local and a remote lake."""

from pathlib import Path

import numpy as np
import pyarrow as pa

from curation_dagster.dedup.arrow_files import (
    BATCH_BYTES,
    KEY_SLICES,
    ArrowFile,
    read_arrow,
    slice_bounds,
    slice_starts,
    write_arrow,
    write_batches,
)
from curation_dagster.io.lake import Lake
from tests.engine.dedup.remote_fixtures import counting_lake


def rows_table(count: int) -> pa.Table:
    return pa.table({"id": [f"item-{n:07d}" for n in range(count)], "n": np.arange(count, dtype=np.int64)})


def test_take_on_a_remote_lake_reads_only_the_batches_holding_the_rows(tmp_path: Path) -> None:
    table = rows_table(300_000)
    remote, local = counting_lake(), Lake(tmp_path / "lake")
    for lake in (remote, local):
        write_arrow(lake, lake.stage_dir("v", "rows") + "/s.arrow", table)
    size = remote.fs.size(remote.stage_dir("v", "rows") + "/s.arrow")
    wanted = [250_000, 3, 250_001, 3, 0]

    remote.fs.bytes_read = 0
    with ArrowFile(remote, remote.stage_dir("v", "rows") + "/s.arrow") as file:
        picked = file.take(wanted)

    assert size > 4 * BATCH_BYTES and file.batch_count > 4
    assert remote.fs.bytes_read < size // 2
    assert picked.to_pylist() == table.take(pa.array(wanted)).to_pylist()
    with ArrowFile(local, local.stage_dir("v", "rows") + "/s.arrow") as same:
        assert same.take(wanted).equals(picked)


def test_a_row_file_reads_back_whole_with_its_schema() -> None:
    lake = counting_lake()
    table = rows_table(5).replace_schema_metadata({b"kind": b"claims"})
    write_arrow(lake, "v/rows/s.arrow", table)
    back = read_arrow(lake, "v/rows/s.arrow")
    assert back.to_pylist() == table.to_pylist()
    assert back.schema.metadata[b"kind"] == b"claims"


def test_a_file_without_a_layout_is_read_whole_and_answers_the_same() -> None:
    lake = counting_lake()
    table = rows_table(10)
    write_batches(lake, "v/rows/old.arrow", table.schema, table.to_batches(max_chunksize=4))
    with ArrowFile(lake, "v/rows/old.arrow") as file:
        assert file.take([9, 0]).to_pylist() == table.take(pa.array([9, 0])).to_pylist()
        assert file.batches_holding(np.array([1], dtype=np.uint64)) == [(0, 0, 1), (1, 0, 1), (2, 0, 1)]


def test_each_key_falls_in_the_batch_of_its_key_slice() -> None:
    keys = np.array([0, 5, 2**62, 2**63 - 1, 2**63, 2**64 - 1], dtype=np.uint64)
    parts = slice_bounds(keys, slice_starts(4)[1:])
    assert [keys[part].tolist() for part in parts] == [[0, 5], [2**62, 2**63 - 1], [2**63], [2**64 - 1]]
    lake = counting_lake()
    schema = pa.schema([pa.field("key", pa.uint64())]).with_metadata({KEY_SLICES: b"4"})
    batches = [pa.record_batch({"key": keys[part]}, schema=schema) for part in parts]
    write_batches(lake, "v/keys/s.arrow", schema, batches)
    with ArrowFile(lake, "v/keys/s.arrow") as file:
        assert file.batches_holding(np.array([7, 2**63 + 1], dtype=np.uint64)) == [(0, 0, 1), (2, 1, 2)]
        assert file.batches_holding(np.zeros(0, dtype=np.uint64)) == []
