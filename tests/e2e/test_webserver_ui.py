"""The web UI as a user meets it: `dagster-webserver` on a lake that `curation run` filled, driven through
GraphQL (list assets, register a shard, launch a run) and through headless Chromium (the asset graph and
the assets' metadata); then `dagster-daemon` carrying a new landing file to the report, which the browser
shows. Screenshots go to tests/e2e/artifacts/ (git-ignored)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LOCATION = "curation_dagster.definitions:defs"
REPOSITORY = {"repositoryName": "__repository__", "repositoryLocationName": LOCATION}
VERSIONS = ("demo", "text_formal")
STAGE_NAMES = ("raw", "deduped", "filtered", "selected", "synthesized")
ASSET_NAMES = (*STAGE_NAMES, "report", "release")
#: Runs launched from the UI start at once in a subprocess of the webserver, without a daemon.
INSTANCE_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
"""
TEXTS = {
    "a.jsonl": [
        "The river bank was quiet in the early morning light and the boats were still tied up at the pier.",
        "Researchers measured the growth of wheat under three watering schedules over two dry summers.",
    ],
    "b.jsonl": [
        "The new library opened its doors on Monday with a reading for children and a small concert.",
        # A near duplicate of a.jsonl's first text: the same first 160 characters, one word changed.
        "The river bank was quiet in the early morning light and the boats were still tied up at the dock.",
    ],
}
LATE_SHARD = "c.jsonl"
#: Dropped into the landing zone while the daemon runs: the sensor and automation carry it to the report.
NEWEST_SHARD = "d.jsonl"
#: A media folder shard: two pictures with same-name captions, shown as thumbnails in the metadata.
PICTURES = "pictures"
SHARDS = len(TEXTS) + 1
SUMMARY_METADATA = {"report": {"report_path", "funnel"}, "release": {"items", "release_path", "files"}}

pytestmark = [
    pytest.mark.slow,
    # dagster_graphql's client calls gql with arguments gql has deprecated; not ours to change.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:gql.*"),
]


@dataclass
class Server:
    url: str
    port: int
    lake: Path
    landing: Path
    log: Path
    env: dict[str, str]

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """A query through Dagster's own Python GraphQL client; GraphQL errors fail the test."""
        from dagster_graphql import DagsterGraphQLClient

        client = DagsterGraphQLClient("127.0.0.1", port_number=self.port, timeout=60)
        return dict(client._execute(query, variables))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_jsonl(path: Path, texts: list[str]) -> None:
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts), encoding="utf-8")


def write_pictures(folder: Path) -> None:
    """Two different drawings with captions, big enough for the image filters."""
    from PIL import Image, ImageDraw

    folder.mkdir()
    for index, (colour, caption) in enumerate(
        [
            ((200, 60, 40), "A red disc on a pale background."),
            ((40, 90, 200), "A blue bar across a pale field."),
        ]
    ):
        image = Image.new("RGB", (320, 240), (235, 230, 220))
        draw = ImageDraw.Draw(image)
        if index == 0:
            draw.ellipse((90, 50, 230, 190), fill=colour)
        else:
            draw.rectangle((20, 100, 300, 140), fill=colour)
        image.save(folder / f"picture_{index}.png")
        (folder / f"picture_{index}.txt").write_text(caption, encoding="utf-8")


def environment(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "CURATION_"))}
    env.update(
        DAGSTER_HOME=str(folder / "dagster_home"),
        CURATION_HOME=str(folder / "lake"),
        CURATION_LANDING=str(folder / "landing"),
        CURATION_VERSIONS=str(REPO / "versions"),
        CURATION_SENSOR_INTERVAL_S="5",  # the sensor-to-browser test waits on ticks, not on work
    )
    return env


