"""Near-duplicate admission of synthetic text, with the version's `dedup.near` settings.

A variant may be a near duplicate of its own family: its parents (an augmentation or a paraphrase is
made to resemble them, and an earlier item whose cluster root is a parent counts as one) and its
siblings, the variants other recipes made of the same parents. It may not be a near duplicate of any
other item: another real item of the version (any shard), a synthetic item admitted in another shard,
or a candidate of another family admitted before it in this shard (the first one wins). A candidate that
passed near or media admission but that the filters then turned down is withdrawn: it is no one's
duplicate and goes into no index.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.dedup.exact import ExactDedup
from curation_dagster.dedup.indexes import (
    AUDIO_HASHES,
    IMAGE_HASHES,
    SYNTH_PREFIX,
    VIDEO_HASHES,
)
from curation_dagster.dedup.media import (
    REJECT_AUDIO,
    REJECT_IMAGE,
    REJECT_VIDEO,
    EarlierMedia,
    MediaDecision,
    MediaMatcher,
    ShardMedia,
    index_table,
    match_rows,
    prefer,
)
from curation_dagster.dedup.minhash import (
    Signed,
    band_keys,
    confirm,
    dedup_signatures,
    has_shingles,
)
from curation_dagster.dedup.near import (
    REJECT_NEAR,
    EarlierLookup,
    NearDecision,
    ShardBands,
    ShardOutcome,
    signature_columns_schema,
)
from curation_dagster.dedup.plan import (
    MEDIA_MEASURES,
    hash_kept_media,
    media_index,
    media_steps,
)
from curation_dagster.dedup.word_sketch import MEASURES, WordSketches
from curation_dagster.filters.base import FilterChain
from curation_dagster.io.lake import Lake
from curation_dagster.schema import mark_rejected
from curation_dagster.spec import NearDedupSettings, VersionSpec


class NearAdmission:
    """Decides, batch after batch of a shard's text candidates, which are near duplicates of an item
    other than their parents; remembers the admitted ones for later batches and for the index."""

    def __init__(self, settings: NearDedupSettings, earlier: Sequence[tuple[str, EarlierLookup]]) -> None:
        """`earlier` names the indexes to check against (`real`, `synthetic`) and their lookups; a
        decision's `shard` holds the name of the index that matched (empty for this shard's candidates)."""
        self.settings, self.earlier = settings, earlier
        self.ids: list[str] = []
        self.sigs: list[np.ndarray] = []
        self.sketches: list[WordSketches] = []
        self.keys: list[np.ndarray] = []
        self.usable: list[bool] = []
        self.parents: list[frozenset[str]] = []
        self.withdrawn: set[int] = set()
        self._positions: dict[str, int] = {}
        self._buckets: dict[tuple[int, int], list[int]] = defaultdict(list)

    def check(self, ids: list[str], texts: list[str], parents: list[list[str]]) -> dict[str, NearDecision]:
        """The candidates to reject, each with the item it duplicates; the others are admitted."""
        settings = self.settings
        if not ids:
            return {}
        signed = dedup_signatures(texts, settings)
        sketches = signed.sketches or WordSketches.empty(len(ids), pairs=True)
        batch = Signed(signed.verify, sketches)
        keys = band_keys(signed.shingles, settings.bands, settings.rows)
        usable = has_shingles(signed.shingles)
        rows = np.nonzero(usable)[0]
        best: dict[int, NearDecision] = {}
        for source, lookup in self.earlier:
            found = lookup(keys[rows]) if len(rows) else None
            if found is None or not len(found.rows):
                continue
            own = rows[found.rows]
            measured = confirm(own, found.positions, settings, batch, found.signed)
            for index in np.flatnonzero(measured.confirmed).tolist():
                row, position = int(own[index]), int(found.positions[index])
                item, value = found.ids[position], float(measured.similarity[index])
                if item in parents[row] or found.roots[position] in parents[row]:
                    continue
                current = best.get(row)
                if current is None or value > current.similarity:
                    best[row] = NearDecision(item, value, source, MEASURES[measured.measure[index]])
        decisions: dict[str, NearDecision] = {}
        for row, item in enumerate(ids):
            family = frozenset(parents[row])
            one = sketches.take(np.array([row]))
            decision = best.get(row) or (
                self._among_admitted(keys[row], Signed(signed.verify[row : row + 1], one), family)
                if usable[row]
                else None
            )
            if decision is not None:
                decisions[item] = decision
                continue
            self._admit(item, keys[row], signed.verify[row], one, bool(usable[row]), family)
        return decisions

    def _among_admitted(
        self, keys: np.ndarray, candidate: Signed, family: frozenset[str]
    ) -> NearDecision | None:
        """The most similar candidate of another family admitted earlier in this shard that shares a
        band, if confirmed."""
        sharing = {
            position
            for band, key in enumerate(keys.tolist())
            for position in self._buckets.get((band, key), [])
        }
        candidates = sorted(
            position
            for position in sharing
            if position not in self.withdrawn and not self.parents[position] & family
        )
        if not candidates:
            return None
        admitted = Signed(
            np.stack([self.sigs[position] for position in candidates]),
            WordSketches.join([self.sketches[position] for position in candidates]),
        )
        measured = confirm(
            np.zeros(len(candidates), np.int64),
            np.arange(len(candidates)),
            self.settings,
            candidate,
            admitted,
        )
        confirmed = np.nonzero(measured.confirmed)[0]
        if not len(confirmed):
            return None
        top = confirmed[np.argmax(measured.similarity[confirmed])]
        return NearDecision(
            self.ids[candidates[top]],
            float(measured.similarity[top]),
            measure=MEASURES[measured.measure[top]],
        )

    def _admit(
        self,
        item: str,
        keys: np.ndarray,
        sig: np.ndarray,
        sketch: WordSketches,
        usable: bool,
        family: frozenset[str],
    ) -> None:
        position = len(self.ids)
        self._positions[item] = position
        self.parents.append(family)
        self.ids.append(item)
        self.sigs.append(sig)
        self.sketches.append(sketch)
        self.keys.append(keys)
        self.usable.append(usable)
        if usable:
            for band, key in enumerate(keys.tolist()):
                self._buckets[(band, key)].append(position)

    def withdraw(self, items: Collection[str]) -> None:
        """Forget admitted candidates that a later step turned down: no later candidate is their
        duplicate, and the index leaves them out."""
        self.withdrawn.update(self._positions[item] for item in items if item in self._positions)

    def outcome(self, shard: str) -> ShardOutcome | None:
        """The admitted candidates as one shard of a near index (each its own cluster root), or None."""
        active = [position for position in range(len(self.ids)) if position not in self.withdrawn]
        if not active:
            return None
        ids = [self.ids[position] for position in active]
        usable = np.nonzero(np.asarray([self.usable[position] for position in active], dtype=bool))[0]
        keys = np.stack([self.keys[position] for position in active])[usable]
        sigs = np.stack([self.sigs[position] for position in active]).astype("<u4")
        width = sigs.shape[1]
        sketches = WordSketches.join([self.sketches[position] for position in active])
        signatures = pa.table(
            {
                "id": pa.array(ids, pa.string()),
                "root": pa.array(ids, pa.string()),
                "root_shard": pa.array([shard] * len(ids), pa.string()),
                "root_row": pa.array(np.arange(len(ids)), pa.int64()),
                "sig": pa.FixedSizeBinaryArray.from_buffers(
                    pa.binary(4 * width),
                    len(ids),
                    [None, pa.py_buffer(np.ascontiguousarray(sigs).tobytes())],
                ),
            },
            schema=signature_columns_schema(self.settings),
        )
        return ShardOutcome({}, ShardBands(usable, keys), signatures, sketches, Counter(), 0)


#: The hash sets of one index, file by file (a shard's at a time), and the ids of their items.


class MediaAdmission:
    """The same family rule for synthetic images, videos or sounds, with the version's media dedup: a
    candidate may match its parents and siblings (a flip, a crop, a re-encode of them), never another
    real item, a synthetic item of another shard, or another family's candidate admitted before it."""

    def __init__(
        self,
        matcher: MediaMatcher,
        schema: pa.Schema,
        unit_column: str,
        hash_batch: Callable[[pa.Table], ShardMedia],
        earlier: Sequence[tuple[str, EarlierMedia]],
    ) -> None:
        """`hash_batch` hashes a table of candidates as the deduped stage hashes real items; `earlier`
        names the indexes to check against and reads them."""
        self.matcher, self.schema, self.unit_column = matcher, schema, unit_column
        self.hash_batch, self.earlier = hash_batch, earlier
        self.admitted = ShardMedia()
        self.families: list[frozenset[str]] = []
        self.withdrawn: set[int] = set()
        self._rows: dict[str, int] = {}

    def check(self, candidates: pa.Table) -> dict[str, MediaDecision]:
        """The candidates to reject, each with the item it matches; unhashable ones are admitted."""
        hashed = self.hash_batch(candidates)
        if not hashed.ids:
            return {}
        parents = dict(
            zip(candidates.column("id").to_pylist(), candidates.column("parent_ids").to_pylist(), strict=True)
        )
        families = [frozenset(parents[item] or []) for item in hashed.ids]
        queries = hashed.hash_set()
        best: dict[int, tuple[float, str, int, int]] = {}
        for _, lookup in self.earlier:
            for targets, target_ids in lookup.candidates(queries):
                for row, target, similarity, q_unit, t_unit in match_rows(
                    self.matcher.match(queries, targets)
                ):
                    if target_ids[target] not in families[row]:
                        prefer(best, row, similarity, target_ids[target], q_unit, t_unit)
        if self.admitted.ids:
            for row, target, similarity, q_unit, t_unit in match_rows(
                self.matcher.match(queries, self.admitted.hash_set())
            ):
                if target not in self.withdrawn and not self.families[target] & families[row]:
                    prefer(best, row, similarity, self.admitted.ids[target], q_unit, t_unit)
        within: dict[int, list[tuple[float, int, int, int]]] = defaultdict(list)
        for row, other, similarity, q_unit, t_unit in match_rows(self.matcher.match(queries, queries)):
            if other < row and not families[other] & families[row]:
                within[row].append((similarity, other, q_unit, t_unit))
        decisions: dict[str, MediaDecision] = {}
        admitted_here: set[int] = set()
        for row, item in enumerate(hashed.ids):
            for similarity, other, q_unit, t_unit in within.get(row, []):
                if other in admitted_here:
                    prefer(best, row, similarity, hashed.ids[other], q_unit, t_unit)
            choice = best.get(row)
            if choice is not None:
                similarity, dup_of, q_unit, t_unit = choice
                decisions[item] = MediaDecision(
                    dup_of, similarity, self.matcher.describe(similarity, q_unit, t_unit, dup_of)
                )
                continue
            admitted_here.add(row)
            self._rows[item] = len(self.admitted.ids)
            self.admitted.add(item, hashed.units[row], hashed.hashes[row], hashed.colours[row])
            self.families.append(families[row])
        return decisions

    def withdraw(self, items: Collection[str]) -> None:
        """Forget admitted candidates that a later step turned down, as `NearAdmission.withdraw` does."""
        self.withdrawn.update(self._rows[item] for item in items if item in self._rows)

    def index(self) -> pa.Table | None:
        """The admitted candidates' hashes as one shard of a media index, or None when there are none."""
        rows = [row for row in range(len(self.admitted.ids)) if row not in self.withdrawn]
        if not rows:
            return None
        return index_table(self.admitted, rows, self.schema, self.unit_column)


