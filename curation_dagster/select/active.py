"""Active-learning rounds of the `proxy` strategy's probe. Each round is one call of
`ActiveLearning.run_round` (one materialization of the version's `active_learning` asset); every file is in
`<lake>/<version>/active_learning/`:

- round r trains the probe on the seed files plus `round_1.labels.jsonl` … `round_<r>.labels.jsonl` (round 0:
  the seeds alone), measures its accuracy, scores the unlabelled pool (the filtered stage's items with text
  that pass `select.where`) and writes `probe_round_<r>.json`, `round_<r+1>.to_label.jsonl` (the batch for a
  person, `label` left empty) and `state.json` (every round so far), the state last;
- a person fills in `label` and saves the file as `round_<r+1>.labels.jsonl` in the same folder;
- the next call trains round r+1. Until that file holds a label, a call does not advance: it returns round
  r's numbers and writes nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from curation_dagster.errors import LabelsError, StageInputMissing
from curation_dagster.io.lake import Lake
from curation_dagster.io.local_files import resolve_local_file
from curation_dagster.select.candidates import ITEMS, read_candidates
from curation_dagster.select.probe import (
    Labelled,
    LabelledFile,
    Probe,
    batch_scores,
    choose_batch,
    cross_validated_accuracy,
    margin_uncertainty,
    merge_labelled,
    parse_labelled,
)
from curation_dagster.spec import ProxySettings, SelectSettings
from curation_dagster.vectors.text import TextEmbedder, shard_embeddings, text_hash, vectors_of

#: The lake folder (in place of a stage) of the version's active-learning rounds.
ACTIVE_LEARNING = "active_learning"
STATE_FILE = "state.json"
#: Embeddings of the labelled texts (seeds, evaluation items, labels) by text hash, so a round embeds
#: only the texts it has not seen.
LABELLED_EMBEDDINGS = "labelled_embeddings.parquet"


def to_label_name(number: int) -> str:
    """The batch exported for labelling in round `number`."""
    return f"round_{number}.to_label.jsonl"


def labels_name(number: int) -> str:
    """The file a person saves with the labels of round `number`'s batch."""
    return f"round_{number}.labels.jsonl"


def probe_name(number: int) -> str:
    return f"probe_round_{number}.json"


def proxy_settings(settings: SelectSettings) -> ProxySettings:
    """The `proxy` strategy of `settings`, if it trains a probe; else a `TypeError` saying so."""
    strategy = settings.strategy
    if not isinstance(strategy, ProxySettings) or not strategy.uses_probe:
        raise TypeError("active learning needs select.strategy of kind proxy with seed_files (a probe)")
    return strategy


def read_local_labelled(names: Sequence[str], setting: str) -> list[Labelled]:
    """Every labelled example of the local files a spec names (seeds, evaluation sets), in file order."""
    items: list[Labelled] = []
    for name in names:
        path = resolve_local_file(name, setting)
        items.extend(parse_labelled(path.read_text(encoding="utf-8"), str(path), blank_allowed=False).items)
    return items


def texts_by_id(lake: Lake | None, version: str, ids: Sequence[str]) -> dict[str, str]:
    """The text of each of `ids` that is a kept item of the version's filtered stage."""
    if lake is None or not ids:
        return {}
    shards = lake.list_shards(version, "filtered")
    if not shards:
        return {}
    files = [lake.url(lake.path(version, "filtered", shard)) for shard in shards]
    rows = (
        lake.connect()
        .sql(
            "SELECT id, text FROM read_parquet(?, union_by_name = true) "
            "WHERE list_contains(?, id) AND text IS NOT NULL ORDER BY id",
            params=[files, list(ids)],
        )
        .fetchall()
    )
    return {str(item): str(text) for item, text in rows}


@dataclass
class RoundRecord:
    """One round as kept in `state.json` and shown in the metadata."""

    round: int
    labelled: int
    """Labelled examples the probe was trained on (seeds and rounds, one per item)."""
    new_labels: int
    """Labels read from this round's labels file (0 in round 0)."""
    labelled_by_class: dict[str, int]
    accuracy: float | None
    """The held-out accuracy when `eval_files` are given, else the cross-validated one."""
    accuracy_source: str
    eval_accuracy: float | None
    cv_accuracy: float | None
    pool: int
    """Unlabelled items scored."""
    by: str
    exported: int
    export_file: str
    """The batch to label, in the active-learning folder."""
    probe_file: str
    mean_wanted_probability: float | None
    asked: list[str] = field(default_factory=list)
    """Ids exported for labelling; they are not offered again."""


