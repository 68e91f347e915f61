"""Tests for `curation_dagster/dedup/minhash.py`: signatures, the S-curve, clusters, and what users call
a near duplicate."""

import random

import numpy as np
import pytest

from curation_dagster.dedup.minhash import (
    EMPTY,
    NearMisses,
    Signed,
    UnionFind,
    band_keys,
    bucket_pairs,
    candidate_probability,
    cluster,
    confirm,
    dedup_signatures,
    estimated_jaccard,
    has_shingles,
    near_duplicates,
    normalize_for_shingles,
    signatures,
    word_signatures,
    word_sketches,
)
from curation_dagster.dedup.word_sketch import MEASURES
from curation_dagster.spec import NearDedupSettings, ShingleNormalizeSettings
from tests.engine.dedup.text_fixtures import (
    EDIT_UNDER_BY_ESTIMATE,
    REWRITE_OVER_BY_ESTIMATE,
    document,
    edited_pair,
    word_pair_jaccard,
    word_set_jaccard,
)


def edit_words(text: str, rate: float, rng: random.Random) -> str:
    """Replace, insert or delete about `rate` of the words."""
    out: list[str] = []
    for word in text.split():
        roll = rng.random()
        if roll < rate / 3:
            out.append(f"new{rng.randrange(10**6)}")
        elif roll < 2 * rate / 3:
            out.extend([word, f"extra{rng.randrange(10**6)}"])
        elif roll < rate:
            continue
        else:
            out.append(word)
    return " ".join(out)


def shingle_jaccard(first: str, second: str, n: int) -> float:
    def grams(text: str) -> set[tuple[str, ...]]:
        words = normalize_for_shingles(text, ShingleNormalizeSettings()).split()
        return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}

    a, b = grams(first), grams(second)
    return len(a & b) / len(a | b)


def test_normalisation_drops_case_accents_punctuation_and_digits() -> None:
    assert normalize_for_shingles("Café, CRÈME! 2024", ShingleNormalizeSettings()).split() == [
        "cafe",
        "creme",
        "0000",
    ]


def test_signatures_ignore_case_punctuation_and_line_wrapping() -> None:
    text = "The quick brown fox jumps over the lazy dog near the river bank today"
    variant = "the QUICK brown fox,\njumps over the lazy dog -- near the river bank; today."
    first, second = signatures([text, variant])
    assert (first == second).all()


def test_signatures_are_the_same_on_every_call_and_in_any_batch() -> None:
    rng = random.Random(1)
    texts = [document(rng) for _ in range(20)]
    alone = np.concatenate([signatures([text]) for text in texts])
    assert (signatures(texts) == alone).all()
    assert (signatures(texts) == signatures(texts)).all()


def test_the_estimate_is_within_the_statistical_bound_of_true_jaccard() -> None:
    """Over many random pairs, every estimate lies within 4 standard errors of the exact Jaccard."""
    rng = random.Random(2)
    settings = NearDedupSettings(bands=64, rows=4)
    errors = []
    for _ in range(200):
        base = document(rng, 20)
        other = edit_words(base, rng.uniform(0.0, 0.5), rng)
        exact = shingle_jaccard(base, other, settings.ngram)
        estimate = float(estimated_jaccard(*signatures([base, other], settings)))
        bound = 4 * np.sqrt(max(exact * (1 - exact), 0.01) / settings.num_perm)
        assert abs(estimate - exact) <= bound, (exact, estimate)
        errors.append(estimate - exact)
    assert abs(np.mean(errors)) < 0.02


def test_word_signatures_estimate_the_share_of_words() -> None:
    rng = random.Random(3)
    base = document(rng, 20)
    other = edit_words(base, 0.3, rng)
    estimate = float(estimated_jaccard(*word_signatures([base, other])))
    assert estimate == pytest.approx(word_set_jaccard(base, other), abs=0.12)


