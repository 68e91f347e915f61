"""The demo's rows as a record to compare with: per version, stage and shard, the count and a digest of the
kept and the rejected rows' contents. `demo_rows.json` beside this file was written from the code before
the engine was restructured (issue 14), and written again when the language filter's default engine became
fastText's lid.176 (issue 18: every count the same, `lang_score` values changed), and when `flip_crop`
began mirroring the side words of captions (issue 17: every count the same; the synthesized image rows
changed: "left to right" captions of mirrored gradients now say "right to left", and each item's
`generator` records the new `captions` setting), and when lid.176 began to run in batches in numpy (issue
18: every count and decision the same; 285 `lang_score` values changed by at most 1.2e-7, float32 rounding),
and when deduped rows gained `dup_measure` (issue 16: every count, decision and `dup_similarity` the same;
each stage from deduped on carries the new column, and near duplicates' `reject_detail` names the measure,
"similarity 0.98, minhash_estimate" where it said "estimated similarity 0.98"), and when image near-dedup
was rebuilt for real pictures (issue 16: every count and decision the same; one removed demo picture's
`reject_detail` names a margin window as its closest hash pair, "hash distance 0 of 64 (both without the
bottom margin)" where it said "(whole images)"), and when every filter's reject codes took the one scheme
`filter.<kind>.<rule>` (issue 17: every count and decision the same; the filtered stage's rejected rows
and one synthesized reject, a synthetic candidate the filters turned down, carry `filter.gopher_quality.*`,
`filter.language.*`, ... where they said `quality.gopher.*`, `lang.*`, ...), and when near-duplicate text
pairs began to be confirmed on their word pairs (issue 16: every count and every kept row of every stage the
same; the near duplicates rejected in demo/deduped's news_en.jsonl carry the word-pair similarity and
`exact_word_pairs` where they carried the word-set estimate and `minhash_estimate`); a run that changes any
row of any stage fails the comparison.

Rewrite it only when a change of behaviour is meant, and say so in the commit:
`python -m tests.e2e.demo_rows` runs `curation run` on a fresh project folder and writes the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

RECORD = Path(__file__).with_name("demo_rows.json")
VERSIONS = ("demo", "text_formal")
STAGES = ("raw", "deduped", "filtered", "selected", "synthesized")


def _normalise(value: Any, landing: str) -> Any:
    """A value as stable JSON: bytes by their digest, floats to 9 significant digits, the landing
    folder's path (which differs between project folders) replaced by `<landing>`."""
    if isinstance(value, bytes | bytearray):
        return "sha256:" + hashlib.sha256(value).hexdigest()
    if isinstance(value, float):
        return value if not math.isfinite(value) else float(f"{value:.9g}")
    if isinstance(value, str):
        return value.replace(landing, "<landing>")
    if isinstance(value, dict):
        return {key: _normalise(item, landing) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(item, landing) for item in value]
    return value


def lake_rows(lake: Path, landing: Path) -> dict[str, dict[str, Any]]:
    """`<version>/<stage>[/_rejected]/<shard>` -> {rows, digest} for every stage file of the demo versions."""
    record: dict[str, dict[str, Any]] = {}
    for version in VERSIONS:
        for stage in STAGES:
            for path in sorted((lake / version / stage).glob("*.parquet")) + sorted(
                (lake / version / stage / "_rejected").glob("*.parquet")
            ):
                rows = sorted(pq.read_table(path).to_pylist(), key=lambda row: str(row["id"]))
                digest = hashlib.sha256()
                for row in rows:
                    digest.update(json.dumps(_normalise(row, str(landing)), sort_keys=True).encode())
                    digest.update(b"\n")
                key = path.relative_to(lake).as_posix().removesuffix(".parquet")
                record[key] = {"rows": len(rows), "digest": digest.hexdigest()[:20]}
    return record


def differences(found: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> list[str]:
    """One line per file that is missing, extra, or whose rows differ."""
    lines = [f"missing: {key}" for key in sorted(expected.keys() - found.keys())]
    lines += [f"extra: {key}" for key in sorted(found.keys() - expected.keys())]
    lines += [
        f"differs: {key} ({expected[key]['rows']} rows recorded, {found[key]['rows']} now)"
        for key in sorted(found.keys() & expected.keys())
        if found[key] != expected[key]
    ]
    return lines


def main() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "CURATION_"))}
    env["CURATION_VERSIONS"] = str(Path(__file__).resolve().parents[2] / "versions")
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "curation_dagster.cli", "run"], cwd=folder, env=env, check=True)
        state = Path(folder) / ".curation"
        record = lake_rows(state / "lake", state / "landing")
    RECORD.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {RECORD} ({len(record)} files)")


if __name__ == "__main__":
    main()
