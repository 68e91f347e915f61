"""`curation`: the project's commands on the embedded default (local lake, SQLite Dagster instance).

`curation run` generates the demo landing data if missing, registers the shards and materializes every
stage of every dataset version for every shard that is not up to date, then each version's data card
(`report`) and `release`. `curation register` registers landing shards for CI; `curation ui` starts the
web UI; `curation lineage` shows what happened to one item. Dagster is imported inside the commands only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from curation_dagster import settings
from curation_dagster.io.landing import discover_shards, shard_fingerprint
from curation_dagster.pipeline import STAGES

INSTANCE_YAML = """\
# The embedded default instance: SQLite storage in this folder. Created by `curation run`.
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: 2
run_monitoring:
  enabled: true
  free_slots_after_run_end_seconds: 300
"""


def prepare_environment() -> dict[str, str]:
    """Fix the embedded default locations in the environment and create the instance folder."""
    locations = {
        "DAGSTER_HOME": settings.dagster_home(),
        "CURATION_HOME": settings.curation_home(),
        "CURATION_LANDING": settings.landing_root(),
    }
    os.environ.update(locations)
    home = Path(locations["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(INSTANCE_YAML, encoding="utf-8")
    return locations


def register_shards(instance: Any, landing: Path) -> list[str]:
    """Add every landing shard to the `shards` partitions; returns the keys that were new."""
    from assets.partitions import SHARDS

    found = discover_shards(landing)
    registered = set(instance.get_dynamic_partitions(SHARDS))
    new = [key for key in found if key not in registered]
    if new:
        instance.add_dynamic_partitions(SHARDS, new)
    return new


def _latest(instance: Any, key: Any, shard: str) -> Any:
    from dagster import AssetRecordsFilter

    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[shard]), limit=1
    ).records
    return records[0] if records else None


def shard_is_current(instance: Any, defs: Any, spec: Any, shard: str, source: Path) -> bool:
    """Whether every stage of `spec` has a materialization for `shard` that is newer than its upstream's,
    made with the current settings, from the landing shard as it is now, with its lake file in place."""
    from assets.factory import stage_key

    lake = defs.resources["lake"].lake()
    previous_id = -1
    for stage in STAGES:
        record = _latest(instance, stage_key(spec.name, stage), shard)
        if record is None or record.storage_id <= previous_id:
            return False
        metadata = record.asset_materialization.metadata
        code_version = metadata.get("code_version")
        if code_version is None or code_version.value != spec.code_version(stage):
            return False
        if stage == "raw":
            fingerprint = metadata.get("source_fingerprint")
            if fingerprint is None or fingerprint.value != shard_fingerprint(source):
                return False
        if not lake.exists(lake.path(spec.name, stage, shard)):
            return False
        previous_id = record.storage_id
    return True


def _latest_of_any_partition(instance: Any, key: Any) -> Any:
    from dagster import AssetRecordsFilter

    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=key), limit=1).records
    return records[0] if records else None


def summaries_are_current(instance: Any, defs: Any, spec: Any) -> bool:
    """Whether the version's report and release were materialized after the last materialization of any
    shard of any stage, and their files are in the lake."""
    from assets.factory import SUMMARIES, stage_key
    from curation_dagster.release import MANIFEST, release_dir
    from curation_dagster.report import report_path

    lake = defs.resources["lake"].lake()
    stage_records = [_latest_of_any_partition(instance, stage_key(spec.name, stage)) for stage in STAGES]
    newest_stage = max((record.storage_id for record in stage_records if record is not None), default=-1)
    for name in SUMMARIES:
        record = _latest_of_any_partition(instance, stage_key(spec.name, name))
        if record is None or record.storage_id <= newest_stage:
            return False
    return lake.exists(report_path(lake, spec.name)) and lake.exists(
        f"{release_dir(lake, spec.name)}/{MANIFEST}"
    )


def _materialize(
    job: Any, instance: Any, version: str, label: str, names: Sequence[str], partition: str | None = None
) -> bool:
    """Materialize the version's assets `names` (for one shard when `partition` is given), print one line."""
    from assets.factory import stage_key

    started = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        partition_key=partition,
        asset_selection=[stage_key(version, name) for name in names],
        tags={"curation/trigger": "curation run"},
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=False,
    )
    state = "ok" if result.success else "FAILED"
    print(f"  {version:<12} {label:<28} {state} ({time.perf_counter() - started:.1f}s)")
    return bool(result.success)