@pytest.mark.parametrize("similarity", [0.2, 0.3, 0.5, 0.7])
def test_candidate_rate_follows_the_s_curve(similarity: float) -> None:
    """Pairs of sets with a known Jaccard similarity share a band as often as 1 - (1 - s^r)^b says."""
    settings = NearDedupSettings(bands=20, rows=4, ngram=1)
    rng = np.random.default_rng(4)
    size, pairs, hits = 400, 300, 0
    shared = round(2 * size * similarity / (1 + similarity))
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    for _ in range(pairs):
        words = ["".join(letters[code]) for code in rng.integers(0, 26, (2 * size - shared, 8))]
        first = " ".join(words[:size])
        second = " ".join(words[:shared] + words[size:])
        keys = band_keys(signatures([first, second], settings), settings.bands, settings.rows)
        hits += bool((keys[0] == keys[1]).any())
    expected = candidate_probability(shared / (2 * size - shared), settings.bands, settings.rows)
    tolerance = 4 * np.sqrt(expected * (1 - expected) / pairs) + 0.03
    assert hits / pairs == pytest.approx(expected, abs=tolerance)


def test_the_threshold_is_where_the_s_curve_crosses_one_half() -> None:
    fineweb = NearDedupSettings.preset_settings("fineweb")
    assert fineweb.num_perm == 112
    assert fineweb.threshold == pytest.approx(0.72, abs=0.01)
    assert candidate_probability(0.75, 14, 8) == pytest.approx(0.77, abs=0.01)


def test_documents_with_five_to_ten_percent_word_edits_are_found() -> None:
    rng = random.Random(5)
    originals = [document(rng) for _ in range(40)]
    variants = [edit_words(text, rate, rng) for text in originals for rate in (0.05, 0.10)]
    result = near_duplicates(originals + variants)
    assert all(result[index] is None for index in range(len(originals)))
    found = [result[len(originals) + index] for index in range(len(variants))]
    assert sum(owner is not None for owner in found) / len(found) >= 0.97


def test_moved_sentences_added_footers_and_reformatting_are_found() -> None:
    rng = random.Random(6)
    base = document(rng, 14)
    sentences = base.split(". ")
    moved = ". ".join(sentences[3:] + sentences[:3])
    footer = base + "\nShare this article with your friends and subscribe to our newsletter for more."
    reformatted = base.upper().replace(". ", ".\n\n")
    result = near_duplicates([base, moved, footer, reformatted])
    assert result == [None, 0, 0, 0]


def test_documents_sharing_less_than_half_their_words_are_never_merged() -> None:
    rng = random.Random(7)
    merged, checked = 0, 0
    for _ in range(120):
        first, second = document(rng, 12), document(rng, 12)
        mixed = ". ".join(first.split(". ")[: rng.randint(3, 6)] + second.split(". ")[6:])
        if word_set_jaccard(first, mixed) >= 0.5:
            continue
        checked += 1
        merged += sum(owner is not None for owner in near_duplicates([first, mixed]))
    assert checked >= 60
    assert merged == 0


def test_the_fineweb_preset_misses_ten_percent_edits_that_the_default_finds() -> None:
    """Why the project default is not FineWeb's: 5-word shingles drop below its threshold."""
    rng = random.Random(8)
    originals = [document(rng) for _ in range(30)]
    variants = [edit_words(text, 0.10, rng) for text in originals]
    fineweb = near_duplicates(originals + variants, NearDedupSettings.preset_settings("fineweb"))
    default = near_duplicates(originals + variants)
    assert sum(owner is not None for owner in default[30:]) > sum(owner is not None for owner in fineweb[30:])


def test_clusters_are_connected_components_rooted_at_the_earliest_document() -> None:
    """A ~ B and B ~ C make one cluster even when A and C are not similar enough on their own."""
    rng = random.Random(9)
    a = document(rng, 16)
    b = edit_words(a, 0.12, rng)
    c = edit_words(b, 0.12, rng)
    unrelated = document(rng, 16)
    settings = NearDedupSettings(min_similarity=0.7)
    assert near_duplicates([unrelated, a, b, c], settings) == [None, None, 1, 1]


