"""Tests of curation_dagster/filters/workers.py: worker processes answer in input order with a bounded number
of batches in flight, raise a worker's error here, and import neither Dagster nor torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pyarrow as pa
import pytest

from curation_dagster.errors import ModelNotConfigured, WorkerLost
from curation_dagster.filters.chain import build_chain
from curation_dagster.filters.workers import (
    BATCHES_PER_WORKER,
    POOL_MIN_ROWS,
    ChainWorkers,
    RemoteTraceback,
    available_cores,
    default_workers,
)
from curation_dagster.spec import FilterSettings, parse_spec

LENGTH = parse_spec({"name": "t", "filters": {"text": [{"kind": "text_length", "min_words": 4}]}}).filters


def batch(texts: list[str], first: int = 0) -> pa.Table:
    rows = len(texts)
    return pa.table(
        {
            "id": [f"id{first + number}" for number in range(rows)],
            "modality": ["text"] * rows,
            "text": texts,
        }
    )


def batches(count: int) -> list[pa.Table]:
    """Batches of different sizes, each with kept and rejected rows."""
    return [
        batch([f"word {n} " * (1 + row % 5) for row in range(1 + 7 * n % 23)], first=100 * n)
        for n in range(count)
    ]


def test_answers_come_back_in_input_order_as_the_chain_gives_them() -> None:
    tables = batches(12)
    chain = build_chain(LENGTH)

    with ChainWorkers(LENGTH, 3) as workers:
        answers = list(workers.run(tables))

    assert answers == [chain.run(table) for table in tables]


def test_the_stage_reads_at_most_two_batches_per_worker_ahead_of_what_it_writes() -> None:
    taken: list[int] = []

    def counted() -> Iterator[pa.Table]:
        for number, table in enumerate(batches(20)):
            taken.append(number)
            yield table

    ahead = []
    with ChainWorkers(LENGTH, 2) as workers:
        for answered, _ in enumerate(workers.run(counted()), start=1):
            ahead.append(len(taken) - answered)

    assert max(ahead) == BATCHES_PER_WORKER * 2


def test_a_filter_error_in_a_worker_is_raised_here_with_its_own_class() -> None:
    settings = parse_spec(
        {"name": "t", "filters": {"text": [{"kind": "language", "fasttext_path": "/nowhere/lid.176.ftz"}]}}
    ).filters

    expected = r"language\.fasttext_path is '/nowhere/lid\.176\.ftz'"
    with pytest.raises(ModelNotConfigured, match=expected) as raised, ChainWorkers(settings, 2) as workers:
        list(workers.run(batches(4)))

    assert isinstance(raised.value.__cause__, RemoteTraceback)
    assert "fasttext_model" in str(raised.value.__cause__)


def test_a_worker_that_dies_raises_worker_lost_which_a_retry_may_fix() -> None:
    expected = r"stopped before answering, exit code -9 \(signal 9\)"
    with pytest.raises(WorkerLost, match=expected) as raised, ChainWorkers(LENGTH, 2) as workers:
        for worker in workers._workers:
            worker.kill()
        list(workers.run(batches(4)))

    assert raised.value.retryable


def test_workers_exit_when_the_pool_closes() -> None:
    with ChainWorkers(LENGTH, 2) as workers:
        list(workers.run(batches(3)))

    assert [worker.process.returncode for worker in workers._workers] == [0, 0]


def test_workers_are_killed_when_the_stage_stops_with_batches_in_flight() -> None:
    with pytest.raises(KeyError), ChainWorkers(LENGTH, 2) as workers:
        for _ in workers.run(batches(10)):
            raise KeyError("the stage failed while writing")

    assert all(worker.process.returncode is not None for worker in workers._workers)


PROBE = """
import json, sys
import pyarrow as pa
from curation_dagster.filters import workers
from curation_dagster.filters.chain import build_chain
from curation_dagster.spec import parse_spec
recipe = [{"kind": k} for k in ("language", "gopher_quality", "gopher_repetition", "c4_quality", "fineweb_quality",
          "toxicity", "register", "pii", "text_length")]
chain = build_chain(parse_spec({"name": "t", "filters": {"text": recipe}}).filters)
chain.run(pa.table({"id": ["a"], "modality": ["text"], "text": ["The river was quiet in the morning light."]}))
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & {"dagster", "torch", "transformers"})))
"""


def test_a_worker_imports_neither_dagster_nor_torch() -> None:
    """What a worker imports: this module, the chain and the models of the CPU text filters."""
    done = subprocess.run(
        [sys.executable, "-P", "-c", PROBE], capture_output=True, text=True, check=True, timeout=300
    )

    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_every_core_goes_to_a_large_shard_and_one_process_to_a_small_one() -> None:
    assert default_workers(POOL_MIN_ROWS, 16) == 16
    assert default_workers(POOL_MIN_ROWS - 1, 16) == 1
    assert default_workers(10 * POOL_MIN_ROWS, 1) == 1


def test_the_cores_are_those_the_process_may_run_on() -> None:
    assert available_cores() == len(os.sched_getaffinity(0))


def test_settings_reach_the_workers_unchanged() -> None:
    settings = FilterSettings.model_validate(
        {"text": [{"kind": "text_length", "min_chars": 5, "max_chars": 9, "min_words": 1}]}
    )
    table = batch(["four", "fivers", "much too long"])

    with ChainWorkers(settings, 1) as workers:
        ((kept, rejected),) = workers.run([table])

    assert kept.column("text").to_pylist() == ["fivers"]
    assert rejected.column("reject_reason").to_pylist() == [
        "filter.text_length.too_short",
        "filter.text_length.too_long",
    ]