def admit(
    candidates: pa.Table,
    known: dict[str, str],
    lookup: Callable[[list[str]], dict[str, str]],
    dedup: ExactDedup,
    admission: NearAdmission | None,
    media_admission: dict[str, MediaAdmission],
    chain: FilterChain,
) -> tuple[pa.Table, list[pa.Table]]:
    """One batch of valid candidates through exact dedup, near-duplicate admission and the filters:
    (admitted, rejected parts). Only admitted candidates claim their content (in `known`, for later
    batches too) and stay in the near and media admissions: a candidate held back as the exact copy of one
    that near dedup or a filter then turned down, or as the near or media duplicate of one that a filter
    then turned down, goes through again, so an identical variant of another family (or with another
    caption) still gets its own verdict, and every `dup_of` names a real item or an admitted candidate."""
    admitted_parts: list[pa.Table] = []
    rejected_parts: list[pa.Table] = []
    pending: pa.Table | None = candidates
    while pending is not None:
        unique, duplicates = dedup.run(pending, dict(known), lookup)
        unique, near = _admit_near(unique, admission)
        unique, media_near = _admit_media(unique, media_admission)
        admitted, filtered_out = chain.run(unique, stage="synthesized")
        for key, item in zip(
            admitted.column("content_hash").to_pylist(), admitted.column("id").to_pylist(), strict=True
        ):
            known.setdefault(key, item)
        filtered_ids = set(filtered_out.column("id").to_pylist())
        for step in (admission, *media_admission.values()):
            if step is not None:
                step.withdraw(filtered_ids)
        turned_down = pa.concat_tables(
            [near.select(["id"]), media_near.select(["id"]), filtered_out.select(["id"])]
        )
        parts = (duplicates, near, media_near)
        again = [
            _names_one_of(duplicates, turned_down.column("id")),
            _names_one_of(near, filtered_out.column("id")),
            _names_one_of(media_near, filtered_out.column("id")),
        ]
        duplicates_kept_out, near_kept_out, media_kept_out = (
            part.filter(pc.invert(mask)) for part, mask in zip(parts, again, strict=True)
        )
        rejected_parts += [
            mark_rejected(
                duplicates_kept_out,
                "synthesized",
                duplicates_kept_out.column("reject_reason").to_pylist(),
                duplicates_kept_out.column("reject_detail").to_pylist(),
            ),
            near_kept_out,
            media_kept_out,
            filtered_out,
        ]
        admitted_parts.append(admitted)
        retried = pa.concat_tables(
            [part.filter(mask).select(["id"]) for part, mask in zip(parts, again, strict=True)]
        )
        retry = pending.filter(pc.is_in(pending.column("id"), retried.column("id")))
        pending = retry if retry.num_rows else None
    return pa.concat_tables(admitted_parts), [part for part in rejected_parts if part.num_rows]