def test_empty_and_punctuation_only_documents_never_match() -> None:
    result = near_duplicates(["", "!!! ???", "...", ""])
    assert result == [None, None, None, None]
    assert (signatures(["..."]) == EMPTY).all()


def test_character_shingles_work_for_text_without_spaces() -> None:
    settings = NearDedupSettings(shingle="chars", ngram=5, verify="shingle_jaccard", min_similarity=0.5)
    text = "日本語の文章には単語の間に空白がありませんので文字の並びで比べます" * 3
    variant = text.replace("比べます", "比較します", 1)
    other = "これはまったく別の内容について書かれた短い説明文であり共通点は少ない" * 3
    assert near_duplicates([text, variant, other], settings) == [None, 0, None]


def test_bucket_pairs_link_members_to_the_bucket_head_and_their_neighbours() -> None:
    keys = np.array([5, 9, 5, 5, 7, 5], dtype=np.uint64)
    pairs = {tuple(pair) for pair in bucket_pairs(keys).tolist()}
    assert pairs == {(0, 2), (0, 3), (0, 5), (2, 3), (3, 5), (2, 5)}


def test_a_huge_bucket_costs_linear_work() -> None:
    keys = np.zeros(10_000, dtype=np.uint64)
    assert len(bucket_pairs(keys)) <= 4 * len(keys)


def test_documents_without_shingles_are_never_clustered() -> None:
    text = "some words here to make several shingles for the test"
    assert near_duplicates(["", "", text, text]) == [None, None, None, 2]


def test_union_find_roots_are_the_smallest_member() -> None:
    clusters = UnionFind(5)
    clusters.union(3, 4)
    clusters.union(4, 1)
    assert [clusters.find(i) for i in range(5)] == [0, 1, 2, 1, 1]


def test_accents_of_any_script_are_dropped_without_splitting_words() -> None:
    assert normalize_for_shingles("تقدّم naïve", ShingleNormalizeSettings()).split() == ["تقدم", "naive"]


def test_signatures_in_many_batches_equal_one_batch() -> None:
    rng = random.Random(10)
    texts = [document(rng, 3) for _ in range(5000)]
    assert (signatures(texts) == np.concatenate([signatures(texts[:2500]), signatures(texts[2500:])])).all()


MIXED_SCRIPTS = [
    *"abcXYZ 09.,!?\t\n",
    "é", "e\u0301", "ß", "Σ", "ς", "ﬁ", "Ａ", "١", "\u00a0", "\u2028", "“", "”", "تقدّم", "日本語", "ǅ", "İ", "😀",
    "\u0301", "ﾊﾟ",
]  # fmt: skip


@pytest.mark.parametrize("shingle", ["words", "chars"])
def test_signing_text_equals_signing_its_normalised_words(shingle: str) -> None:
    """The engine normalises only the non-ASCII runs of a text and splits words in Arrow; the result must
    be what normalising the whole text and splitting it on whitespace gives, in every script."""
    rng = random.Random(11)
    texts = ["".join(rng.choice(MIXED_SCRIPTS) for _ in range(rng.randint(0, 40))) for _ in range(3000)]
    texts += ["", "   ", "\t\n", " leading", "trailing ", "  both  ", "a\ud800b c"]
    settings = NearDedupSettings(shingle=shingle, ngram=3)  # type: ignore[arg-type]
    normalised = [" ".join(normalize_for_shingles(text, settings.normalize).split()) for text in texts]
    normalised[-1] = "a?b c"  # a lone surrogate is signed as '?'
    assert (signatures(texts, settings) == signatures(normalised, settings)).all()
    assert (signatures(texts[-7:-4], settings) == EMPTY).all()


# ------------------------------------------------------------------------------ grey-zone confirmation

#: Word sets alone at the cut of 0.67 (the default before word pairs): what the grey-zone tests decide.
WORDS_ONLY = NearDedupSettings(min_similarity=0.67, min_pair_similarity=0)
CUT = WORDS_ONLY.min_similarity