@dataclass
class RoundResult:
    """What a call of `run_round` leaves: every round so far, whether this call trained a new one, the
    labels file the next round reads and the current probe."""

    history: list[RoundRecord]
    advanced: bool
    folder: str
    """The version's active-learning folder, as a path or URL."""
    probe: Probe
    blank: int = 0
    """Lines without a label in the labels file that was read (or is awaited)."""

    @property
    def current(self) -> RoundRecord:
        return self.history[-1]

    @property
    def export_path(self) -> str:
        """The batch the latest round exported for labelling."""
        return f"{self.folder}/{self.current.export_file}"

    @property
    def probe_path(self) -> str:
        return f"{self.folder}/{self.current.probe_file}"

    @property
    def waiting_for(self) -> str:
        """The labels file the next round reads."""
        return f"{self.folder}/{labels_name(self.current.round + 1)}"

    def markdown(self) -> str:
        """A table of every round: labels, accuracy (held-out and cross-validated), pool and batch."""
        lines = [
            "| round | labelled | new labels | accuracy | held-out | cross-validated | pool | exported |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for record in self.history:
            lines.append(
                f"| {record.round} | {record.labelled} | {record.new_labels} | {_number(record.accuracy)} "
                f"| {_number(record.eval_accuracy)} | {_number(record.cv_accuracy)} | {record.pool} "
                f"| {record.exported} |"
            )
        return "\n".join(lines)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


@dataclass(frozen=True)
class LabelPool:
    """The unlabelled candidates of a round: the filtered stage's items with text that pass `where`."""

    ids: list[str]
    texts: list[str]
    shards: list[str]
    vectors: np.ndarray


class ActiveLearning:
    """Active-learning rounds for the probe of `settings.strategy` over one version of a lake.

    In a notebook: `ActiveLearning(spec.select, Lake(home), spec.name).run_round()`; label the exported
    file, save it as the labels file it names, and call again. `embedder` defaults to the spec's, on CPU.
    """

    def __init__(
        self, settings: SelectSettings, lake: Lake, version: str, embedder: TextEmbedder | None = None
    ) -> None:
        self.settings = settings
        self.proxy = proxy_settings(settings)
        self.lake, self.version = lake, version
        self.embedder = embedder or TextEmbedder(settings.embeddings)

    def path(self, name: str) -> str:
        """A file of the version's active-learning folder."""
        return f"{self.lake.stage_dir(self.version, ACTIVE_LEARNING)}/{name}"

    @property
    def folder_url(self) -> str:
        return self.lake.url(self.lake.stage_dir(self.version, ACTIVE_LEARNING))

    def _read(self, name: str) -> str | None:
        data = self.lake.read_bytes(self.path(name))
        return None if data is None else data.decode("utf-8")

    def history(self) -> list[RoundRecord]:
        """Every round trained so far, oldest first."""
        content = self._read(STATE_FILE)
        if content is None:
            return []
        return [RoundRecord(**record) for record in json.loads(content)["rounds"]]

    def seeds(self) -> list[Labelled]:
        return read_local_labelled(self.proxy.seed_files, "select.strategy.seed_files")

    def round_labels(self, number: int, classes: Sequence[str]) -> LabelledFile | None:
        """The labels a person filled in for round `number` (None without the file); a label that is not
        one of the seed classes is an error naming the line."""
        content = self._read(labels_name(number))
        if content is None:
            return None
        parsed = parse_labelled(content, self.lake.url(self.path(labels_name(number))), blank_allowed=True)
        for item in parsed.items:
            if item.label not in classes:
                raise LabelsError(
                    f"{item.source}: label {item.label!r} is not one of the seed classes {', '.join(classes)}"
                )
        return parsed

    def labelled(self, upto: int) -> list[Labelled]:
        """The seeds plus the labels of rounds 1 to `upto`; a later label of an item replaces an earlier one."""
        seeds = self.seeds()
        classes = sorted({item.label for item in seeds})
        rounds = []
        for number in range(1, upto + 1):
            found = self.round_labels(number, classes)
            rounds.append(found.items if found is not None else [])
        return merge_labelled(seeds, *rounds)

    def embed(self, items: Sequence[Labelled], *, store: bool = True) -> np.ndarray:
        """The embedding of each labelled example (its text, else the text of its id in the filtered stage),
        from `labelled_embeddings.parquet` where its text was embedded before; `store` adds the new ones."""
        texts = labelled_texts(items, self.lake, self.version)
        hashes = [text_hash(text) for text in texts]
        key = self.embedder.key
        cached: dict[str, np.ndarray] = {}
        path = self.path(LABELLED_EMBEDDINGS)
        if self.lake.exists(path):
            table = self.lake.read_table(path)
            vectors = vectors_of(table.column("vector"))
            for row, (digest, model) in enumerate(
                zip(table.column("text_hash").to_pylist(), table.column("model").to_pylist(), strict=True)
            ):
                if model == key:
                    cached[digest] = vectors[row]
        missing = list(dict.fromkeys(h for h in hashes if h not in cached))
        if missing:
            by_hash = dict(zip(hashes, texts, strict=True))
            cached.update(zip(missing, self.embedder.embed([by_hash[h] for h in missing]), strict=True))
            if store:
                self._store_labelled_embeddings(cached, key)
        if not hashes:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack([cached[h] for h in hashes])

    def _store_labelled_embeddings(self, vectors: dict[str, np.ndarray], model: str) -> None:
        order = sorted(vectors)
        dimension = len(vectors[order[0]])
        flat = pa.array(np.concatenate([vectors[h] for h in order]).astype(np.float32), pa.float32())
        table = pa.table(
            {
                "text_hash": order,
                "model": [model] * len(order),
                "vector": pa.FixedSizeListArray.from_arrays(flat, dimension),
            }
        )
        self.lake.write_table(self.path(LABELLED_EMBEDDINGS), table)

    def train(self, items: Sequence[Labelled], *, store: bool = True) -> Probe:
        """The probe fitted on these examples with the spec's settings."""
        vectors = self.embed(items, store=store)
        return fit_probe(self.proxy, vectors, [item.label for item in items], self.embedder.key)

    def stored_probe(self, number: int) -> Probe | None:
        content = self._read(probe_name(number))
        return None if content is None else Probe.from_json(json.loads(content))

    def pool(self) -> LabelPool:
        """Every filtered item with text that passes `select.where`, embedded (vectors kept in the lake's
        embeddings folder and shared with the selected stage)."""
        shards = self.lake.list_shards(self.version, "filtered")
        if not shards:
            raise StageInputMissing(
                f"active learning picks from {self.version}/filtered: materialize it for a shard first"
            )
        ids: list[str] = []
        texts: list[str] = []
        owners: list[str] = []
        blocks: list[np.ndarray] = []
        for shard in shards:
            connection = self.lake.connect()
            source = self.lake.path(self.version, "filtered", shard)
            connection.read_parquet(self.lake.url(source)).create_view(ITEMS)
            candidates = read_candidates(
                connection, self.settings, need_text=True, source=f"{self.version}/filtered/{shard}"
            )
            shard_texts = candidates.texts or [None] * len(candidates.ids)
            embedded = shard_embeddings(
                self.lake, self.version, shard, candidates.ids, shard_texts, self.embedder
            )
            keep = np.flatnonzero(candidates.passes & embedded.embedded)
            ids.extend(candidates.ids[p] for p in keep)
            texts.extend(str(shard_texts[p]) for p in keep)
            owners.extend([shard] * len(keep))
            blocks.append(embedded.vectors[keep])
        dimension = max((block.shape[1] for block in blocks if block.ndim == 2), default=0)
        vectors = np.vstack([b for b in blocks if len(b)]) if ids else np.zeros((0, dimension), np.float32)
        return LabelPool(ids, texts, owners, vectors)

    def run_round(self, pool: LabelPool | None = None) -> RoundResult:
        """Train the next round when its labels are in (round 0 when none has run), else report the last.
        `pool` replaces the filtered stage's items (tests, notebooks)."""
        with self.lake.lock(self.version, ACTIVE_LEARNING):
            history = self.history()
            if history:
                last = history[-1].round
                classes = sorted({item.label for item in self.seeds()})
                found = self.round_labels(last + 1, classes)
                if found is None or not found.items:
                    probe = self.stored_probe(last) or self.train(self.labelled(last))
                    return RoundResult(
                        history,
                        advanced=False,
                        folder=self.folder_url,
                        probe=probe,
                        blank=found.blank if found is not None else 0,
                    )
                return self._train_round(last + 1, history, pool, found)
            return self._train_round(0, history, pool, None)

    def _train_round(
        self,
        number: int,
        history: list[RoundRecord],
        pool: LabelPool | None,
        new: LabelledFile | None,
    ) -> RoundResult:
        items = self.labelled(number)
        vectors = self.embed(items)
        labels = [item.label for item in items]
        probe = fit_probe(self.proxy, vectors, labels, self.embedder.key)
        pool = pool if pool is not None else self.pool()
        batch = self._batch(probe, pool, items, history)
        accuracy, source, eval_accuracy, cv_accuracy = self._accuracy(probe, vectors, labels)
        record = RoundRecord(
            round=number,
            labelled=len(items),
            new_labels=len(new.items) if new is not None else 0,
            labelled_by_class=dict(sorted(Counter(labels).items())),
            accuracy=_rounded(accuracy),
            accuracy_source=source,
            eval_accuracy=_rounded(eval_accuracy),
            cv_accuracy=_rounded(cv_accuracy),
            pool=batch.pool,
            by=batch.by,
            exported=len(batch.rows),
            export_file=to_label_name(number + 1),
            probe_file=probe_name(number),
            mean_wanted_probability=batch.mean_wanted_probability,
            asked=[row["id"] for row in batch.rows],
        )
        self.lake.write_bytes(self.path(probe_name(number)), _json_bytes(probe.to_json()))
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in batch.rows)
        self.lake.write_bytes(self.path(to_label_name(number + 1)), lines.encode("utf-8"))
        history = [*history, record]
        self.lake.write_bytes(self.path(STATE_FILE), _json_bytes({"rounds": [asdict(r) for r in history]}))
        return RoundResult(
            history,
            advanced=True,
            folder=self.folder_url,
            probe=probe,
            blank=new.blank if new is not None else 0,
        )

    def _batch(
        self, probe: Probe, pool: LabelPool, items: Sequence[Labelled], history: Sequence[RoundRecord]
    ) -> _Batch:
        """The rows to export: the unlabelled items the probe is least sure of (or whose prediction moved
        most since the previous round's probe), best first."""
        settings = self.proxy.active_learning
        positions = self._unlabelled(pool, items, history)
        current = probe.probabilities(pool.vectors[positions])
        previous_probe = self.stored_probe(history[-1].round) if history else None
        previous = None
        if previous_probe is not None and _comparable(previous_probe, probe):
            previous = previous_probe.probabilities(pool.vectors[positions])
        scores = batch_scores(settings.by, current, previous)
        ids = [pool.ids[p] for p in positions]
        wanted = probe.classes.index(probe.wanted)
        rows = [
            {
                "id": ids[c],
                "shard": pool.shards[positions[c]],
                "text": pool.texts[positions[c]],
                "probability": round(float(current[c, wanted]), 6),
                "predicted": probe.classes[int(current[c].argmax())],
                "priority": round(float(scores[c]), 6),
                "label": "",
            }
            for c in choose_batch(ids, scores, margin_uncertainty(current), settings.batch_size).tolist()
        ]
        by: str = settings.by
        if by == "learnability" and previous is None:
            by = "learnability (margin: no previous probe)"
        mean = round(float(current[:, wanted].mean()), 6) if len(current) else None
        return _Batch(rows, len(positions), by, mean)

    def _accuracy(
        self, probe: Probe, vectors: np.ndarray, labels: Sequence[str]
    ) -> tuple[float | None, str, float | None, float | None]:
        """(accuracy, where it comes from, held-out accuracy, cross-validated accuracy)."""
        eval_accuracy = self._eval_accuracy(probe)
        cv_accuracy = cross_validated_accuracy(
            vectors,
            labels,
            probe.wanted,
            folds=self.proxy.active_learning.cv_folds,
            seed=self.settings.seed,
            regularization=self.proxy.regularization,
            balanced=self.proxy.balanced,
        )
        if self.proxy.eval_files:
            accuracy, source = eval_accuracy, "held-out (select.strategy.eval_files)"
        else:
            accuracy, source = cv_accuracy, "cross-validated on the labels"
        if accuracy is None:
            source = "not measurable yet (fewer than two labels of a class)"
        return accuracy, source, eval_accuracy, cv_accuracy

    def _unlabelled(
        self, pool: LabelPool, items: Sequence[Labelled], history: Sequence[RoundRecord]
    ) -> np.ndarray:
        """Positions of pool items that have no label and were not exported in an earlier round."""
        taken = {item.id for item in items if item.id} | {i for record in history for i in record.asked}
        labelled_texts = {text_hash(item.text) for item in items if item.text}
        return np.asarray(
            [
                position
                for position, (item, text) in enumerate(zip(pool.ids, pool.texts, strict=True))
                if item not in taken and text_hash(text) not in labelled_texts
            ],
            dtype=np.int64,
        )

    def _eval_accuracy(self, probe: Probe) -> float | None:
        if not self.proxy.eval_files:
            return None
        items = read_local_labelled(self.proxy.eval_files, "select.strategy.eval_files")
        unknown = [item for item in items if item.label not in probe.classes]
        if unknown:
            raise LabelsError(
                f"{unknown[0].source}: label {unknown[0].label!r} is not one of the seed classes "
                f"{', '.join(probe.classes)}"
            )
        return probe.accuracy(self.embed(items), [item.label for item in items])