def _names_one_of(rejected: pa.Table, items: pa.ChunkedArray) -> pa.ChunkedArray:
    """Which rejected rows name one of `items` in `dup_of`."""
    return pc.fill_null(pc.is_in(rejected.column("dup_of"), items), False)


def media_admissions(spec: VersionSpec, lake: Lake, shard: str) -> dict[str, MediaAdmission]:
    """Per enabled media dedup step, by index name: the admission of synthetic items of that modality,
    checked against every real shard's index and the other shards' admitted synthetic items."""
    admissions: dict[str, MediaAdmission] = {}
    for step in media_steps(spec):
        real = media_index(lake, spec.name, step)
        real.check(None)

        def hash_batch(table: pa.Table, modality: str = step.modality) -> ShardMedia:
            (fresh,) = [item for item in media_steps(spec) if item.modality == modality]
            hash_kept_media(table, [fresh], spec)
            return fresh.hashes

        admissions[step.index] = MediaAdmission(
            step.matcher,
            step.schema,
            step.unit_column,
            hash_batch,
            [
                ("real", real.lookup(None)),
                ("synthetic", media_index(lake, spec.name, step, SYNTH_PREFIX).lookup(shard)),
            ],
        )
    return admissions


def _admit_media(candidates: pa.Table, admissions: dict[str, MediaAdmission]) -> tuple[pa.Table, pa.Table]:
    """Media candidates that match an item other than their parents and siblings, rejected with the media
    dedup's code (`dedup.image`, `dedup.video`, `dedup.audio`), `dup_of` and the similarity."""
    decisions: dict[str, tuple[str, MediaDecision]] = {}
    for step in _MEDIA_CODES:
        admission = admissions.get(step[1])
        chosen = candidates.filter(pc.equal(candidates.column("modality"), step[0]))
        if admission is not None and chosen.num_rows:
            decisions.update(
                (item, (step[2], decision)) for item, decision in admission.check(chosen).items()
            )
    removed = pc.is_in(candidates.column("id"), pa.array(list(decisions), pa.string()))
    rejected = candidates.filter(removed)
    chosen_decisions = [decisions[item] for item in rejected.column("id").to_pylist()]
    rejected = _with_duplicate(
        rejected, [(d.dup_of, d.similarity, MEDIA_MEASURES[code]) for code, d in chosen_decisions]
    )
    return candidates.filter(pc.invert(removed)), mark_rejected(
        rejected,
        "synthesized",
        [code for code, _ in chosen_decisions],
        [f"{d.detail}, not one of its parents" for _, d in chosen_decisions],
    )