def signed_with_estimate(texts: list[str], estimate: float) -> Signed:
    """The texts' real word sketches, with verification signatures made to agree in `estimate` of their
    values between the first and second text, so the estimate is what the test says."""
    sigs = np.arange(2 * 128, dtype=np.uint32).reshape(2, 128)
    sigs[1, : round(estimate * 128)] = sigs[0, : round(estimate * 128)]
    return Signed(sigs, word_sketches(texts))


@pytest.mark.parametrize(
    ("estimate", "exact", "confirmed", "measure"),
    [
        (0.70, 0.63, False, "exact_words"),  # over the cut by the estimate, under it in fact: kept
        (0.60, 0.69, True, "exact_words"),  # under the cut by the estimate, over it in fact: removed
        (0.95, 0.55, True, "minhash_estimate"),  # clearly above: the estimate decides alone
        (0.40, 0.69, False, "minhash_estimate"),  # clearly below: the estimate decides alone
    ],
)
def test_a_pair_in_the_grey_zone_is_decided_by_the_word_sketches(
    estimate: float, exact: float, confirmed: bool, measure: str
) -> None:
    shared = round(exact * 200 / (1 + exact))  # two 100-word sets sharing this many words
    words = [f"word{chr(97 + a)}{chr(97 + b)}" for a in range(26) for b in range(26)]
    texts = [" ".join(words[:100]), " ".join(words[:shared] + words[100 : 200 - shared])]
    truth = shared / (200 - shared)
    result = confirm(np.array([0]), np.array([1]), WORDS_ONLY, signed_with_estimate(texts, estimate))
    assert result.confirmed.tolist() == [confirmed]
    assert MEASURES[result.measure[0]] == measure
    expected = truth if measure == "exact_words" else round(estimate * 128) / 128
    assert result.similarity[0] == pytest.approx(expected)


def test_the_grey_zone_spans_four_standard_errors_of_the_estimate_at_the_cut() -> None:
    settings = WORDS_ONLY
    assert settings.grey_margin == pytest.approx(4 * np.sqrt(CUT * (1 - CUT) / settings.verify_hashes))
    assert NearDedupSettings(verify_hashes=512).grey_margin == pytest.approx(
        NearDedupSettings().grey_margin / 2
    )


def test_without_sketches_every_pair_is_decided_by_the_estimate() -> None:
    texts = ["alpha beta gamma", "alpha beta delta"]
    result = confirm(
        np.array([0]),
        np.array([1]),
        WORDS_ONLY.model_copy(update={"word_sketch": 0}),
        signed_with_estimate(texts, 0.70),
    )
    assert (result.confirmed.tolist(), MEASURES[result.measure[0]]) == ([True], "minhash_estimate")


def shares_a_band(first: str, second: str) -> bool:
    settings = WORDS_ONLY
    keys = band_keys(signatures([first, second]), settings.bands, settings.rows)
    return bool((keys[0] == keys[1]).any())


def test_a_rewrite_whose_estimate_is_over_the_cut_is_kept() -> None:
    """A quarter of the words replaced (seed found by search): a candidate pair whose 128-value estimate
    is over the cut while its word sets share under 0.67; the estimate alone removed it."""
    original, rewrite = edited_pair(*REWRITE_OVER_BY_ESTIMATE)
    assert (
        float(estimated_jaccard(*word_signatures([original, rewrite])))
        >= CUT
        > word_set_jaccard(original, rewrite)
    )
    assert shares_a_band(original, rewrite)
    assert near_duplicates([original, rewrite], WORDS_ONLY) == [None, None]
    without_sketch = WORDS_ONLY.model_copy(update={"word_sketch": 0})
    assert near_duplicates([original, rewrite], without_sketch) == [None, 0]