def run_demo(generate: bool = True) -> int:
    """The main job: demo data, shard registration, every stage for every shard, each version's data card
    and release, then a summary."""
    locations = prepare_environment()
    landing = Path(locations["CURATION_LANDING"])
    if generate:
        _ensure_demo_landing(landing)

    from dagster import DagsterInstance

    from assets.factory import SUMMARIES
    from curation_dagster.definitions import build_definitions

    specs = _specs()
    defs = build_definitions(specs)
    instance = DagsterInstance.get()
    new = register_shards(instance, landing)
    if new:
        print(f"registered {len(new)} new shards: {', '.join(new)}")
    found = discover_shards(landing)
    job = defs.resolve_implicit_global_asset_job_def()
    ran = 0
    failed = 0
    version_failed: dict[str, bool] = {}
    for spec in specs:
        for shard, source in found.items():
            if shard_is_current(instance, defs, spec, shard, source):
                continue
            succeeded = _materialize(job, instance, spec.name, shard, STAGES, shard)
            ran += 1
            failed += 0 if succeeded else 1
            version_failed[spec.name] = version_failed.get(spec.name, False) or not succeeded
    for spec in specs:
        if version_failed.get(spec.name):
            print(f"  {spec.name:<12} {'report, release':<28} not refreshed: a shard of this version failed")
            continue
        if summaries_are_current(instance, defs, spec):
            continue
        succeeded = _materialize(job, instance, spec.name, "report, release", SUMMARIES)
        ran += 1
        failed += 0 if succeeded else 1
    if ran == 0:
        print("everything is up to date: nothing to do")
    _print_summary(defs, specs, sorted(found), locations)
    return 1 if failed else 0


def _ensure_demo_landing(landing: Path) -> None:
    from curation_dagster.demo_data import demo_landing_is_complete, generate_demo_landing

    if not demo_landing_is_complete(landing):
        print(f"generating the demo landing data in {landing}")
        generate_demo_landing(landing)


def _specs() -> list[Any]:
    from curation_dagster.spec import load_specs

    return load_specs(settings.versions_folder())


def _print_summary(defs: Any, specs: list[Any], shard_keys: list[str], locations: dict[str, str]) -> None:
    from curation_dagster.release import release_dir
    from curation_dagster.report import report_path

    lake = defs.resources["lake"].lake()
    print()
    for spec in specs:
        counts = []
        for stage in STAGES:
            total = sum(
                lake.num_rows(lake.path(spec.name, stage, shard))
                for shard in shard_keys
                if lake.exists(lake.path(spec.name, stage, shard))
            )
            counts.append(f"{stage} {total}")
        print(f"{spec.name}: " + " → ".join(counts))
    print()
    for spec in specs:
        if lake.exists(report_path(lake, spec.name)):
            print(f"{'data card ' + spec.name + ':':<20} {lake.url(report_path(lake, spec.name))}")
        if lake.exists(release_dir(lake, spec.name)):
            print(f"{'release ' + spec.name + ':':<20} {lake.url(release_dir(lake, spec.name))}")
    print(f"lake (Parquet):      {locations['CURATION_HOME']}")
    print(f"landing zone:        {locations['CURATION_LANDING']}")
    print(f"Dagster instance:    {locations['DAGSTER_HOME']}")
    print("open the UI:         curation ui   (then http://127.0.0.1:3000)")


def register_command(generate: bool = True) -> int:
    locations = prepare_environment()
    if generate:
        _ensure_demo_landing(Path(locations["CURATION_LANDING"]))
    from dagster import DagsterInstance

    new = register_shards(DagsterInstance.get(), Path(locations["CURATION_LANDING"]))
    print(f"registered {len(new)} new shards" + (f": {', '.join(new)}" if new else ""))
    return 0


def ui_command(host: str, port: int) -> int:
    prepare_environment()
    workspace = settings.project_root() / "workspace.yaml"
    command = ["dagster", "dev", "-w", str(workspace), "-h", host, "-p", str(port)]
    print("starting:", " ".join(command))
    os.execvp(command[0], command)
    return 0  # pragma: no cover


def lineage_command(version: str, item: str) -> int:
    """Print the item's history in the lake, stage by stage; exit 1 when the version has no such item."""
    from curation_dagster.errors import ShardNameError
    from curation_dagster.io.lake import Lake
    from curation_dagster.lineage import history_table, item_history

    try:
        history = item_history(Lake(settings.curation_home()), version, item)
    except ShardNameError as error:
        print(error)
        return 2
    if not history:
        print(f"no such item: {item!r} is in no stage of version {version!r} in {settings.curation_home()}")
        return 1
    first = history[0]
    print(f"item {item}  ({first.modality}, shard {first.shard})")
    print(f"source: {first.uri}")
    if first.parent_ids:
        print(f"synthetic, made from: {', '.join(first.parent_ids)}")
    print()
    print(history_table(history))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="curation", description=__doc__.splitlines()[0] if __doc__ else None
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="materialize every stage of every version for every landing shard")
    run.add_argument("--no-demo-data", action="store_true", help="do not generate the demo landing data")
    register = commands.add_parser("register", help="register landing shards as partitions (for CI)")
    register.add_argument("--no-demo-data", action="store_true", help="do not generate the demo landing data")
    ui = commands.add_parser("ui", help="start dagster dev on this project (daemon, sensors, web UI)")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    lineage = commands.add_parser("lineage", help="what happened to one item at every stage, and why")
    lineage.add_argument("version", help="the dataset version, e.g. demo")
    lineage.add_argument("item_id", help="the item's id (the `id` column)")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_demo(generate=not args.no_demo_data)
    if args.command == "register":
        return register_command(generate=not args.no_demo_data)
    if args.command == "lineage":
        return lineage_command(args.version, args.item_id)
    return ui_command(args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