#: Media dedup steps by modality: the index name and the reject code.
_MEDIA_CODES = (
    ("image", IMAGE_HASHES, REJECT_IMAGE),
    ("video", VIDEO_HASHES, REJECT_VIDEO),
    ("audio", AUDIO_HASHES, REJECT_AUDIO),
)


def _with_duplicate(rejected: pa.Table, pairs: list[tuple[str, float, str]]) -> pa.Table:
    """`rejected` with `dup_of`, `dup_similarity` and `dup_measure` set from `pairs`, row by row (the
    measure where the table has the column)."""
    columns = (
        ("dup_of", [p[0] for p in pairs]),
        ("dup_similarity", [p[1] for p in pairs]),
        ("dup_measure", [p[2] for p in pairs]),
    )
    for name, values in columns:
        if rejected.schema.get_field_index(name) < 0 and name == "dup_measure":
            continue
        field_ = rejected.schema.field(name)
        rejected = rejected.set_column(
            rejected.schema.get_field_index(name), field_, pa.array(values, field_.type)
        )
    return rejected


def _admit_near(candidates: pa.Table, admission: NearAdmission | None) -> tuple[pa.Table, pa.Table]:
    """Text candidates that are near duplicates of an item other than their parents, rejected as
    `dedup.near` with `dup_of` and the estimated similarity; the rest go on to the filters."""
    is_text = pc.equal(candidates.column("modality"), "text")
    texts = candidates.filter(is_text)
    if admission is None or texts.num_rows == 0:
        return candidates, mark_rejected(candidates.slice(0, 0), "synthesized", [], [])
    decisions = admission.check(
        texts.column("id").to_pylist(),
        [text or "" for text in texts.column("text").to_pylist()],
        [list(parents or []) for parents in texts.column("parent_ids").to_pylist()],
    )
    removed = pc.is_in(candidates.column("id"), pa.array(list(decisions), pa.string()))
    rejected = candidates.filter(removed)
    chosen = [decisions[item] for item in rejected.column("id").to_pylist()]
    rejected = _with_duplicate(rejected, [(d.dup_of, d.similarity, d.measure) for d in chosen])
    details: list[str | None] = [
        f"near duplicate of {d.dup_of} ({d.shard or 'this shard'}, similarity {d.similarity:.2f}, {d.measure}), "
        "not one of its parents"
        for d in chosen
    ]
    return candidates.filter(pc.invert(removed)), mark_rejected(
        rejected, "synthesized", [REJECT_NEAR] * rejected.num_rows, details
    )
