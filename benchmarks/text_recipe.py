"""The FineWeb text recipe of issue 18 end to end through Dagster: raw JSON Lines to kept Parquet.

One JSON Lines landing shard of unique real English documents (`near_dedup.py`'s corpus: Python's
documentation and docstrings, package descriptions and licences found on this machine, about 2.4 KB a
document, no planted duplicates), a spec with `modalities: [text]`, the filters `language` (en, 0.65),
`gopher_quality`, `gopher_repetition`, `c4_quality`, `fineweb_quality` and default dedup, and one
`dagster asset materialize` per stage (raw, deduped, filtered), each a separate process on a temporary
instance and lake, as CI runs them. The recipe runs once with the filtered stage in one process
(CURATION_WORKERS=1) and once with a worker per core.

Per step: wall seconds of the command (Dagster's start-up included) and of the stage itself (from its log
line), CPU seconds of every process of the command, MB/s per core (MB / seconds / cores the step uses: 1,
or the workers of the filtered stage), MB per CPU second (what a core gives when other jobs share the
machine and wall time says little), the largest resident memory of one process and the peak of the sum
over the command's processes (sampled every 0.1 s). Then the recipe: MB over the sum of the three steps'
seconds, and per core. The issue's goals: 5 MB/s per core or more, each step under 2 GB for a 1 GB shard.

`--profile` then runs each stage in this process under cProfile (the filtered stage in one process) and
prints where its time goes: by function, by source file and, for the filtered stage, per filter.

    python benchmarks/text_recipe.py                     # 256 MB, a few minutes on 2 cores
    python benchmarks/text_recipe.py --megabytes 16      # a quick run
    python benchmarks/text_recipe.py --megabytes 1024 --modes on   # the memory bound of the issue
    python benchmarks/text_recipe.py --modes "" --profile     # only where the time goes
    python benchmarks/text_recipe.py --modes off,ci           # a command per stage, then one for all three

`--modes ci` runs the three stages in one `dagster asset materialize` with CURATION_EXECUTOR=in_process (the
README's CI path), so Python starts and loads the code location once, not once per command and per step.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing
import os
import pstats
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from near_dedup import CorpusBuilder

from curation_dagster.filters.workers import available_cores

VERSION, SHARD, STAGES = "recipe", "web.jsonl", ("raw", "deduped", "filtered")
SPEC = """\
name: recipe
description: The FineWeb text recipe of issue 18.
modalities: [text]
filters:
  text:
    - {kind: language, keep: [en], min_score: 0.65}
    - {kind: gopher_quality}
    - {kind: gopher_repetition}
    - {kind: c4_quality}
    - {kind: fineweb_quality}
"""
#: The stage's own log line: `recipe/filtered[web.jsonl]: 100 in, 80 kept, 20 rejected in 12.3s (...)`.
STAGE_LINE = re.compile(r"\]: (\d+) in, (\d+) kept, (\d+) rejected in ([\d.]+)s")
#: Dagster's line at the end of each step: `Finished execution of step "recipe__raw" in 4.21s.` (533ms,
#: 2.1s, 4m52s, 1h4m: `dagster_shared.utils.timing.format_duration`).
STEP_LINE = re.compile(
    r'Finished execution of step "[^"]+" in ((?:\d+h)?(?:\d+m(?!s))?(?:[\d.]+s)?(?:[\d.]+ms)?)\.'
)
_DURATION_PART = re.compile(r"([\d.]+)(h|ms|m|s)")
_DURATION_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def step_seconds(output: str) -> float:
    """The summed durations of the steps a command's output reports finished (Dagster's own timing of a
    step: the asset's work, its metadata and checks, without the command's and the step process's
    start-up)."""
    return sum(
        float(number) * _DURATION_UNIT_S[unit]
        for duration in STEP_LINE.findall(output)
        for number, unit in _DURATION_PART.findall(duration)
    )


@dataclass
class Step:
    stage: str
    seconds: float
    stage_seconds: float
    step_seconds: float
    cpu_seconds: float
    cores: int
    largest_process_mb: float
    all_processes_mb: float
    rows: tuple[int, int, int]


def write_shard(path: Path, megabytes: float, seed: int) -> tuple[int, float]:
    """About `megabytes` MB of unique documents as JSON Lines: documents and MB written."""
    started = time.perf_counter()
    texts = CorpusBuilder(seed).corpus(max(int(megabytes * 1e6 / 2400), 10), 0.0, 0.0).texts
    written = count = 0
    with path.open("w", encoding="utf-8") as handle:
        while count < len(texts) and written < megabytes * 1e6:
            line = json.dumps({"text": texts[count]}) + "\n"
            handle.write(line)
            written += len(line.encode())
            count += 1
    print(
        f"shard: {count:,} documents, {written / 1e6:.1f} MB ({time.perf_counter() - started:.0f} s to build)"
    )
    return count, written / 1e6


def project(folder: Path, landing: Path, workers: int) -> dict[str, str]:
    """A project folder (the spec alone in versions/) and the environment its commands run in."""
    (folder / "versions").mkdir(parents=True)
    (folder / "versions" / f"{VERSION}.yaml").write_text(SPEC)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "CURATION_"))}
    env.update(
        DAGSTER_HOME=str(folder / "dagster_home"),
        CURATION_HOME=str(folder / "lake"),
        CURATION_LANDING=str(landing),
        CURATION_VERSIONS=str(folder / "versions"),
        CURATION_MAX_SHARD_BYTES="64GiB",  # the shard is one partition whatever its size
        CURATION_WORKERS=str(workers),
    )
    return env


class MemorySampler:
    """The peak of the summed resident memory of a process and its descendants, read from /proc."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self.pid, self.interval_s, self.peak_mb = pid, interval_s, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
        while not self._done.wait(self.interval_s):
            pages = 0
            for pid in self._tree():
                try:
                    pages += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
                except (OSError, IndexError, ValueError):
                    continue
            self.peak_mb = max(self.peak_mb, pages * page_mb)

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(parent, []).append(int(entry.name))
        found, stack = [], [self.pid]
        while stack:
            pid = stack.pop()
            found.append(pid)
            stack.extend(children.get(pid, []))
        return found

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.peak_mb