def wait_until_loaded(server: Server, process: subprocess.Popen[bytes], seconds: float = 150) -> None:
    """Until /server_info answers and the code location has loaded its repository."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"dagster-webserver exited with {process.returncode}:\n{server.log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/server_info", timeout=5) as response:
                assert json.loads(response.read())["dagster_webserver_version"]
            entries = server.graphql(
                "{ workspaceOrError { ... on Workspace { locationEntries { name "
                "locationOrLoadError { __typename } } } } }"
            )["workspaceOrError"]["locationEntries"]
            states = {
                entry["name"]: (entry["locationOrLoadError"] or {}).get("__typename") for entry in entries
            }
            if states.get(LOCATION) == "RepositoryLocation":
                return
            if states.get(LOCATION) == "PythonError":
                pytest.fail(f"the code location failed to load:\n{server.log.read_text()[-3000:]}")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    pytest.fail(f"dagster-webserver did not load within {seconds}s:\n{server.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A lake filled by `curation run` on two small shards, a third shard not yet registered, and the
    webserver on a free port of 127.0.0.1."""
    folder = tmp_path_factory.mktemp("ui")
    (folder / "landing").mkdir()
    (folder / "dagster_home").mkdir()
    (folder / "dagster_home" / "dagster.yaml").write_text(INSTANCE_YAML, encoding="utf-8")
    for name, texts in TEXTS.items():
        write_jsonl(folder / "landing" / name, texts)
    write_pictures(folder / "landing" / PICTURES)
    env = environment(folder)
    first = subprocess.run(
        [sys.executable, "-m", "curation_dagster.cli", "run", "--no-demo-data"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    write_jsonl(
        folder / "landing" / LATE_SHARD,
        ["A third shard arrived later with one document about the harbour festival and its fireworks."],
    )
    port = free_port()
    log = folder / "webserver.log"
    server = Server(f"http://127.0.0.1:{port}", port, folder / "lake", folder / "landing", log, env)
    command = ["dagster-webserver", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]
    with started(command, env, log) as process:
        wait_until_loaded(server, process)
        yield server


@contextlib.contextmanager
def started(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A Dagster service in its own process group, output to `log`; stopped with its children at the end."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


ASSET_NODES = """
query ($group: AssetGroupSelector!) {
  assetNodes(group: $group) {
    assetKey { path }
    isPartitioned
    partitionStats { numMaterialized numPartitions numFailed }
  }
}"""

LATEST_MATERIALIZATION = """
query ($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        runId
        metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
  }
}"""


def asset_nodes(server: Server, version: str) -> dict[str, dict[str, Any]]:
    nodes = server.graphql(ASSET_NODES, {"group": {"groupName": version, **REPOSITORY}})["assetNodes"]
    return {node["assetKey"]["path"][1]: node for node in nodes}


def test_graphql_lists_every_versions_assets_with_their_partition_status(server: Server) -> None:
    for version in VERSIONS:
        nodes = asset_nodes(server, version)

        assert sorted(nodes) == sorted(ASSET_NAMES)
        for stage in STAGE_NAMES:
            assert nodes[stage]["isPartitioned"]
            assert nodes[stage]["partitionStats"] == {
                "numMaterialized": SHARDS,
                "numPartitions": SHARDS,
                "numFailed": 0,
            }
        for name in ("report", "release"):
            assert not nodes[name]["isPartitioned"]
            latest = server.graphql(LATEST_MATERIALIZATION, {"key": {"path": [version, name]}})
            (materialization,) = latest["assetOrError"]["assetMaterializations"]
            labels = {entry["label"] for entry in materialization["metadataEntries"]}
            assert SUMMARY_METADATA[name] <= labels, (version, name, labels)


def test_a_shard_registered_and_launched_through_graphql_is_materialized(server: Server) -> None:
    from dagster_graphql import DagsterGraphQLClient

    added = server.graphql(
        """mutation ($repository: RepositorySelector!, $key: String!) {
          addDynamicPartition(repositorySelector: $repository, partitionsDefName: "shards", partitionKey: $key) {
            __typename
          }
        }""",
        {"repository": REPOSITORY, "key": LATE_SHARD},
    )
    assert added["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess"
    assert asset_nodes(server, "demo")["raw"]["partitionStats"]["numPartitions"] == SHARDS + 1

    client = DagsterGraphQLClient("127.0.0.1", port_number=server.port, timeout=60)
    run_id = client.submit_job_execution(
        "__ASSET_JOB",
        repository_location_name=LOCATION,
        repository_name="__repository__",
        # Every stage of the demo, so no registered shard holds its report back in the daemon's test.
        asset_selection=[["demo", stage] for stage in STAGE_NAMES],
        tags={"dagster/partition": LATE_SHARD},
    )
    deadline = time.monotonic() + 300
    status = client.get_run_status(run_id).value
    while status not in ("SUCCESS", "FAILURE", "CANCELED") and time.monotonic() < deadline:
        time.sleep(1)
        status = client.get_run_status(run_id).value

    assert status == "SUCCESS", server.log.read_text()[-3000:]
    assert asset_nodes(server, "demo")["raw"]["partitionStats"] == {
        "numMaterialized": SHARDS + 1,
        "numPartitions": SHARDS + 1,
        "numFailed": 0,
    }
    assert (server.lake / "demo" / "raw" / f"{LATE_SHARD}.parquet").exists()


def chromium_executable() -> str | None:
    for candidate in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def dismiss_welcome(page: Any) -> None:
    """The first visit opens a 'Join the Dagster community' dialog over the page."""
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.first.click()


@contextlib.contextmanager
def browser_page() -> Iterator[Any]:
    """A 1600 x 1000 page of headless Chromium (the system's, through Playwright); the test skips without
    one. Screenshots go to `ARTIFACTS`."""
    executable = chromium_executable()
    if executable is None:
        pytest.skip("no chromium executable: install it (apt-get install chromium) to run the browser check")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport={"width": 1600, "height": 1000})
        finally:
            browser.close()


def test_the_browser_shows_the_asset_graph_and_an_assets_metadata(server: Server) -> None:
    with browser_page() as page:
        page.goto(f"{server.url}/locations/{LOCATION}/asset-groups/demo")
        page.wait_for_selector("text=synthesized", timeout=60_000)
        page.wait_for_timeout(500)
        dismiss_welcome(page)
        for name in ASSET_NAMES:
            assert page.get_by_text(name, exact=True).count() >= 1, name
        page.screenshot(path=str(ARTIFACTS / "asset_graph_demo.png"))

        page.goto(f"{server.url}/assets/demo/raw?view=events&partition=a.jsonl")
        page.wait_for_selector("text=rows_kept", timeout=60_000)
        dismiss_welcome(page)
        for label in ("rows_in", "rows_kept", "rejections", "kept_path", "code_version"):
            assert page.get_by_text(label, exact=True).count() >= 1, label
        assert page.get_by_text(str(server.lake / "demo" / "raw" / "a.jsonl.parquet")).count() >= 1
        page.screenshot(path=str(ARTIFACTS / "asset_demo_raw_metadata.png"))

        # The asset's overview leads with the totals of every shard, not the last shard's counts.
        page.goto(f"{server.url}/assets/demo/filtered")
        page.wait_for_selector("text=total_rows_kept", timeout=60_000)
        dismiss_welcome(page)
        for label in ("all_shards", "total_rows_kept", "total_rows_rejected", "shards_with_output"):
            assert page.get_by_text(label, exact=True).count() >= 1, label
        assert page.get_by_text("shards**", exact=False).count() == 0  # the markdown is rendered
        # Column lineage in the Columns table: the open-source UI draws no lineage graph for columns.
        assert page.get_by_text("Computed by the text_length filter from", exact=False).count() >= 1
        page.screenshot(path=str(ARTIFACTS / "asset_demo_filtered_overview.png"))

        # A near-duplicate pair shows the words that differ: the kept word struck, the removed in bold.
        page.goto(f"{server.url}/assets/demo/deduped?view=events&partition=b.jsonl")
        page.wait_for_selector("text=example_pairs", timeout=60_000)
        dismiss_welcome(page)
        row = page.locator("tr", has=page.get_by_text("example_pairs", exact=True)).first
        row.locator("del", has_text="pier.").first.wait_for(timeout=30_000)
        assert row.locator("strong", has_text="dock.").count() == 1
        row.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "asset_demo_deduped_example_pair.png"))

        # Image samples show as thumbnails once their markdown is opened.
        page.goto(f"{server.url}/assets/demo/raw?view=events&partition={PICTURES}")
        page.wait_for_selector("text=kept_samples", timeout=60_000)
        dismiss_welcome(page)
        row = page.locator("tr", has=page.get_by_text("kept_samples", exact=True)).first
        row.get_by_text("Show Markdown").click()
        thumbnails = page.locator("img[src^='data:image/jpeg;base64,']")
        thumbnails.first.wait_for(timeout=30_000)
        assert thumbnails.count() == 2
        assert thumbnails.first.evaluate("image => image.naturalWidth") == 96
        page.screenshot(path=str(ARTIFACTS / "asset_demo_raw_thumbnails.png"))
        page.keyboard.press("Escape")

        page.goto(f"{server.url}/assets/demo/report?view=events")
        page.wait_for_selector("text=report_path", timeout=60_000)
        dismiss_welcome(page)
        assert page.get_by_text("funnel", exact=True).count() >= 1
        # The data card's first plots show on the asset's page, rendered from the metadata.
        preview = page.locator("tr", has=page.get_by_text("data_card_preview", exact=True)).first
        preview.get_by_text("Show Markdown").click()
        plots = page.locator("img[src^='data:image/png;base64,']")
        plots.first.wait_for(timeout=30_000)
        assert plots.count() == 2
        assert plots.first.evaluate("image => image.naturalWidth") == 640
        page.wait_for_timeout(500)  # the dialog fades in
        page.screenshot(path=str(ARTIFACTS / "asset_demo_report_preview.png"))
        page.keyboard.press("Escape")
        assert page.get_by_text(str(server.lake / "demo" / "report" / "index.html")).count() >= 1
        page.screenshot(path=str(ARTIFACTS / "asset_demo_report_metadata.png"))
    print(f"screenshots in {ARTIFACTS}")


@contextlib.contextmanager
def daemon(server: Server) -> Iterator[Path]:
    """`dagster-daemon run` on the server's instance, as `dagster dev` starts it; yields its log."""
    log = server.log.with_name("daemon.log")
    with started(["dagster-daemon", "run", "-w", str(REPO / "workspace.yaml")], server.env, log):
        yield log


def report_shards(server: Server, version: str) -> int | None:
    """The `shards` of the version's latest report materialization, None before one has it."""
    latest = server.graphql(LATEST_MATERIALIZATION, {"key": {"path": [version, "report"]}})
    for materialization in latest["assetOrError"]["assetMaterializations"]:
        for entry in materialization["metadataEntries"]:
            if entry["label"] == "shards":
                return int(entry["intValue"])
    return None


def test_a_new_landing_file_reaches_the_report_by_sensor_and_automation_and_the_browser_shows_it(
    server: Server,
) -> None:
    """What `dagster dev` does for a user: the landing sensor registers a dropped file and runs its raw
    stage, automation runs its later stages, then the report and the release; the report's page and the
    data card count the new shard."""
    expected = SHARDS + 2  # the fixture's late shard and the newest
    write_jsonl(
        server.landing / NEWEST_SHARD,
        ["The newest shard holds one report about the ferry timetable changing for the winter months."],
    )
    with daemon(server) as log:
        deadline = time.monotonic() + 420
        while report_shards(server, "demo") != expected and time.monotonic() < deadline:
            time.sleep(3)
    assert report_shards(server, "demo") == expected, log.read_text()[-4000:]
    manifest = json.loads((server.lake / "demo" / "release" / "manifest.json").read_text(encoding="utf-8"))
    assert NEWEST_SHARD in manifest["source_shards"]

    with browser_page() as page:
        page.goto(f"{server.url}/assets/demo/report?view=events")
        page.wait_for_selector("text=report_path", timeout=60_000)
        dismiss_welcome(page)
        row = page.locator("tr", has=page.get_by_text("shards", exact=True)).first
        assert row.get_by_text(str(expected), exact=True).count() == 1
        page.screenshot(path=str(ARTIFACTS / "asset_demo_report_after_new_shard.png"))

        page.goto((server.lake / "demo" / "report" / "index.html").as_uri())
        page.wait_for_selector("text=Funnel", timeout=30_000)
        assert page.get_by_text(f"{expected} shards.", exact=False).count() == 1
        page.screenshot(path=str(ARTIFACTS / "data_card_demo.png"), full_page=True)