def test_a_twenty_percent_edit_whose_estimate_is_under_the_cut_is_removed() -> None:
    original, edit = edited_pair(*EDIT_UNDER_BY_ESTIMATE)
    assert (
        float(estimated_jaccard(*word_signatures([original, edit]))) < CUT <= word_set_jaccard(original, edit)
    )
    assert shares_a_band(original, edit)
    assert near_duplicates([original, edit], WORDS_ONLY) == [None, 0]
    without_sketch = WORDS_ONLY.model_copy(update={"word_sketch": 0})
    assert near_duplicates([original, edit], without_sketch) == [None, None]


def test_pairs_just_under_the_cut_are_recorded_as_near_misses_once() -> None:
    original, rewrite = edited_pair(*REWRITE_OVER_BY_ESTIMATE)
    settings = WORDS_ONLY
    signed = dedup_signatures([original, rewrite], settings)
    usable = np.nonzero(has_shingles(signed.shingles))[0]
    keys = band_keys(signed.shingles, settings.bands, settings.rows)
    misses = NearMisses()
    cluster(keys, usable, Signed(signed.verify, signed.sketches), settings, misses)
    left, right, similarity, measure = misses.pairs()
    assert (left.tolist(), right.tolist()) == ([0], [1])
    assert similarity[0] == pytest.approx(word_set_jaccard(original, rewrite))
    assert MEASURES[measure[0]] == "exact_words"


@pytest.mark.parametrize("seed", range(6))
def test_a_fifth_edited_copy_is_removed_and_a_third_rewritten_one_kept_on_word_pairs(seed: int) -> None:
    original, edit = edited_pair(seed, 0.20)
    _, rewrite = edited_pair(seed, 0.30)
    assert word_pair_jaccard(original, edit) >= 0.41 > word_pair_jaccard(original, rewrite)

    assert near_duplicates([original, edit]) == [None, 0]
    assert near_duplicates([original, rewrite]) == [None, None]
    # Word sets alone cannot keep the rewrite at a cut that removes the edit.
    words = NearDedupSettings(min_pair_similarity=0)
    assert word_set_jaccard(original, rewrite) >= words.min_similarity
    assert near_duplicates([original, rewrite], words) == [None, 0]


def test_a_removal_on_word_pairs_reports_their_exact_similarity() -> None:
    original, edit = edited_pair(3, 0.20)
    settings = NearDedupSettings()
    signed = dedup_signatures([original, edit], settings)

    result = confirm(np.array([1]), np.array([0]), settings, Signed(signed.verify, signed.sketches))

    assert result.confirmed.tolist() == [True]
    assert MEASURES[result.measure[0]] == "exact_word_pairs"
    assert result.similarity[0] == pytest.approx(word_pair_jaccard(original, edit))


def test_a_pair_under_the_word_pair_cut_is_a_near_miss_on_word_pairs() -> None:
    original, rewrite = edited_pair(4, 0.25)
    similarity = word_pair_jaccard(original, rewrite)
    settings = NearDedupSettings(min_pair_similarity=round(similarity + 0.02, 4))
    signed = dedup_signatures([original, rewrite], settings)
    usable = np.nonzero(has_shingles(signed.shingles))[0]
    misses = NearMisses()

    cluster(
        band_keys(signed.shingles, settings.bands, settings.rows),
        usable,
        Signed(signed.verify, signed.sketches),
        settings,
        misses,
    )

    left, right, measured, measure = misses.pairs()
    assert (left.tolist(), right.tolist()) == ([0], [1])
    assert measured[0] == pytest.approx(similarity)
    assert MEASURES[measure[0]] == "exact_word_pairs"


def test_word_pair_sketches_are_needed_when_the_pair_check_is_on() -> None:
    texts = ["alpha beta gamma delta", "alpha beta gamma epsilon"]
    words_only = word_sketches(texts, NearDedupSettings(pair_sketch=0))
    signed = Signed(np.zeros((2, 128), np.uint32), words_only)

    with pytest.raises(ValueError, match="word-pair sketches are missing"):
        confirm(np.array([0]), np.array([1]), NearDedupSettings(), signed)
