"""The landing sensor registers new shards and requests their raw runs; automation runs only new shards."""

import json
import os
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    Definitions,
    build_sensor_context,
    instance_for_test,
    materialize,
)

from assets.factory import stage_key
from assets.partitions import SHARDS
from curation_dagster.definitions import build_definitions
from curation_dagster.spec import parse_spec
from curation_dagster.stages import STAGES
from resources import LakeResource
from tests.media_fixtures import write_jsonl

SPECS = [
    parse_spec({"name": "first", "modalities": ["text"]}),
    parse_spec({"name": "second", "modalities": ["text"], "select": {"fraction": 0.5}}),
]


@pytest.fixture
def defs(tmp_path: Path, tiny_landing: Path):
    return build_definitions(SPECS, lake_root=str(tmp_path / "lake"), landing=str(tiny_landing))


def tick(defs, instance, landing: Path, cursor: str | None):
    sensor = defs.resolve_sensor_def("landing_sensor")
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources={"lake": LakeResource(root="unused", landing=str(landing))},
    )
    return sensor(context)


def test_first_tick_registers_every_shard_and_requests_raw_for_every_version(
    defs, tiny_landing: Path
) -> None:
    with instance_for_test() as instance:
        result = tick(defs, instance, tiny_landing, None)
        assert result.dynamic_partitions_requests[0].partition_keys == ["a.jsonl", "b.jsonl"]
        assert sorted(request.partition_key for request in result.run_requests) == ["a.jsonl", "b.jsonl"]
        for request in result.run_requests:
            assert set(request.asset_selection) == {AssetKey(["first", "raw"]), AssetKey(["second", "raw"])}
        assert set(json.loads(result.cursor)["shards"]) == {"a.jsonl", "b.jsonl"}


def test_an_unchanged_landing_zone_requests_nothing(defs, tiny_landing: Path) -> None:
    with instance_for_test() as instance:
        first = tick(defs, instance, tiny_landing, None)
        instance.add_dynamic_partitions(SHARDS, ["a.jsonl", "b.jsonl"])
        second = tick(defs, instance, tiny_landing, first.cursor)
        assert second.run_requests == []
        assert second.dynamic_partitions_requests == []


def test_a_new_file_becomes_one_new_partition_and_one_run(defs, tiny_landing: Path) -> None:
    with instance_for_test() as instance:
        first = tick(defs, instance, tiny_landing, None)
        instance.add_dynamic_partitions(SHARDS, ["a.jsonl", "b.jsonl"])
        write_jsonl(
            tiny_landing / "c new.jsonl", ["A third shard arrives with one fresh document in it today."]
        )
        result = tick(defs, instance, tiny_landing, first.cursor)
        (new_key,) = result.dynamic_partitions_requests[0].partition_keys
        assert new_key.startswith("c_new.jsonl")
        assert [request.partition_key for request in result.run_requests] == [new_key]
        assert result.run_requests[0].tags["curation/trigger"] == "new"


def test_a_changed_file_is_run_again_without_registering_it_twice(defs, tiny_landing: Path) -> None:
    with instance_for_test() as instance:
        first = tick(defs, instance, tiny_landing, None)
        instance.add_dynamic_partitions(SHARDS, ["a.jsonl", "b.jsonl"])
        path = tiny_landing / "b.jsonl"
        path.write_text(path.read_text() + json.dumps({"text": "one more line appended later"}) + "\n")
        os.utime(path, ns=(1, 1))
        result = tick(defs, instance, tiny_landing, first.cursor)
        assert result.dynamic_partitions_requests == []
        assert [request.partition_key for request in result.run_requests] == ["b.jsonl"]
        assert result.run_requests[0].tags["curation/trigger"] == "changed"


def test_files_still_being_written_are_ignored(defs, tiny_landing: Path) -> None:
    with instance_for_test() as instance:
        first = tick(defs, instance, tiny_landing, None)
        instance.add_dynamic_partitions(SHARDS, ["a.jsonl", "b.jsonl"])
        (tiny_landing / "c.jsonl.part").write_text("{}\n")
        (tiny_landing / ".d.jsonl").write_text("{}\n")
        result = tick(defs, instance, tiny_landing, first.cursor)
        assert result.run_requests == []


def test_links_out_of_the_landing_zone_and_dangling_links_are_registered_to_be_rejected(
    defs, tmp_path: Path, tiny_landing: Path
) -> None:
    with instance_for_test() as instance:
        first = tick(defs, instance, tiny_landing, None)
        instance.add_dynamic_partitions(SHARDS, ["a.jsonl", "b.jsonl"])
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.jsonl").write_text('{"text": "secret"}\n')
        (tiny_landing / "linked.jsonl").symlink_to(outside / "secret.jsonl")
        (tiny_landing / "linked_folder").symlink_to(outside)
        (tiny_landing / "gone.jsonl").symlink_to(tmp_path / "missing.jsonl")
        result = tick(defs, instance, tiny_landing, first.cursor)
        assert result.dynamic_partitions_requests[0].partition_keys == [
            "gone.jsonl",
            "linked.jsonl",
            "linked_folder",
        ]
        assert sorted(request.partition_key for request in result.run_requests) == [
            "gone.jsonl",
            "linked.jsonl",
            "linked_folder",
        ]


