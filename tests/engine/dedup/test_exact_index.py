"""The cross-shard index of exact duplicates (curation_dagster/dedup/exact_index.py): on a remote lake the
same owners as on a local lake, from a few record batches of the key store and the claims; after a
prefetch, a search of only the shards that claimed since."""

import hashlib
from pathlib import Path

import pytest

from curation_dagster.dedup import keystore
from curation_dagster.dedup.arrow_files import ArrowFile
from curation_dagster.dedup.exact_index import ExactIndex
from curation_dagster.io.lake import Lake
from tests.engine.dedup.remote_fixtures import counting_lake


def content_hash(number: int) -> str:
    return hashlib.blake2b(str(number).encode(), digest_size=16).hexdigest()


def test_a_remote_lookup_reads_the_claims_it_confirms_not_the_whole_index(tmp_path: Path) -> None:
    hashes = [content_hash(number) for number in range(1_000_000)]
    ids = [f"a-{number:07d}" for number in range(len(hashes))]
    remote_lake = counting_lake()
    remote, local = ExactIndex(remote_lake, "v"), ExactIndex(Lake(tmp_path / "lake"), "v")
    for index in (remote, local):
        index.write("a.jsonl", hashes, ids)
    stored = sum(remote_lake.fs.size(path) for path in remote_lake.fs.find(remote_lake.root))
    probes = [hashes[7], hashes[654_321], content_hash(-1)]

    remote_lake.fs.bytes_read = 0
    owners = remote.lookup("b.jsonl")(probes)

    assert stored > 50_000_000
    assert remote_lake.fs.bytes_read < stored // 10
    assert owners == local.lookup("b.jsonl")(probes) == {hashes[7]: ids[7], hashes[654_321]: ids[654_321]}


def test_a_lookup_after_a_prefetch_searches_only_the_shards_that_claimed_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deduped stage prefetches its hashes with no lock held; under the claim lock only the shards
    that claimed in between are searched, and the owners are those of a fresh lookup."""
    index = ExactIndex(Lake(tmp_path / "lake"), "v")
    earlier = [content_hash(number) for number in range(100)]
    index.write("a.jsonl", earlier, [f"a-{number}" for number in range(100)])
    probes = [earlier[3], content_hash(500), content_hash(501)]
    prefetched = index.prefetch("c.jsonl", probes)
    index.write("b.jsonl", [content_hash(500)], ["b-0"])  # claimed after the prefetch
    opened: list[str] = []

    def recording(lake: Lake, path: str) -> ArrowFile:
        opened.append(path.rsplit("/", 2)[-2] + "/" + path.rsplit("/", 1)[-1])
        return ArrowFile(lake, path)

    monkeypatch.setattr(keystore, "ArrowFile", recording)
    owners = index.lookup("c.jsonl", prefetched)(probes)

    assert owners == {earlier[3]: "a-3", content_hash(500): "b-0"}
    assert opened == ["runs/b.jsonl.arrow"]
    monkeypatch.undo()
    assert index.lookup("c.jsonl")(probes) == owners