@dataclass(frozen=True)
class _Batch:
    rows: list[dict[str, Any]]
    pool: int
    by: str
    mean_wanted_probability: float | None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _comparable(previous: Probe, current: Probe) -> bool:
    return previous.classes == current.classes and previous.dimension == current.dimension


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def labelled_texts(items: Sequence[Labelled], lake: Lake | None, version: str) -> list[str]:
    """The text of each labelled example: its own, else that of its id in the filtered stage (an error
    naming the line when it is not there)."""
    missing = [item.id for item in items if item.text is None and item.id]
    found = texts_by_id(lake, version, [item for item in missing if item])
    texts = []
    for item in items:
        text = item.text if item.text is not None else found.get(item.id or "")
        if text is None:
            where = f"{version}/filtered" if lake is not None else "the lake (none given)"
            raise LabelsError(f"{item.source}: id {item.id!r} has no text here and is not an item of {where}")
        texts.append(text)
    return texts


def fit_probe(proxy: ProxySettings, vectors: np.ndarray, labels: Sequence[str], model: str) -> Probe:
    """A probe with the strategy's settings."""
    return Probe.fit(
        vectors,
        labels,
        proxy.wanted_label,
        regularization=proxy.regularization,
        balanced=proxy.balanced,
        model=model,
    )