def test_automation_runs_the_next_stage_only_for_the_new_shard(
    defs, tmp_path: Path, tiny_landing: Path
) -> None:
    """Shards already done are not re-run when a new shard arrives; the report and the release run again
    once the new shard's stages are through, not before."""
    from dagster import evaluate_automation_conditions

    first_assets = [a for a in defs.assets if a.key.path[0] == "first"]  # type: ignore[union-attr]
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(SHARDS, ["a.jsonl"])
        resources = dict(defs.resources)
        assert materialize(
            first_assets, partition_key="a.jsonl", instance=instance, resources=resources
        ).success
        only_first = Definitions(assets=first_assets, resources=resources)
        baseline = evaluate_automation_conditions(defs=only_first, instance=instance)
        instance.add_dynamic_partitions(SHARDS, ["b.jsonl"])
        raw = [a for a in first_assets if a.key == stage_key("first", "raw")]
        assert materialize(raw, partition_key="b.jsonl", instance=instance, resources=resources).success
        result = evaluate_automation_conditions(defs=only_first, instance=instance, cursor=baseline.cursor)
        requested = {
            (key, partition)
            for key in (stage_key("first", stage) for stage in STAGES)
            for partition in _requested_partitions(result, key)
        }
        assert requested == {(stage_key("first", stage), "b.jsonl") for stage in STAGES[1:]}
        # The summaries wait while b's stages are missing.
        assert result.get_num_requested(stage_key("first", "report")) == 0
        stages = [a for a in first_assets if a.key.path[1] in STAGES]
        assert materialize(stages, partition_key="b.jsonl", instance=instance, resources=resources).success
        after = evaluate_automation_conditions(defs=only_first, instance=instance, cursor=result.cursor)
        assert after.get_num_requested(stage_key("first", "report")) == 1
        assert after.get_num_requested(stage_key("first", "release")) == 1
        assert not _requested_partitions(after, stage_key("first", "synthesized"))


def _requested_partitions(result, key: AssetKey) -> set[str]:
    subset = result.get_requested_partitions(key)
    return set(subset)


def test_a_landing_file_of_no_supported_kind_is_said_in_the_tick_not_skipped_unseen(
    defs, tiny_landing: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tiny_landing / "SHA256SUMS.txt").write_text("0" * 64 + "  a.jsonl\n")
    (tiny_landing / "c4-train.00000-of-01024.json.gz").write_bytes(b"")
    with instance_for_test() as instance:
        result = tick(defs, instance, tiny_landing, None)
    # A compressed .json file is JSON Lines (C4, Dolma): a shard; the checksum list is said, once.
    assert result.dynamic_partitions_requests[0].partition_keys == [
        "a.jsonl",
        "b.jsonl",
        "c4-train.00000-of-01024.json.gz",
    ]
    logged = capfd.readouterr().err  # the sensor's log, which the tick's page in the UI shows
    said = [line for line in logged.splitlines() if "no supported kind" in line]
    assert len(said) == 1 and "1 landing file of no supported kind, not read: SHA256SUMS.txt" in said[0]
    assert "WARNING" in said[0]


def test_files_of_no_supported_kind_are_said_on_the_tick_that_first_sees_them_not_on_every_tick(
    defs, tiny_landing: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    def said() -> list[str]:
        return [line for line in capfd.readouterr().err.splitlines() if "no supported kind" in line]

    (tiny_landing / "README.md").write_text("what this landing zone holds\n")
    with instance_for_test() as instance:
        first = tick(defs, instance, tiny_landing, None)
        instance.add_dynamic_partitions(SHARDS, ["a.jsonl", "b.jsonl"])
        assert len(said()) == 1
        second = tick(defs, instance, tiny_landing, first.cursor)
        assert said() == []
        (tiny_landing / "train.csv").write_text("text\nhello\n")
        third = tick(defs, instance, tiny_landing, second.cursor)
        (line,) = said()
        assert "2 landing files of no supported kind, not read: README.md, train.csv" in line
        assert tick(defs, instance, tiny_landing, third.cursor).run_requests == []
        assert said() == []


def test_a_cursor_of_the_earlier_release_keeps_its_shards_and_says_the_unsupported_files_again(
    defs, tiny_landing: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tiny_landing / "README.md").write_text("what this landing zone holds\n")
    with instance_for_test() as instance:
        first = tick(defs, instance, tiny_landing, None)
        instance.add_dynamic_partitions(SHARDS, ["a.jsonl", "b.jsonl"])
        earlier = json.dumps(json.loads(first.cursor)["shards"])  # the cursor's format before it named files
        capfd.readouterr()
        result = tick(defs, instance, tiny_landing, earlier)
        assert result.run_requests == [] and result.dynamic_partitions_requests == []
        assert json.loads(result.cursor) == json.loads(first.cursor)
        assert "1 landing file of no supported kind" in capfd.readouterr().err
