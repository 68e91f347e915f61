"""`curation`: the project's commands on the embedded default (local lake, SQLite Dagster instance).

`curation run` generates the demo landing data if missing, registers the shards and materializes every
stage of every dataset version for every shard that is not up to date, then each version's data card
(`report`) and `release`. `curation register` registers landing shards for CI; `curation validate` checks
the specs; `curation ui` starts the web UI; `curation lineage` shows what happened to one item. This
module parses arguments; what the commands do with Dagster is in `assets/runner.py`, imported inside the
commands only.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from curation_dagster import settings
from curation_dagster.errors import CurationError
from curation_dagster.io.lake import Lake
from curation_dagster.io.landing import describe_unsupported, scan_landing, unsupported_files
from curation_dagster.stages import STAGES

INSTANCE_YAML = """\
# The embedded default instance: SQLite storage in this folder. Created by `curation run`.
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1  # the gpu pool: one model stage at a time shares this machine's accelerator
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


def run_demo(generate: bool = True) -> int:
    """The main job: demo data, shard registration, every stage for every shard, each version's data card
    and release, then a summary. A spec that does not load is reported and skipped; a run that died
    earlier (killed, out of memory) is marked failed and its pool slots freed before anything runs."""
    locations = prepare_environment()
    landing = Path(locations["CURATION_LANDING"])
    if generate:
        _ensure_demo_landing(landing)

    from assets.runner import main_job
    from curation_dagster.spec import load_version_specs

    specs, problems = load_version_specs(settings.versions_folder())
    for problem in problems:
        print(f"skipping version {problem.version}: {problem.error}")
    summary = main_job(specs, landing)
    if summary.ran == 0:
        print("everything is up to date: nothing to do")
    partitions, unsupported = scan_landing(landing, settings.max_shard_bytes())
    shard_keys = sorted(partitions)
    if unsupported:
        print(describe_unsupported(unsupported))
    _print_summary(Lake(locations["CURATION_HOME"]), specs, shard_keys, locations)
    return 1 if summary.failed or problems else 0


def _ensure_demo_landing(landing: Path) -> None:
    from curation_dagster.demo import demo_landing_is_complete, generate_demo_landing

    if not demo_landing_is_complete(landing):
        print(f"generating the demo landing data in {landing}")
        generate_demo_landing(landing)


def _print_summary(lake: Lake, specs: list[Any], shard_keys: list[str], locations: dict[str, str]) -> None:
    from curation_dagster.release import release_dir
    from curation_dagster.report import report_path

    print()
    for spec in specs:
        counts = []
        for stage in STAGES:
            present = set(lake.list_shards(spec.name, stage))  # one listing, not a look per file
            total = sum(
                lake.num_rows(lake.path(spec.name, stage, shard)) for shard in shard_keys if shard in present
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
    """Register the landing shards (CI's step before `dagster asset materialize`), after failing the runs
    that died, so a killed CI run on a kept instance does not hold its pool slot."""
    locations = prepare_environment()
    if generate:
        _ensure_demo_landing(Path(locations["CURATION_LANDING"]))
    from assets.runner import register_landing

    new = register_landing(Path(locations["CURATION_LANDING"]))
    print(f"registered {len(new)} new shards" + (f": {', '.join(new)}" if new else ""))
    if unsupported := unsupported_files(Path(locations["CURATION_LANDING"])):
        print(describe_unsupported(unsupported))
    return 0


def validate_command() -> int:
    """Load every spec in the versions folder; print one line per problem (file and field)."""
    from curation_dagster.spec import load_version_specs

    specs, problems = load_version_specs(settings.versions_folder())
    for spec in specs:
        print(f"ok       {spec.name}")
    for problem in problems:
        print(f"invalid  {problem.error}")
    return 1 if problems else 0


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
    commands.add_parser("validate", help="check every spec in the versions folder; exit 1 if one is invalid")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return run_demo(generate=not args.no_demo_data)
        if args.command == "register":
            return register_command(generate=not args.no_demo_data)
        if args.command == "lineage":
            return lineage_command(args.version, args.item_id)
        if args.command == "validate":
            return validate_command()
        return ui_command(args.host, args.port)
    except CurationError as error:
        print(f"curation {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