def run_command(args: list[str], env: dict[str, str], cwd: Path) -> tuple[str, float, float, float, float]:
    """Output, wall seconds, CPU seconds of every process, largest and summed peak resident MB."""
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sampler = MemorySampler(process.pid)
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    summed = sampler.stop()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {process.returncode}:\n{output[-4000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return output, seconds, cpu, usage.ru_maxrss / 1024, summed


def run_recipe(folder: Path, landing: Path, workers: int, one_command: bool = False) -> list[Step]:
    """Register the shard, then one `dagster asset materialize` per stage (or, `one_command`, one for the
    three stages with CURATION_EXECUTOR=in_process: one step of all three)."""
    env = project(folder, landing, workers)
    run_command([sys.executable, "-m", "curation_dagster.cli", "register", "--no-demo-data"], env, folder)
    if one_command:
        command = [
            "dagster",
            "asset",
            "materialize",
            "-m",
            "curation_dagster.definitions",
            "--partition",
            SHARD,
        ]
        command += ["--select", ",".join(f"{VERSION}/{stage}" for stage in STAGES)]
        output, seconds, cpu, largest, summed = run_command(
            command, {**env, "CURATION_EXECUTOR": "in_process"}, folder
        )
        found = STAGE_LINE.findall(output)
        if len(found) != len(STAGES):
            raise SystemExit(f"expected {len(STAGES)} stage summary lines:\n{output[-3000:]}")
        print(
            "stage seconds in the one command: "
            + ", ".join(f"{s} {f[3]}" for s, f in zip(STAGES, found, strict=True))
        )
        rows = (int(found[0][0]), int(found[-1][1]), int(found[0][0]) - int(found[-1][1]))
        stage_seconds = sum(float(line[3]) for line in found)
        return [
            Step("all three", seconds, stage_seconds, step_seconds(output), cpu, 1, largest, summed, rows)
        ]
    steps = []
    for stage in STAGES:
        command = ["dagster", "asset", "materialize", "-m", "curation_dagster.definitions"]
        command += ["--select", f"{VERSION}/{stage}", "--partition", SHARD]
        output, seconds, cpu, largest, summed = run_command(command, env, folder)
        found = STAGE_LINE.search(output)
        if found is None:
            raise SystemExit(f"no stage summary line in the output of {stage}:\n{output[-3000:]}")
        rows = (int(found.group(1)), int(found.group(2)), int(found.group(3)))
        cores = workers if stage == "filtered" else 1
        steps.append(
            Step(
                stage, seconds, float(found.group(4)), step_seconds(output), cpu, cores, largest, summed, rows
            )
        )
    return steps


def print_steps(label: str, steps: list[Step], megabytes: float) -> None:
    print(f"\n== {label}; load average before: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
    print(
        f"{'step':<10}{'rows in/kept':>18}{'command s':>11}{'step s':>8}{'stage s':>9}{'cpu s':>8}{'cores':>6}"
        f"{'MB/s/core':>11}{'MB/cpu s':>10}{'largest MB':>12}{'all procs MB':>14}"
    )
    for step in steps:
        print(
            f"{step.stage:<10}{f'{step.rows[0]:,}/{step.rows[1]:,}':>18}{step.seconds:>11.1f}"
            f"{step.step_seconds:>8.1f}{step.stage_seconds:>9.1f}{step.cpu_seconds:>8.1f}{step.cores:>6}"
            f"{megabytes / step.seconds / step.cores:>11.2f}{megabytes / step.cpu_seconds:>10.2f}"
            f"{step.largest_process_mb:>12,.0f}{step.all_processes_mb:>14,.0f}"
        )
    wall = sum(step.seconds for step in steps)
    core_seconds = sum(step.seconds * step.cores for step in steps)
    cpu = sum(step.cpu_seconds for step in steps)
    stage_wall = sum(step.stage_seconds for step in steps)
    step_core_seconds = sum(step.step_seconds * step.cores for step in steps)
    print(
        f"recipe: {wall:.1f} s, {megabytes / wall:.2f} MB/s; per core {megabytes / core_seconds:.2f} MB/s "
        f"with the commands' start-up, {megabytes / step_core_seconds:.2f} over Dagster's step durations "
        f"(the issue's measure; goal 5); per CPU second {megabytes / cpu:.2f} MB; stages alone "
        f"{megabytes / stage_wall:.2f} MB/s"
    )


def profile_stages(folder: Path, landing: Path, top: int) -> None:
    """Each stage in this process under cProfile, the filtered stage in one process."""
    from curation_dagster.io.lake import Lake
    from curation_dagster.pipeline import run_stage
    from curation_dagster.spec import load_spec

    os.environ["CURATION_WORKERS"] = "1"
    spec = load_spec(_spec_file(folder))
    lake = Lake(folder / "profile_lake")
    for stage in STAGES:
        profiler = cProfile.Profile()
        started = time.perf_counter()
        source = landing / SHARD if stage == "raw" else None
        profiler.runcall(run_stage, spec, lake, stage, SHARD, source)
        print(f"\n== profile: {stage}, {time.perf_counter() - started:.1f} s under cProfile")
        print_profile(pstats.Stats(profiler), top)


def _spec_file(folder: Path) -> Path:
    path = folder / "profile_versions" / f"{VERSION}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SPEC)
    return path


def _place(filename: str) -> str:
    """A source file as a short name: the package path inside site-packages or the repository."""
    for marker in ("site-packages/", "curation_dagster/", "lib/python3"):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            return ("curation_dagster/" + tail) if marker == "curation_dagster/" else tail
    return filename


def print_profile(stats: pstats.Stats, top: int) -> None:
    """The functions with the most time of their own, the files that hold it, and each filter's share."""
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in entries.values())
    print(f"{'own s':>8} {'share':>6}  function")
    for (filename, line, name), entry in sorted(entries.items(), key=lambda item: -item[1][2])[:top]:
        print(f"{entry[2]:>8.2f} {entry[2] / total:>6.1%}  {_place(filename)}:{line} {name}")
    by_file: dict[str, float] = {}
    for (filename, _, name), entry in entries.items():
        place = _place(filename) if filename != "~" else f"builtin {name.split(' of ')[-1].strip('>}')}"
        by_file[place] = by_file.get(place, 0.0) + entry[2]
    print(f"{'own s':>8} {'share':>6}  file")
    for place, seconds in sorted(by_file.items(), key=lambda item: -item[1])[:top]:
        print(f"{seconds:>8.2f} {seconds / total:>6.1%}  {place}")
    # A filter's own rules; the text statistics it is the first to ask a TextBatch for count with it.
    filters = {
        f"{_place(filename)}:{line} {name}": entry[3]
        for (filename, line, name), entry in entries.items()
        if name in ("evaluate", "evaluate_batch") and "/filters/" in filename and entry[3] > 0.005 * total
    }
    if filters:
        print(f"{'cum s':>8} {'share':>6}  filter (cumulative: its rules and what they compute first)")
        for name, seconds in sorted(filters.items(), key=lambda item: -item[1]):
            print(f"{seconds:>8.2f} {seconds / total:>6.1%}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--megabytes", type=float, default=256)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--workers", type=int, default=available_cores(), help="workers with the pool on")
    parser.add_argument(
        "--modes",
        default="off,on",
        help="off (a command per stage, one process each), on (the pool), ci (one command for the three "
        "stages, CURATION_EXECUTOR=in_process), any of them or none",
    )
    parser.add_argument("--profile", action="store_true", help="then profile each stage in this process")
    parser.add_argument("--top", type=int, default=15, help="lines per profile table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="text_recipe_") as scratch:
        folder = Path(scratch)
        landing = folder / "landing"
        landing.mkdir()
        # Built in a child process: a child of this one starts with its memory, so a large corpus held
        # here would count in every command's peak.
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as builder:
            _, megabytes = builder.submit(write_shard, landing / SHARD, args.megabytes, args.seed).result()
        for number, mode in enumerate(filter(None, args.modes.split(","))):
            workers = 1 if mode in ("off", "ci") else args.workers
            steps = run_recipe(
                folder / f"project_{number}_{mode}", landing, workers, one_command=mode == "ci"
            )
            label = "one command, in-process executor" if mode == "ci" else f"pool {mode}"
            print_steps(f"{label} ({workers} worker{'s' if workers > 1 else ''})", steps, megabytes)
        if args.profile:
            profile_stages(folder, landing, args.top)


if __name__ == "__main__":
    main()