def current_probe(
    settings: SelectSettings, lake: Lake | None, version: str, embedder: TextEmbedder
) -> tuple[Probe, str]:
    """The probe the selected stage ranks with, and where it came from: the latest round's when it fits the
    spec (same embedder, wanted label and training settings), else one trained now on the seeds and the
    labels of every round so far (the seeds alone before any round)."""
    proxy = proxy_settings(settings)
    if lake is None:
        seeds = read_local_labelled(proxy.seed_files, "select.strategy.seed_files")
        vectors = embedder.embed(labelled_texts(seeds, None, version))
        probe = fit_probe(proxy, vectors, [s.label for s in seeds], embedder.key)
        return probe, f"trained on {len(seeds)} seed examples (no lake)"
    rounds = ActiveLearning(settings, lake, version, embedder)
    history = rounds.history()
    if history:
        stored = rounds.stored_probe(history[-1].round)
        wanted_settings = (("balanced", proxy.balanced), ("regularization", float(proxy.regularization)))
        if (
            stored is not None
            and stored.model == embedder.key
            and stored.wanted == proxy.wanted_label
            and stored.settings == wanted_settings
        ):
            return stored, f"active-learning round {history[-1].round} ({history[-1].labelled} labels)"
    upto = history[-1].round if history else 0
    items = rounds.labelled(upto)
    origin = f"rounds 1-{upto}" if upto else "no active-learning round yet"
    return rounds.train(items, store=False), f"trained at selection time on {len(items)} labels ({origin})"
